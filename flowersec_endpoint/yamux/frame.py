"""Yamux frame header codec and a boundary-agnostic frame decoder.

Chunks from the secure channel carry no meaning (mux-rpc.md §1.1), so the
decoder buffers bytes and releases whole frames; it checks a DATA length
before buffering the body so a hostile length cannot make us hold 4 GiB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from flowersec_endpoint.yamux.errors import Reason, YamuxError

VERSION = 0
HEADER_SIZE = 12
MAX_WINDOW = 256 * 1024

_HEADER = struct.Struct(">BBHII")


class FrameType(IntEnum):
    """The four frame types of protocol version 0."""

    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(IntFlag):
    """Header flag bits; unknown bits are kept and ignored."""

    NONE = 0
    SYN = 0x0001
    ACK = 0x0002
    FIN = 0x0004
    RST = 0x0008


class GoAwayCode(IntEnum):
    """GO_AWAY reason codes (mux-rpc.md §2.9)."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; ``body`` is non-empty only for DATA."""

    type: FrameType
    flags: Flag
    stream_id: int
    length: int
    body: bytes = b""


def encode_frame(
    type_: FrameType, flags: Flag, stream_id: int, length: int, body: bytes = b""
) -> bytes:
    """Return header + body as one ``bytes`` so it is written in one call."""
    return _HEADER.pack(VERSION, type_, flags, stream_id, length) + body


class FrameDecoder:
    """Turn an arbitrary split of the byte stream back into frames.

    Raises :class:`YamuxError` with reason ``protocol_error`` on a version
    other than 0, an unknown type, or a DATA length above
    ``max_data_length`` (no sender that respects the window exceeds it).
    """

    def __init__(self, max_data_length: int = MAX_WINDOW) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_data = max_data_length
        self._header: tuple[FrameType, Flag, int, int] | None = None

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` if more bytes are needed."""
        if self._header is None:
            if len(self._buf) - self._pos < HEADER_SIZE:
                self._compact()
                return None
            version, type_, flags, stream_id, length = _HEADER.unpack_from(
                self._buf, self._pos
            )
            if version != VERSION:
                raise YamuxError(Reason.PROTOCOL_ERROR, f"bad version {version}")
            if type_ > FrameType.GO_AWAY:
                raise YamuxError(Reason.PROTOCOL_ERROR, f"bad frame type {type_}")
            if type_ == FrameType.DATA and length > self._max_data:
                raise YamuxError(Reason.PROTOCOL_ERROR, "data frame too large")
            self._pos += HEADER_SIZE
            self._header = (FrameType(type_), Flag(flags), stream_id, length)
        type_, flags, stream_id, length = self._header
        body = b""
        if type_ == FrameType.DATA:
            if len(self._buf) - self._pos < length:
                self._compact()
                return None
            body = bytes(self._buf[self._pos : self._pos + length])
            self._pos += length
        self._header = None
        return Frame(type_, flags, stream_id, length, body)

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
