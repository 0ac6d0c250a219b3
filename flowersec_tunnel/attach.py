"""The attach message and the ordered admission checks (tunnel.md §5).

Sans-I/O: the WebSocket layer hands in the first text message and gets
back either the verified claims or a rejection whose close code and reason
token are the exact bytes reference clients map to errors (§8.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from flowersec_endpoint.encoding import (
    INT8_MAX,
    UINT32_MAX,
    DecodeError,
    b64u_decode,
    loads_object,
    read_int,
    read_str,
)

from .replay import ReplayStore, used_until

MAX_ATTACH_BYTES = 8192
MAX_CHANNEL_ID_BYTES = 256
MAX_TOKEN_BYTES = 2048
MIN_INSTANCE_ID_BYTES = 16
MAX_INSTANCE_ID_BYTES = 32
ATTACH_TIMEOUT_SECONDS = 10.0


class Reject(StrEnum):
    """Attach rejection reasons: close reason text and metric label alike."""

    TOO_MANY_CONNECTIONS = "too_many_connections"
    EXPECTED_ATTACH = "expected_attach"
    INVALID_ATTACH = "invalid_attach"
    INVALID_TOKEN = "invalid_token"
    CHANNEL_MISMATCH = "channel_mismatch"
    ROLE_MISMATCH = "role_mismatch"
    TOKEN_REPLAY = "token_replay"
    REPLACE_RATE_LIMITED = "replace_rate_limited"
    ATTACH_FAILED = "attach_failed"


REJECT_CODES: dict[Reject, int] = {
    Reject.TOO_MANY_CONNECTIONS: 1013,
    Reject.EXPECTED_ATTACH: 1002,
    Reject.INVALID_ATTACH: 1002,
    Reject.INVALID_TOKEN: 1008,
    Reject.CHANNEL_MISMATCH: 1008,
    Reject.ROLE_MISMATCH: 1008,
    Reject.TOKEN_REPLAY: 1008,
    Reject.REPLACE_RATE_LIMITED: 1013,
    Reject.ATTACH_FAILED: 1011,
}
"""Close code per reason (§8.1); the replace code is the reference default."""


class AttachRejected(Exception):
    """An attach that must be refused with ``reason`` (and its close code).

    ``detail`` says why for logs; it never contains the token or attach JSON.
    """

    def __init__(self, reason: Reject, detail: str = "", token_id: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail or reason.value
        self.token_id = token_id
        """The verified token's ID when the token itself was valid (for logs)."""
        self.sent = False
        """True when the socket is already closed and no close frame is due."""

    @property
    def code(self) -> int:
        return REJECT_CODES[self.reason]


@dataclass(frozen=True, slots=True)
class Attach:
    """A validated attach message (§5.2); ``caps`` is checked, then dropped."""

    channel_id: str
    role: int
    token: str
    endpoint_instance_id: str


def parse_attach(data: str | bytes) -> Attach:
    """Validate the attach message in the order of §5.2.

    Raises :class:`AttachRejected` with ``invalid_attach`` on any failure.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_ATTACH_BYTES:
        raise AttachRejected(Reject.INVALID_ATTACH, "attach too large")
    try:
        obj = loads_object(raw)
        version = read_int(obj, "v", 0, UINT32_MAX)
        channel_id = read_str(obj, "channel_id")
        role = read_int(obj, "role", 0, INT8_MAX)
        token = read_str(obj, "token")
        instance_id = read_str(obj, "endpoint_instance_id")
        _check_caps(obj.get("caps"))
    except DecodeError as exc:
        raise AttachRejected(Reject.INVALID_ATTACH, str(exc)) from None
    if version != 1:
        raise AttachRejected(Reject.INVALID_ATTACH, "unsupported v")
    if not channel_id:
        raise AttachRejected(Reject.INVALID_ATTACH, "missing channel_id")
    if len(channel_id.encode("utf-8")) > MAX_CHANNEL_ID_BYTES:
        raise AttachRejected(Reject.INVALID_ATTACH, "channel_id too long")
    if role not in (1, 2):
        raise AttachRejected(Reject.INVALID_ATTACH, "invalid role")
    if not token:
        raise AttachRejected(Reject.INVALID_ATTACH, "missing token")
    if len(token.encode("utf-8")) > MAX_TOKEN_BYTES:
        raise AttachRejected(Reject.INVALID_ATTACH, "token too long")
    if not instance_id:
        raise AttachRejected(Reject.INVALID_ATTACH, "missing endpoint_instance_id")
    try:
        instance = b64u_decode(instance_id)
    except DecodeError:
        raise AttachRejected(
            Reject.INVALID_ATTACH, "endpoint_instance_id not base64url"
        ) from None
    if not MIN_INSTANCE_ID_BYTES <= len(instance) <= MAX_INSTANCE_ID_BYTES:
        raise AttachRejected(Reject.INVALID_ATTACH, "endpoint_instance_id length")
    return Attach(channel_id, role, token, instance_id)


def _check_caps(caps: object) -> None:
    if caps is None:
        return
    if not isinstance(caps, dict) or not all(
        isinstance(v, str) or v is None for v in caps.values()
    ):
        raise DecodeError("caps: expected an object of strings")


class Claims(Protocol):
    """The token fields admission needs (a verified ``TokenPayload``)."""

    @property
    def channel_id(self) -> str: ...
    @property
    def role(self) -> int: ...
    @property
    def token_id(self) -> str: ...
    @property
    def exp(self) -> int: ...


C = TypeVar("C", bound=Claims)


def admit_token(
    attach: Attach,
    verify: Callable[[str], C],
    replay: ReplayStore,
    *,
    skew_seconds: int,
    now: float,
) -> C:
    """Run admission steps 5 to 8 of §5.4 and return the verified claims.

    ``verify`` raises ``ValueError`` (the token module's ``TokenError``) for
    any failed token rule. The token is burned in ``replay`` only once the
    signature, time, channel and role checks all passed.
    """
    try:
        claims = verify(attach.token)
    except ValueError as exc:
        detail = getattr(exc, "reason", "") or "token rejected"
        raise AttachRejected(Reject.INVALID_TOKEN, str(detail)) from None
    token_id = claims.token_id
    if claims.channel_id != attach.channel_id:
        raise AttachRejected(Reject.CHANNEL_MISMATCH, token_id=token_id)
    if claims.role != attach.role:
        raise AttachRejected(Reject.ROLE_MISMATCH, token_id=token_id)
    until = used_until(claims.exp, skew_seconds)
    if not replay.check_and_mark(token_id, until, int(now // 1)):
        raise AttachRejected(Reject.TOKEN_REPLAY, token_id=token_id)
    return claims
