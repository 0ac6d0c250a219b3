"""``FSEH`` handshake frame codec (e2ee.md §3)."""

from __future__ import annotations

import struct

from flowersec_endpoint.e2ee.constants import (
    DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    HANDSHAKE_HEADER_LEN,
    HANDSHAKE_MAGIC,
    PROTOCOL_VERSION,
)
from flowersec_endpoint.e2ee.errors import E2EEError, handshake_failed
from flowersec_endpoint.errors import Code, Stage

_HEADER = struct.Struct(">4sBBI")


def encode_handshake(msg_type: int, payload: bytes) -> bytes:
    """Frame one JSON payload as a handshake message."""
    return _HEADER.pack(HANDSHAKE_MAGIC, PROTOCOL_VERSION, msg_type, len(payload)) + (
        payload
    )


def decode_handshake(
    frame: bytes, max_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
) -> tuple[int, bytes]:
    """Return ``(type, payload)``, checking in the reference's order.

    The type byte is returned whatever its value: only the handshake logic
    knows which types it expects. A ``max_payload`` of 0 disables the limit.
    """
    if len(frame) < HANDSHAKE_HEADER_LEN:
        raise handshake_failed("handshake frame: invalid length")
    magic, version, msg_type, length = _HEADER.unpack_from(frame)
    if magic != HANDSHAKE_MAGIC:
        raise handshake_failed("handshake frame: invalid magic")
    if version != PROTOCOL_VERSION:
        raise E2EEError(
            Stage.HANDSHAKE, Code.INVALID_VERSION, "handshake frame: invalid version"
        )
    if length > len(frame) - HANDSHAKE_HEADER_LEN:
        raise handshake_failed("handshake frame: invalid length")
    if max_payload > 0 and length > max_payload:
        raise handshake_failed("handshake frame: payload too large")
    if HANDSHAKE_HEADER_LEN + length != len(frame):
        raise handshake_failed("handshake frame: invalid length")
    return msg_type, bytes(frame[HANDSHAKE_HEADER_LEN:])
