"""Grant pairs for the load generator, minted as a control plane would.

The load generator plays the control plane (tunnel.md §3.3): one fresh
PSK and two single-use tokens per channel, signed with the issuer key given
on the command line (by default the seed of tunnel.md §1.5 under kid
``k1``, which is what the reference's load generator uses).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.loadgen.config import DEFAULT_SEED, LoadConfig
from flowersec_tunnel.keys import IssuerKey, load_issuer_key
from flowersec_tunnel.tokens import TokenPayload, sign_token

INIT_WINDOW_SECONDS = 120
PSK_BYTES = 32
TOKEN_ID_BYTES = 24
ROLE_CLIENT = 1
ROLE_SERVER = 2


@dataclass(frozen=True, slots=True)
class Grant:
    """The members of a ChannelInitGrant this tool uses (tunnel.md §3.1)."""

    tunnel_url: str
    channel_id: str
    channel_init_expire_at_unix_s: int
    idle_timeout_seconds: int
    role: int
    token: str
    psk: bytes
    default_suite: int

    def __repr__(self) -> str:
        return f"Grant(channel_id={self.channel_id!r}, role={self.role})"


@dataclass(frozen=True, slots=True)
class GrantPair:
    """The client and server grants of one channel."""

    client: Grant
    server: Grant


def issuer_key(kid: str, key_file: str, seed: bytes) -> IssuerKey:
    """The key from ``key_file`` if given (its own kid), else from ``seed``."""
    if key_file:
        return load_issuer_key(key_file)
    return IssuerKey.from_seed(kid, seed)


class Minter:
    """Mints grant pairs for one tunnel URL, audience and issuer."""

    def __init__(
        self,
        key: IssuerKey,
        *,
        tunnel_url: str,
        aud: str,
        iss: str,
        idle_timeout: int,
        token_exp: int,
        suite: int,
    ) -> None:
        self._key = key
        self._tunnel_url = tunnel_url
        self._aud = aud
        self._iss = iss
        self._idle_timeout = idle_timeout
        self._token_exp = token_exp
        self._suite = suite

    def mint(self, channel_id: str) -> GrantPair:
        """A fresh pair: shared PSK and init window, one token per role."""
        now = time.time()
        iat = math.floor(now)
        init_exp = iat + INIT_WINDOW_SECONDS
        exp = min(math.floor(now + self._token_exp), init_exp)
        psk = secrets.token_bytes(PSK_BYTES)
        grants = []
        for role in (ROLE_CLIENT, ROLE_SERVER):
            payload = TokenPayload(
                kid=self._key.kid,
                aud=self._aud,
                iss=self._iss,
                channel_id=channel_id,
                role=role,
                token_id=b64u_encode(secrets.token_bytes(TOKEN_ID_BYTES)),
                init_exp=init_exp,
                idle_timeout_seconds=self._idle_timeout,
                iat=iat,
                exp=exp,
            )
            grants.append(
                Grant(
                    tunnel_url=self._tunnel_url,
                    channel_id=channel_id,
                    channel_init_expire_at_unix_s=init_exp,
                    idle_timeout_seconds=self._idle_timeout,
                    role=role,
                    token=sign_token(payload, self._key),
                    psk=psk,
                    default_suite=self._suite,
                )
            )
        return GrantPair(client=grants[0], server=grants[1])


def minter_for(config: LoadConfig) -> Minter:
    """The minter a run's configuration describes."""
    return Minter(
        issuer_key(config.kid, config.issuer_key_file, DEFAULT_SEED),
        tunnel_url=config.tunnel_url,
        aud=config.aud,
        iss=config.iss,
        idle_timeout=config.idle_timeout,
        token_exp=config.token_exp,
        suite=config.suite,
    )
