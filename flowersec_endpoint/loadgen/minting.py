"""Grant pairs for the load generator, minted as a control plane would.

The load generator plays the control plane (tunnel.md §3.3) with the
project's issuer library: one fresh PSK and two single-use tokens per
channel, signed with the issuer key given on the command line (by default
the seed of tunnel.md §1.5 under kid ``k1``, as the reference's load
generator does).
"""

from __future__ import annotations

from flowersec_endpoint.encoding import b64u_decode
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.loadgen.config import DEFAULT_SEED, LoadConfig
from flowersec_tunnel.issuer import GrantPair, mint_grant_pair
from flowersec_tunnel.keys import IssuerKey, load_issuer_key

PSK_BYTES = 32


def issuer_key(kid: str, key_file: str, seed: bytes) -> IssuerKey:
    """The key from ``key_file`` if given (its own kid), else from ``seed``."""
    if key_file:
        return load_issuer_key(key_file)
    return IssuerKey.from_seed(kid, seed)


def psk_of(grant: ChannelInitGrant) -> bytes:
    """The grant's 32-byte PSK; ValueError if it is not one."""
    psk = b64u_decode(grant.e2ee_psk_b64u, canonical=True)
    if len(psk) != PSK_BYTES:
        raise ValueError("PSK must be 32 bytes")
    return psk


class Minter:
    """Mints grant pairs for one tunnel URL, audience and issuer."""

    def __init__(self, key: IssuerKey, config: LoadConfig) -> None:
        self._key = key
        self._config = config

    def mint(self, channel_id: str) -> GrantPair:
        """A fresh pair: shared PSK and init window, one token per role."""
        config = self._config
        return mint_grant_pair(
            self._key,
            tunnel_url=config.tunnel_url,
            audience=config.aud,
            issuer=config.iss,
            channel_id=channel_id,
            token_exp_seconds=config.token_exp,
            idle_timeout_seconds=config.idle_timeout,
            allowed_suites=(config.suite,),
            default_suite=config.suite,
        )


def minter_for(config: LoadConfig) -> Minter:
    """The minter a run's configuration describes."""
    key = issuer_key(config.kid, config.issuer_key_file, DEFAULT_SEED)
    return Minter(key, config)
