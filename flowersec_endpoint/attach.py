"""The endpoint's side of the tunnel attach (tunnel.md §5.2, §8.2; api.md §5).

The tunnel never acknowledges an attach: a rejection only shows up as the
WebSocket closing with a reason text while the handshake waits. This module
builds the one text message an endpoint sends and turns a close reason back
into the stable attach code, with no I/O of its own.
"""

from __future__ import annotations

import secrets

from flowersec_endpoint.encoding import (
    DecodeError,
    b64u_decode,
    b64u_encode,
    dumps_compact,
)
from flowersec_endpoint.errors import Code

ROLE_CLIENT = 1
ROLE_SERVER = 2
ATTACH_VERSION = 1

ENDPOINT_INSTANCE_ID_BYTES = 24
ENDPOINT_INSTANCE_ID_MIN_BYTES = 16
ENDPOINT_INSTANCE_ID_MAX_BYTES = 32

REJECTION_CODES: dict[str, Code] = {
    code.value: code
    for code in (
        Code.TOO_MANY_CONNECTIONS,
        Code.EXPECTED_ATTACH,
        Code.INVALID_ATTACH,
        Code.INVALID_TOKEN,
        Code.CHANNEL_MISMATCH,
        Code.ROLE_MISMATCH,
        Code.TOKEN_REPLAY,
        Code.REPLACE_RATE_LIMITED,
        Code.ATTACH_FAILED,
    )
}


def new_endpoint_instance_id() -> str:
    """Return a fresh id: 24 random bytes, base64url without padding."""
    return b64u_encode(secrets.token_bytes(ENDPOINT_INSTANCE_ID_BYTES))


def check_endpoint_instance_id(value: str) -> str:
    """Return ``value`` if the tunnel would accept it, else raise DecodeError.

    The tunnel's rule: base64url decoding to 16..32 bytes.
    """
    if not value:
        raise DecodeError("endpoint_instance_id is empty")
    raw = b64u_decode(value)
    if not ENDPOINT_INSTANCE_ID_MIN_BYTES <= len(raw) <= ENDPOINT_INSTANCE_ID_MAX_BYTES:
        raise DecodeError("endpoint_instance_id must decode to 16..32 bytes")
    return value


def attach_message(
    *, channel_id: str, role: int, token: str, endpoint_instance_id: str
) -> str:
    """Build the attach text message with the reference member order.

    The result holds the bearer token: send it, never log it.
    """
    body = {
        "v": ATTACH_VERSION,
        "channel_id": channel_id,
        "role": role,
        "token": token,
        "endpoint_instance_id": endpoint_instance_id,
    }
    return dumps_compact(body).decode("utf-8")


def rejection_code(reason: str) -> Code | None:
    """Map a tunnel close reason text to its attach code, if it is one.

    Only the exact reason text counts; the numeric close code is ignored,
    as the reference clients do.
    """
    return REJECTION_CODES.get(reason)
