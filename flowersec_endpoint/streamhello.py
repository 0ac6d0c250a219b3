"""StreamHello: the first frame of every stream, naming its kind (mux-rpc.md §3).

The opener writes it once; the acceptor reads it before dispatching and
sends nothing back. The bytes are what both reference writers produce,
e.g. ``00 00 00 14 {"kind":"rpc","v":1}``.
"""

from __future__ import annotations

from flowersec_endpoint.encoding import (
    UINT32_MAX,
    DecodeError,
    dumps_compact,
    loads_object,
    read_int,
)
from flowersec_endpoint.rpc.framing import (
    FrameStream,
    RpcFramingError,
    encode_frame,
    read_frame,
)

STREAM_HELLO_VERSION = 1
DEFAULT_MAX_HELLO_BYTES = 8 * 1024


class StreamHelloError(Exception):
    """A missing, oversized or malformed hello ("bad stream hello")."""


def encode_hello(kind: str) -> bytes:
    """Return the framed hello for ``kind``; an empty kind is a ``ValueError``."""
    if not kind:
        raise ValueError("stream kind is empty")
    return encode_frame(dumps_compact({"kind": kind, "v": STREAM_HELLO_VERSION}))


def decode_hello(payload: bytes) -> str:
    """Validate a hello's JSON and return its kind; unknown keys are ignored."""
    try:
        obj = loads_object(payload)
        version = read_int(obj, "v", 0, UINT32_MAX)
    except DecodeError as exc:
        raise StreamHelloError(f"bad stream hello: {exc}") from exc
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise StreamHelloError("bad stream hello: kind must be a non-empty string")
    if version != STREAM_HELLO_VERSION:
        raise StreamHelloError(f"bad stream hello: unsupported version {version}")
    return kind


async def read_hello(
    stream: FrameStream, max_bytes: int = DEFAULT_MAX_HELLO_BYTES
) -> str:
    """Read the hello frame (JSON at most ``max_bytes``) and return the kind.

    Reads nothing past the hello. Stream errors propagate unchanged.
    """
    try:
        payload = await read_frame(stream, max_bytes)
    except RpcFramingError as exc:
        raise StreamHelloError(f"bad stream hello: {exc}") from exc
    return decode_hello(payload)
