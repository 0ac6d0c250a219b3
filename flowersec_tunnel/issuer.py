"""Grant-pair minting and token re-issue (tunnel.md §3.3).

This is the control plane's side of the tunnel contract: it decides the
init window, the token lifetimes and the single-use token IDs the tunnel
later enforces, so the numbers here must be the reference's (a fixed 120 s
init window, 60 s defaults, ``exp`` capped at ``init_exp``).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from flowersec_endpoint.encoding import INT16_MAX, INT32_MAX, b64u_encode
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.tokens import (
    FORMAT_FST2,
    ROLE_CLIENT,
    ROLE_SERVER,
    TokenPayload,
    round_skew,
    sign_token,
)

INIT_WINDOW_SECONDS = 120
DEFAULT_TOKEN_EXP_SECONDS = 60
DEFAULT_IDLE_TIMEOUT_SECONDS = 60
PSK_BYTES = 32
RANDOM_ID_BYTES = 24


class ChannelInitExpiredError(ValueError):
    """Re-issue asked for after the channel's init window (plus skew)."""

    def __init__(self) -> None:
        super().__init__("channel init expired")


@dataclass(frozen=True, slots=True)
class GrantPair:
    """The two grants of one channel: same channel and PSK, own tokens."""

    client: ChannelInitGrant
    server: ChannelInitGrant

    def to_obj(self) -> dict[str, object]:
        """Return ``{"grant_client": …, "grant_server": …}``."""
        return {
            "grant_client": self.client.to_obj(),
            "grant_server": self.server.to_obj(),
        }


def random_id() -> str:
    """Return 24 CSPRNG bytes as base64url (32 chars): channel and token IDs."""
    return b64u_encode(secrets.token_bytes(RANDOM_ID_BYTES))


def normalize_suites(
    allowed: Sequence[int], default: int
) -> tuple[tuple[int, ...], int]:
    """De-duplicate suites (order kept), drop zeros, resolve the default.

    Raises ``ValueError`` if no suite is left, one is out of the u16 range,
    or the default (0 means the first) is not among them.
    """
    suites: list[int] = []
    for suite in allowed:
        if not 0 <= suite <= INT16_MAX:
            raise ValueError(f"suite {suite} out of range")
        if suite and suite not in suites:
            suites.append(suite)
    if not suites:
        raise ValueError("missing allowed suites")
    chosen = default or suites[0]
    if chosen not in suites:
        raise ValueError("default suite not in allowed suites")
    return tuple(suites), chosen


def mint_grant_pair(
    key: IssuerKey,
    *,
    tunnel_url: str,
    audience: str,
    issuer: str,
    channel_id: str,
    token_exp_seconds: int = DEFAULT_TOKEN_EXP_SECONDS,
    idle_timeout_seconds: int = DEFAULT_IDLE_TIMEOUT_SECONDS,
    allowed_suites: Sequence[int] = (1,),
    default_suite: int = 0,
    now: float | None = None,
    token_format: str = FORMAT_FST2,
) -> GrantPair:
    """Mint a client and a server grant for one channel (tunnel.md §3.3).

    ``issuer`` may be empty, but no tunnel accepts such tokens. Values
    ``<= 0`` for the token lifetime or idle timeout mean 60 s. Raises
    ``ValueError`` for a missing URL, audience or channel ID, an idle
    timeout beyond int32, or bad suites.
    """
    if not tunnel_url:
        raise ValueError("missing tunnel url")
    if not audience:
        raise ValueError("missing audience")
    if not channel_id:
        raise ValueError("missing channel id")
    idle = (
        idle_timeout_seconds
        if idle_timeout_seconds > 0
        else DEFAULT_IDLE_TIMEOUT_SECONDS
    )
    if idle > INT32_MAX:
        raise ValueError("idle timeout out of range")
    suites, suite = normalize_suites(allowed_suites, default_suite)
    psk = b64u_encode(secrets.token_bytes(PSK_BYTES))
    current = time.time() if now is None else now
    now_s = math.floor(current)
    init_exp = now_s + INIT_WINDOW_SECONDS
    exp = min(now_s + _lifetime(token_exp_seconds), init_exp)
    grants = []
    for role in (ROLE_CLIENT, ROLE_SERVER):
        payload = TokenPayload(
            kid=key.kid,
            aud=audience,
            iss=issuer,
            channel_id=channel_id,
            role=role,
            token_id=random_id(),
            init_exp=init_exp,
            idle_timeout_seconds=idle,
            iat=now_s,
            exp=exp,
        )
        grants.append(
            ChannelInitGrant(
                tunnel_url=tunnel_url,
                channel_id=channel_id,
                channel_init_expire_at_unix_s=init_exp,
                idle_timeout_seconds=idle,
                role=role,
                token=sign_token(payload, key, token_format=token_format),
                e2ee_psk_b64u=psk,
                allowed_suites=suites,
                default_suite=suite,
            )
        )
    return GrantPair(client=grants[0], server=grants[1])


def _lifetime(token_exp_seconds: int) -> int:
    return token_exp_seconds if token_exp_seconds > 0 else DEFAULT_TOKEN_EXP_SECONDS


def reissue_token(
    grant: ChannelInitGrant,
    key: IssuerKey,
    *,
    audience: str,
    issuer: str,
    token_exp_seconds: int = DEFAULT_TOKEN_EXP_SECONDS,
    skew_seconds: float = 0,
    now: float | None = None,
    token_format: str = FORMAT_FST2,
) -> ChannelInitGrant:
    """Return ``grant`` with a fresh token for the same channel and role.

    Refuses with :class:`ChannelInitExpiredError` once ``floor(now)`` is past
    ``init_exp + ceil(skew)``. Both endpoints of a channel must re-attach
    with re-issued tokens together (tunnel.md §6.3).
    """
    current = time.time() if now is None else now
    now_s = math.floor(current)
    init_exp = grant.channel_init_expire_at_unix_s
    if now_s > init_exp + round_skew(skew_seconds):
        raise ChannelInitExpiredError()
    payload = TokenPayload(
        kid=key.kid,
        aud=audience,
        iss=issuer,
        channel_id=grant.channel_id,
        role=grant.role,
        token_id=random_id(),
        init_exp=init_exp,
        idle_timeout_seconds=grant.idle_timeout_seconds,
        iat=now_s,
        exp=min(now_s + _lifetime(token_exp_seconds), init_exp),
    )
    return replace(grant, token=sign_token(payload, key, token_format=token_format))
