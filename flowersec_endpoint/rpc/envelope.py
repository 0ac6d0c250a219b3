"""RpcEnvelope JSON (mux-rpc.md §4.2): strict when written, lenient when read.

We always emit ``type_id``, ``request_id``, ``response_to`` and ``payload``
(TS readers stop for good without them) and accept Go's lenient form, where
a missing number reads as 0 and a missing payload as ``null``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flowersec_endpoint.encoding import (
    UINT32_MAX,
    DecodeError,
    dumps_compact,
    loads_object,
    read_int,
)
from flowersec_endpoint.rpc.errors import RpcClosedError
from flowersec_endpoint.rpc.framing import FrameDecoder

_log = logging.getLogger(__name__)

UINT64_MAX = 2**64 - 1
MAX_SAFE_ID = 2**53 - 1
MAX_BAD_FRAMES = 3


class EnvelopeError(DecodeError):
    """A frame that is not a valid RpcEnvelope."""


class MessageKind(Enum):
    """How a reader classifies an envelope (mux-rpc.md §4.3)."""

    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"


@dataclass(frozen=True, slots=True)
class WireError:
    """The ``error`` member of a response."""

    code: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """One RPC message; ``payload`` is any JSON value (``None`` is ``null``)."""

    type_id: int
    request_id: int = 0
    response_to: int = 0
    payload: Any = None
    error: WireError | None = None

    @property
    def kind(self) -> MessageKind:
        """Response if ``response_to``; else request if ``request_id``."""
        if self.response_to:
            return MessageKind.RESPONSE
        if self.request_id:
            return MessageKind.REQUEST
        return MessageKind.NOTIFICATION


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialise with the reference key order; ``error`` only when set.

    Raises ``TypeError``/``ValueError`` when the payload is not JSON-able
    (NaN included) or a number is outside its wire type (u32 ``type_id``
    and ``error.code``, u64 ids): the strict TypeScript reader would stop
    for good on such a frame, so it is refused before it is written.
    """
    _check_uint("type_id", envelope.type_id, UINT32_MAX)
    _check_uint("request_id", envelope.request_id, UINT64_MAX)
    _check_uint("response_to", envelope.response_to, UINT64_MAX)
    if envelope.error is not None:
        _check_uint("error.code", envelope.error.code, UINT32_MAX)
    obj: dict[str, Any] = {
        "type_id": envelope.type_id,
        "request_id": envelope.request_id,
        "response_to": envelope.response_to,
        "payload": envelope.payload,
    }
    if envelope.error is not None:
        error: dict[str, Any] = {"code": envelope.error.code}
        if envelope.error.message is not None:
            error["message"] = envelope.error.message
        obj["error"] = error
    return dumps_compact(obj)


def _check_uint(name: str, value: object, high: int) -> None:
    if type(value) is not int or not 0 <= value <= high:
        raise ValueError(f"{name} must be an integer in [0, {high}]")


def decode_envelope(data: bytes) -> Envelope:
    """Parse one frame's JSON; raises only :class:`EnvelopeError`."""
    try:
        obj = loads_object(data)
        type_id = read_int(obj, "type_id", 0, UINT32_MAX)
        request_id = read_int(obj, "request_id", 0, UINT64_MAX)
        response_to = read_int(obj, "response_to", 0, UINT64_MAX)
        error = _read_error(obj.get("error"))
    except DecodeError as exc:
        raise EnvelopeError(str(exc)) from exc
    return Envelope(type_id, request_id, response_to, obj.get("payload"), error)


def _read_error(value: Any) -> WireError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError("error: expected an object")
    message = value.get("message")
    if message is not None and not isinstance(message, str):
        raise DecodeError("error.message: expected a string")
    return WireError(read_int(value, "code", 0, UINT32_MAX), message)


class EnvelopeReader:
    """One stream's chunks in, envelopes out, with the Go reader's tolerance.

    An invalid frame is skipped; the third in a row ends the stream, and
    any good frame resets the count (mux-rpc.md §4.4). Caller and server
    read by the same rule.
    """

    def __init__(self, max_frame_bytes: int, on_invalid: Callable[[], None]) -> None:
        self._frames = FrameDecoder(max_frame_bytes)
        self._on_invalid = on_invalid
        self._bad = 0

    def feed(self, chunk: bytes) -> Iterator[Envelope]:
        """Yield the envelopes of the frames ``chunk`` completes, in order.

        Raises :class:`RpcFramingError` on an oversized frame and
        :class:`RpcClosedError` at the third invalid frame in a row.
        """
        for frame in self._frames.feed(chunk):
            try:
                envelope = decode_envelope(frame)
            except EnvelopeError as exc:
                self._on_invalid()
                self._bad += 1
                if self._bad >= MAX_BAD_FRAMES:
                    raise RpcClosedError("too many invalid rpc frames") from exc
                _log.debug("invalid rpc frame skipped: %s", exc)
                continue
            self._bad = 0
            yield envelope
