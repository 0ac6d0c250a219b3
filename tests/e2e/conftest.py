"""Fixtures for the end-to-end suite: a real tunnel process and grant minting.

The tunnel runs as a subprocess of ``flowersec-tunnel`` on 127.0.0.1 with a
keyset holding a throwaway issuer key; grants are minted with the issuer
library for that key, exactly as a control plane would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flowersec_tunnel.issuer import GrantPair, mint_grant_pair, random_id
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.spawn import SpawnedTunnel, spawn_tunnel

ORIGIN = "http://127.0.0.1"
AUD = "flowersec-tunnel:e2e"
ISS = "issuer-e2e"

Mint = Callable[..., GrantPair]


@pytest.fixture(scope="session")
def issuer_key() -> IssuerKey:
    return IssuerKey.generate("e2e")


def _spawn(key: IssuerKey) -> SpawnedTunnel:
    return spawn_tunnel(
        kid=key.kid,
        public_key=key.public_key,
        aud=AUD,
        iss=ISS,
        origin=ORIGIN,
        channels=64,
    )


@pytest.fixture(scope="session")
def tunnel(issuer_key: IssuerKey) -> Iterator[SpawnedTunnel]:
    """One tunnel shared by the tests that do not harm it."""
    spawned = _spawn(issuer_key)
    yield spawned
    spawned.stop()


@pytest.fixture
def own_tunnel(issuer_key: IssuerKey) -> Iterator[SpawnedTunnel]:
    """A tunnel for one test, which may kill it."""
    spawned = _spawn(issuer_key)
    yield spawned
    spawned.stop()


def _minter(key: IssuerKey, tunnel: SpawnedTunnel) -> Mint:
    def mint(**overrides: Any) -> GrantPair:
        args: dict[str, Any] = {
            "tunnel_url": tunnel.ws_url,
            "audience": AUD,
            "issuer": ISS,
            "channel_id": random_id(),
        }
        args.update(overrides)
        return mint_grant_pair(key, **args)

    return mint


@pytest.fixture
def mint(issuer_key: IssuerKey, tunnel: SpawnedTunnel) -> Mint:
    """Mint a grant pair for the shared tunnel (keyword overrides allowed)."""
    return _minter(issuer_key, tunnel)


@pytest.fixture
def mint_own(issuer_key: IssuerKey, own_tunnel: SpawnedTunnel) -> Mint:
    """Mint a grant pair for this test's own tunnel."""
    return _minter(issuer_key, own_tunnel)
