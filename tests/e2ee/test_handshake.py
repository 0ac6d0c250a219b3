"""Handshake machines: validation order, time checks, cache and retries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowersec_endpoint.e2ee.cache import HandshakeCache
from flowersec_endpoint.e2ee.constants import HandshakeType, RecordFlags
from flowersec_endpoint.e2ee.errors import E2EEError
from flowersec_endpoint.e2ee.frames import decode_handshake, encode_handshake
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    ServerConfig,
    ServerHandshake,
    peek_init,
)
from flowersec_endpoint.errors import Code, Stage

PSK = bytes(range(0x10, 0x30))
T = 1_700_000_000


def _server(**kw: Any) -> ServerHandshake:
    cache = kw.pop("cache", None)
    clock = kw.pop("clock", lambda: T + 0.5)
    cfg: dict[str, Any] = {"psk": PSK, "channel_id": "c", "init_exp": T + 100} | kw
    return ServerHandshake(ServerConfig(**cfg), cache=cache, clock=clock)


def _client(**kw: Any) -> ClientHandshake:
    clock = kw.pop("clock", lambda: T + 0.5)
    cfg: dict[str, Any] = {"psk": PSK, "channel_id": "c"} | kw
    return ClientHandshake(ClientConfig(**cfg), clock=clock)


def _run(client: ClientHandshake, server: ServerHandshake) -> None:
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    assert client.receive(server.receive(ack)) is None


def _code(exc: pytest.ExceptionInfo[E2EEError]) -> tuple[Stage, Code]:
    return exc.value.stage, exc.value.code


@pytest.mark.parametrize("suite", [1, 2])
def test_machines_agree(suite: int) -> None:
    client, server = _client(suite=suite), _server(suite=suite)
    _run(client, server)
    assert client.done and server.done
    assert server.records.send_seq == 2 and client.records.recv_seq == 2
    assert client.records.send_seq == 1 and server.records.recv_seq == 1


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"channel_id": "", "init_exp": 0, "psk": b""}, Code.MISSING_CHANNEL_ID),
        ({"init_exp": 0, "psk": b"", "suite": 9}, Code.MISSING_INIT_EXP),
        ({"psk": b"short", "suite": 9}, Code.INVALID_PSK),
        ({"suite": 0}, Code.INVALID_SUITE),
    ],
)
def test_server_config_order(kw: dict[str, Any], code: Code) -> None:
    with pytest.raises(E2EEError) as info:
        _server(**kw)
    assert _code(info) == (Stage.VALIDATE, code)


@pytest.mark.parametrize(("offset", "ok"), [(-30, False), (-29, True), (30, True)])
def test_skew_window(offset: int, ok: bool) -> None:
    client = _client(clock=lambda: T + 0.5 + offset)
    server = _server()
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    if ok:
        server.receive(ack)
        assert server.done
    else:
        with pytest.raises(E2EEError) as info:
            server.receive(ack)
        assert info.value.code is Code.TIMESTAMP_OUT_OF_SKEW


def test_skew_upper_edge_rejected() -> None:
    client = _client(clock=lambda: T + 31.5)
    server = _server()
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    with pytest.raises(E2EEError) as info:
        server.receive(ack)
    assert info.value.code is Code.TIMESTAMP_OUT_OF_SKEW


def test_fractional_skew_rounds_up() -> None:
    client = _client(clock=lambda: T + 2.5)
    server = _server(clock_skew=1.5)
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    server.receive(ack)
    assert server.done


def test_init_exp_bound() -> None:
    client, server = _client(), _server(init_exp=T - 31)
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    with pytest.raises(E2EEError) as info:
        server.receive(ack)
    assert info.value.code is Code.TIMESTAMP_AFTER_INIT_EXP


def _init_frame(**fields: Any) -> bytes:
    base = json.loads(decode_handshake(_client().start())[1])
    return encode_handshake(HandshakeType.INIT, json.dumps(base | fields).encode())


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"version": 2, "role": 2}, Code.INVALID_VERSION),
        ({"role": 2, "channel_id": "x"}, Code.HANDSHAKE_FAILED),
        ({"channel_id": "other"}, Code.HANDSHAKE_FAILED),
        ({"suite": 0}, Code.HANDSHAKE_FAILED),
        ({"suite": 2}, Code.HANDSHAKE_FAILED),
        ({"nonce_c_b64u": "AAAA"}, Code.HANDSHAKE_FAILED),
        ({"client_eph_pub_b64u": "AAAA"}, Code.HANDSHAKE_FAILED),
        ({"version": "1"}, Code.HANDSHAKE_FAILED),
    ],
)
def test_server_init_checks(fields: dict[str, Any], code: Code) -> None:
    with pytest.raises(E2EEError) as info:
        _server().receive(_init_frame(**fields))
    assert _code(info) == (Stage.HANDSHAKE, code)


def test_header_version_byte_is_invalid_version() -> None:
    frame = bytearray(_client().start())
    frame[4] = 2
    with pytest.raises(E2EEError) as info:
        _server().receive(bytes(frame))
    assert info.value.code is Code.INVALID_VERSION


def test_unknown_keys_and_order_do_not_matter() -> None:
    client = _client()
    fields = json.loads(decode_handshake(client.start())[1])
    shuffled = dict(reversed(list(fields.items()))) | {"extra": [1, {"a": None}]}
    server = _server()
    resp = server.receive(
        encode_handshake(HandshakeType.INIT, json.dumps(shuffled, indent=1).encode())
    )
    ack = client.receive(resp)
    assert ack is not None
    server.receive(ack)
    assert server.done


def test_retry_on_same_connection_gets_same_resp() -> None:
    client, server = _client(), _server()
    init = client.start()
    resp = server.receive(init)
    assert server.receive(init) == resp
    assert server.receive(client.init_frame) == resp
    ack = client.receive(resp)
    assert ack is not None
    client.receive(server.receive(ack))
    assert client.done


def test_retry_with_other_parameters_fails() -> None:
    server = _server()
    server.receive(_client().start())
    with pytest.raises(E2EEError) as info:
        server.receive(_client().start())
    assert info.value.code is Code.HANDSHAKE_FAILED
    assert "retry" in info.value.message


def test_shared_cache_across_connections() -> None:
    cache = HandshakeCache()
    client = _client()
    init = client.start()
    first = _server(cache=cache).receive(init)
    second_server = _server(cache=cache)
    assert second_server.receive(init) == first
    assert len(cache) == 1
    ack = client.receive(first)
    assert ack is not None
    client.receive(second_server.receive(ack))
    assert client.done and len(cache) == 0


def test_cache_ttl_and_purge() -> None:
    now = [0.0]
    cache = HandshakeCache(ttl=60, clock=lambda: now[0])
    init = _client().start()
    first = _server(cache=cache).receive(init)
    now[0] = 59.9
    assert _server(cache=cache).receive(init) == first
    now[0] = 60.0
    assert _server(cache=cache).receive(init) != first
    assert len(cache) == 1


def test_cache_capacity() -> None:
    cache = HandshakeCache(max_entries=2)
    for _ in range(2):
        _server(cache=cache).receive(_client().start())
    with pytest.raises(E2EEError) as info:
        _server(cache=cache).receive(_client().start())
    assert info.value.code is Code.HANDSHAKE_FAILED
    assert "too many" in info.value.message
    unlimited = HandshakeCache(max_entries=0, ttl=0)
    for _ in range(5):
        _server(cache=unlimited).receive(_client().start())
    assert len(unlimited) == 5


def test_failed_handshake_keeps_entry() -> None:
    cache = HandshakeCache()
    client = _client(psk=bytes(32))
    server = _server(cache=cache)
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    with pytest.raises(E2EEError) as info:
        server.receive(ack)
    assert info.value.code is Code.AUTH_TAG_MISMATCH
    assert len(cache) == 1
    with pytest.raises(RuntimeError):
        server.receive(ack)


def test_ack_checks() -> None:
    client, server = _client(), _server()
    resp = server.receive(client.start())
    ack = client.receive(resp)
    assert ack is not None
    fields = json.loads(decode_handshake(ack)[1])
    for bad, code in [
        ({"handshake_id": "nope"}, Code.HANDSHAKE_FAILED),
        ({"auth_tag_b64u": "AAAA"}, Code.HANDSHAKE_FAILED),
        ({"auth_tag_b64u": "A" * 43}, Code.AUTH_TAG_MISMATCH),
    ]:
        fresh = _server()
        fresh_client = _client()
        fresh_ack = fresh_client.receive(fresh.receive(fresh_client.start()))
        assert fresh_ack is not None
        real = json.loads(decode_handshake(fresh_ack)[1])
        if "handshake_id" not in bad:
            bad = bad | {"handshake_id": real["handshake_id"]}
        frame = encode_handshake(
            HandshakeType.ACK, json.dumps(fields | real | bad).encode()
        )
        with pytest.raises(E2EEError) as info:
            fresh.receive(frame)
        assert info.value.code is code, bad


def test_unexpected_types() -> None:
    client, server = _client(), _server()
    init = client.start()
    with pytest.raises(E2EEError) as info:
        client.receive(init)
    assert info.value.code is Code.HANDSHAKE_FAILED
    with pytest.raises(E2EEError) as info:
        server.receive(encode_handshake(HandshakeType.ACK, b"{}"))
    assert info.value.code is Code.HANDSHAKE_FAILED


def test_client_rejects_bad_finished() -> None:
    client, server = _client(), _server()
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    finished = server.receive(ack)
    app = bytes(server.records.seal_ping())
    with pytest.raises(E2EEError) as info:
        client.receive(app)
    assert info.value.code is Code.HANDSHAKE_FAILED
    assert finished != app


def test_peek_init() -> None:
    init = peek_init(_client().start())
    assert init.channel_id == "c" and init.suite == 1
    with pytest.raises(E2EEError) as info:
        peek_init(_init_frame(channel_id=""))
    assert _code(info) == (Stage.VALIDATE, Code.MISSING_CHANNEL_ID)
    with pytest.raises(E2EEError) as info:
        peek_init(_init_frame(version=3))
    assert info.value.code is Code.INVALID_VERSION


def test_unlimited_record_size() -> None:
    client = _client(max_record_bytes=0)
    server = _server(max_record_bytes=0)
    _run(client, server)
    assert list(client.records.seal_app(b"")) == []
    frames = list(client.records.seal_app(bytes(3 << 20)))
    assert len(frames) == 1
    assert server.records.open(bytes(frames[0])) == (0, bytes(3 << 20))


def _resp_with(
    server: ServerHandshake, client: ClientHandshake, **fields: Any
) -> bytes:
    resp = json.loads(decode_handshake(server.receive(client.start()))[1])
    return encode_handshake(HandshakeType.RESP, json.dumps(resp | fields).encode())


def test_client_rejects_low_order_x25519_key() -> None:
    client = _client()
    frame = _resp_with(_server(), client, server_eph_pub_b64u="A" * 43)
    with pytest.raises(E2EEError) as info:
        client.receive(frame)
    assert info.value.code is Code.HANDSHAKE_FAILED


@pytest.mark.parametrize(
    "key",
    [
        "B" + "A" * 86,  # 0x04-prefixed but not on the curve
        "A" * 87,  # wrong prefix
    ],
)
def test_client_rejects_bad_p256_key(key: str) -> None:
    client = _client(suite=2)
    frame = _resp_with(_server(suite=2), client, server_eph_pub_b64u=key)
    with pytest.raises(E2EEError) as info:
        client.receive(frame)
    assert info.value.code is Code.HANDSHAKE_FAILED


def test_server_checks_p256_point_only_after_the_tag() -> None:
    """Like the reference, an off-curve client key passes the init checks."""
    server = _server(suite=2)
    client = _client(suite=2)
    fields = json.loads(decode_handshake(client.start())[1])
    fields["client_eph_pub_b64u"] = "B" + "A" * 86
    resp = server.receive(
        encode_handshake(HandshakeType.INIT, json.dumps(fields).encode())
    )
    assert decode_handshake(resp)[0] == HandshakeType.RESP


def test_injected_rng_drives_p256_keys() -> None:
    """Scalars out of range are redrawn; the first valid one is the key."""
    order = bytes.fromhex(
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
    )
    draws = [bytes(32), order, (1).to_bytes(32, "big"), bytes(range(32))]
    client = ClientHandshake(
        ClientConfig(psk=PSK, channel_id="c", suite=2),
        rng=lambda n: draws.pop(0)[:n],
        clock=lambda: T,
    )
    init = json.loads(decode_handshake(client.start())[1])
    generator = (
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4a"
        "f5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"
    )
    assert init["client_eph_pub_b64u"] == generator
    assert draws == []


@pytest.mark.parametrize(
    ("suite", "bad_key"),
    [(1, "A" * 43), (2, "B" + "A" * 86)],
)
def test_server_rejects_bad_client_key_after_a_valid_tag(
    suite: int, bad_key: str
) -> None:
    """§5.2 step 9: an all-zero X25519 secret or an off-curve P-256 point is
    caught by the key agreement, after the tag; the cache entry stays."""
    from flowersec_endpoint.e2ee.keyschedule import auth_tag, transcript_hash
    from flowersec_endpoint.encoding import b64u_decode, b64u_encode

    cache = HandshakeCache()
    server = _server(suite=suite, cache=cache)
    fields = json.loads(decode_handshake(_client(suite=suite).start())[1])
    fields["client_eph_pub_b64u"] = bad_key
    resp_frame = server.receive(
        encode_handshake(HandshakeType.INIT, json.dumps(fields).encode())
    )
    resp = json.loads(decode_handshake(resp_frame)[1])
    th = transcript_hash(
        version=1,
        suite=suite,
        role=1,
        client_features=0,
        server_features=resp["server_features"],
        channel_id="c",
        nonce_c=b64u_decode(fields["nonce_c_b64u"]),
        nonce_s=b64u_decode(resp["nonce_s_b64u"]),
        client_pub=b64u_decode(bad_key),
        server_pub=b64u_decode(resp["server_eph_pub_b64u"]),
    )
    ack = {
        "handshake_id": resp["handshake_id"],
        "timestamp_unix_s": T,
        "auth_tag_b64u": b64u_encode(auth_tag(PSK, th, T)),
    }
    with pytest.raises(E2EEError) as info:
        server.receive(encode_handshake(HandshakeType.ACK, json.dumps(ack).encode()))
    assert _code(info) == (Stage.HANDSHAKE, Code.HANDSHAKE_FAILED)
    assert "key agreement" in info.value.message
    assert len(cache) == 1


def test_missing_features_read_as_zero() -> None:
    """§4.1/§4.2: an absent client_features or server_features counts as 0."""
    client, server = _client(), _server(server_features=0)
    init = json.loads(decode_handshake(client.start())[1])
    del init["client_features"]
    resp_frame = server.receive(
        encode_handshake(HandshakeType.INIT, json.dumps(init).encode())
    )
    resp = json.loads(decode_handshake(resp_frame)[1])
    del resp["server_features"]
    ack = client.receive(
        encode_handshake(HandshakeType.RESP, json.dumps(resp).encode())
    )
    assert ack is not None
    assert client.receive(server.receive(ack)) is None
    assert client.done and server.done


@pytest.mark.parametrize(
    ("flags", "payload"),
    [(RecordFlags.PING, b"x"), (RecordFlags.APP, b""), (RecordFlags.REKEY, b"")],
)
def test_server_finished_must_be_an_empty_ping(
    flags: RecordFlags, payload: bytes
) -> None:
    """§5.1 step 10 / §8: seq 1, flags 1, empty plaintext, or the handshake fails."""
    client, server = _client(), _server()
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    server.receive(ack)
    server.records.send_seq = 1
    forged = bytes(server.records.seal(flags, payload))
    with pytest.raises(E2EEError) as info:
        client.receive(forged)
    assert _code(info) == (Stage.HANDSHAKE, Code.HANDSHAKE_FAILED)
    assert "server-finished" in info.value.message
    assert not client.done
