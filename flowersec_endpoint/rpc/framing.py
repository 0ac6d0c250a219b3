"""Length-prefixed frames (u32 BE + bytes) used by RPC and the stream hello.

Receivers stop at a prefix above the limit (the bytes are not skipped, so
the stream is unusable afterwards); senders refuse such a frame locally, a
check the reference writers lack (mux-rpc.md §4.1, §7.8).
"""

from __future__ import annotations

import struct
from typing import Protocol

MAX_FRAME_BYTES = 1 << 20
PREFIX_SIZE = 4

_PREFIX = struct.Struct(">I")


class RpcFramingError(Exception):
    """A frame above the size limit, or a stream that ended mid-frame."""


class FrameStream(Protocol):
    """The stream operations the RPC layer needs (a ``YamuxStream`` fits)."""

    async def read(self, n: int = -1) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    async def close(self) -> None: ...
    def reset(self) -> None: ...


def encode_frame(payload: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Return prefix + payload, refusing payloads the peer would reject."""
    if len(payload) > max_frame_bytes:
        raise RpcFramingError(
            f"frame of {len(payload)} bytes exceeds the {max_frame_bytes}-byte limit"
        )
    return _PREFIX.pack(len(payload)) + payload


def check_length(length: int, max_frame_bytes: int) -> None:
    """Raise :class:`RpcFramingError` if a received prefix is above the limit."""
    if length > max_frame_bytes:
        raise RpcFramingError(
            f"frame of {length} bytes exceeds the {max_frame_bytes}-byte limit"
        )


class FrameDecoder:
    """Sans-I/O reader: feed chunks, get whole frame payloads (maybe empty)."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()
        self._need: int | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (non-zero at EOF means truncation)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes and return every frame they complete."""
        self._buf += data
        frames: list[bytes] = []
        pos = 0
        while True:
            if self._need is None:
                if len(self._buf) - pos < PREFIX_SIZE:
                    break
                (length,) = _PREFIX.unpack_from(self._buf, pos)
                check_length(length, self._max)
                pos += PREFIX_SIZE
                self._need = length
            if len(self._buf) - pos < self._need:
                break
            frames.append(bytes(self._buf[pos : pos + self._need]))
            pos += self._need
            self._need = None
        del self._buf[:pos]
        return frames


async def read_frame(stream: FrameStream, max_frame_bytes: int) -> bytes:
    """Read exactly one frame and nothing after it (for the stream hello).

    Raises :class:`RpcFramingError` on an oversized prefix or early EOF.
    """
    try:
        (length,) = _PREFIX.unpack(await stream.readexactly(PREFIX_SIZE))
        check_length(length, max_frame_bytes)
        return await stream.readexactly(length)
    except EOFError as exc:
        raise RpcFramingError("stream ended inside a frame") from exc
