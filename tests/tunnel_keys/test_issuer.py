"""Grant-pair minting and token re-issue (tunnel.md §3.3)."""

from __future__ import annotations

import pytest

from flowersec_endpoint.encoding import b64u_decode
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_tunnel.issuer import (
    ChannelInitExpiredError,
    mint_grant_pair,
    normalize_suites,
    random_id,
    reissue_token,
)
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.tokens import TokenPayload, verify_token

NOW = 1700000000.75
URL = "ws://127.0.0.1:8080/ws"


def verify(
    grant: ChannelInitGrant, keyset: dict[str, bytes], now: float
) -> TokenPayload:
    return verify_token(
        grant.token, keyset, audience="aud", issuer="iss", skew_seconds=0, now=now
    )


@pytest.mark.parametrize("fmt", ["fst2", "jwt"])
def test_mint_pair(fmt: str, key: IssuerKey, keyset: dict[str, bytes]) -> None:
    pair = mint_grant_pair(
        key,
        tunnel_url=URL,
        audience="aud",
        issuer="iss",
        channel_id="chan",
        now=NOW,
        token_format=fmt,
    )
    client, server = pair.client, pair.server
    assert (client.role, server.role) == (1, 2)
    for grant in (client, server):
        assert grant.tunnel_url == URL
        assert grant.channel_id == "chan"
        assert grant.channel_init_expire_at_unix_s == 1700000120
        assert grant.idle_timeout_seconds == 60
        assert grant.allowed_suites == (1,)
        assert grant.default_suite == 1
        assert len(b64u_decode(grant.e2ee_psk_b64u, canonical=True)) == 32
    assert client.e2ee_psk_b64u == server.e2ee_psk_b64u
    claims = [verify(client, keyset, NOW), verify(server, keyset, NOW)]
    for role, payload in enumerate(claims, start=1):
        assert payload.role == role
        assert (payload.iat, payload.exp, payload.init_exp) == (
            1700000000,
            1700000060,
            1700000120,
        )
        assert len(payload.token_id) == 32
    assert claims[0].token_id != claims[1].token_id
    assert list(pair.to_obj()) == ["grant_client", "grant_server"]


def test_mint_defaults_and_caps(key: IssuerKey, keyset: dict[str, bytes]) -> None:
    pair = mint_grant_pair(
        key,
        tunnel_url=URL,
        audience="aud",
        issuer="iss",
        channel_id="c",
        token_exp_seconds=1000,
        idle_timeout_seconds=-1,
        allowed_suites=[0, 2, 1, 2],
        now=NOW,
    )
    payload = verify(pair.client, keyset, NOW)
    assert payload.exp == payload.init_exp == 1700000120
    assert payload.idle_timeout_seconds == 60
    assert pair.client.allowed_suites == (2, 1)
    assert pair.client.default_suite == 2
    short = mint_grant_pair(
        key,
        tunnel_url=URL,
        audience="aud",
        issuer="iss",
        channel_id="c",
        token_exp_seconds=0,
        idle_timeout_seconds=5,
        now=NOW,
    )
    assert verify(short.server, keyset, NOW).exp == 1700000060
    assert short.server.idle_timeout_seconds == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"tunnel_url": ""},
        {"audience": ""},
        {"channel_id": ""},
        {"allowed_suites": []},
        {"allowed_suites": [0]},
        {"allowed_suites": [1], "default_suite": 2},
        {"allowed_suites": [-1]},
        {"idle_timeout_seconds": 2**31},
    ],
)
def test_mint_rejects(key: IssuerKey, changes: dict[str, object]) -> None:
    args: dict[str, object] = {
        "tunnel_url": URL,
        "audience": "aud",
        "issuer": "iss",
        "channel_id": "c",
    }
    with pytest.raises(ValueError):
        mint_grant_pair(key, **{**args, **changes})  # type: ignore[arg-type]


def test_normalize_suites() -> None:
    assert normalize_suites([1, 1, 0, 2], 0) == ((1, 2), 1)
    assert normalize_suites([2, 1], 1) == ((2, 1), 1)


def test_random_id() -> None:
    ids = {random_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(b64u_decode(i, canonical=True)) == 24 for i in ids)


def test_reissue(key: IssuerKey, keyset: dict[str, bytes]) -> None:
    pair = mint_grant_pair(
        key, tunnel_url=URL, audience="aud", issuer="iss", channel_id="c", now=NOW
    )
    old = verify(pair.server, keyset, NOW)
    later = NOW + 100
    fresh = reissue_token(pair.server, key, audience="aud", issuer="iss", now=later)
    payload = verify(fresh, keyset, later)
    assert payload.token_id != old.token_id
    assert (payload.iat, payload.exp) == (1700000100, 1700000120)
    assert (payload.role, payload.channel_id, payload.init_exp) == (
        2,
        "c",
        old.init_exp,
    )
    assert fresh.e2ee_psk_b64u == pair.server.e2ee_psk_b64u
    assert fresh.token != pair.server.token
    # Exactly at init_exp it still works; one second after, only with skew.
    edge = reissue_token(
        pair.client, key, audience="aud", issuer="iss", now=1700000120.9
    )
    assert verify(edge, keyset, 1700000120).exp == 1700000120
    with pytest.raises(ChannelInitExpiredError, match="channel init expired"):
        reissue_token(pair.client, key, audience="aud", issuer="iss", now=1700000121)
    jwt_grant = reissue_token(
        pair.client,
        key,
        audience="aud",
        issuer="iss",
        now=1700000121,
        skew_seconds=0.5,
        token_format="jwt",
    )
    assert jwt_grant.token.startswith("eyJ")
    with pytest.raises(ChannelInitExpiredError):
        reissue_token(
            pair.client,
            key,
            audience="aud",
            issuer="iss",
            now=1700000122,
            skew_seconds=0.5,
        )
