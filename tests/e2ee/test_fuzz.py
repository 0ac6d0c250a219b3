"""Hypothesis on every decoder: only the documented error type comes out."""

from __future__ import annotations

import contextlib
import json
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from flowersec_endpoint.e2ee.constants import HandshakeType
from flowersec_endpoint.e2ee.errors import E2EEError, RecordError
from flowersec_endpoint.e2ee.frames import decode_handshake, encode_handshake
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    ServerConfig,
    ServerHandshake,
)
from flowersec_endpoint.e2ee.messages import E2EEAck, E2EEInit, E2EEResp
from flowersec_endpoint.e2ee.records import open_record, seal_record

PSK = bytes(32)
AEAD = AESGCM(bytes(32))
PREFIX = b"\x01\x02\x03\x04"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
init_keys = st.sampled_from(
    [
        "channel_id",
        "role",
        "version",
        "suite",
        "client_eph_pub_b64u",
        "nonce_c_b64u",
        "client_features",
        "handshake_id",
        "server_eph_pub_b64u",
        "nonce_s_b64u",
        "server_features",
        "timestamp_unix_s",
        "auth_tag_b64u",
    ]
)
json_objects = st.dictionaries(init_keys | st.text(max_size=8), json_values)
payloads = st.binary(max_size=300) | json_objects.map(lambda o: json.dumps(o).encode())


@given(st.binary(max_size=400), st.integers(min_value=0, max_value=500))
def test_decode_handshake_only_raises_e2ee_error(data: bytes, limit: int) -> None:
    try:
        msg_type, payload = decode_handshake(data, limit)
    except E2EEError:
        return
    assert encode_handshake(msg_type, payload) == data


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_huge_declared_length_is_rejected(length: int, body: bytes) -> None:
    frame = struct.pack(">4sBBI", b"FSEH", 1, 1, length) + body
    try:
        _, payload = decode_handshake(frame)
    except E2EEError:
        return
    assert len(payload) == length <= 8192


@given(payloads)
def test_message_parsers_only_raise_e2ee_error(payload: bytes) -> None:
    for parser in (E2EEInit.parse, E2EEResp.parse, E2EEAck.parse):
        with contextlib.suppress(E2EEError):
            parser(payload)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2**64 - 1))
def test_open_record_only_raises_record_error(data: bytes, seq: int) -> None:
    with contextlib.suppress(RecordError):
        open_record(AEAD, PREFIX, seq, data)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=40))
def test_mutated_records_never_open(plaintext: bytes, index: int) -> None:
    frame = bytearray(seal_record(AEAD, PREFIX, 0, 5, plaintext))
    index %= len(frame)
    frame[index] ^= 0x80
    try:
        open_record(AEAD, PREFIX, 5, bytes(frame))
    except RecordError:
        return
    raise AssertionError("a mutated record opened")


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(list(HandshakeType)), payloads), max_size=4))
def test_server_machine_only_raises_e2ee_error(
    messages: list[tuple[HandshakeType, bytes]],
) -> None:
    server = ServerHandshake(
        ServerConfig(psk=PSK, channel_id="c", init_exp=4_000_000_000)
    )
    for msg_type, payload in messages:
        try:
            server.receive(encode_handshake(msg_type, payload))
        except E2EEError:
            return


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(list(HandshakeType)), payloads), max_size=3))
def test_client_machine_only_raises_e2ee_error(
    messages: list[tuple[HandshakeType, bytes]],
) -> None:
    client = ClientHandshake(ClientConfig(psk=PSK, channel_id="c"))
    client.start()
    for msg_type, payload in messages:
        try:
            client.receive(encode_handshake(msg_type, payload))
        except E2EEError:
            return


@given(st.text(max_size=8))
def test_any_channel_id_text_is_handled(channel_id: str) -> None:
    escaped = json.dumps({"channel_id": channel_id, "role": 1, "version": 1})
    server = ServerHandshake(ServerConfig(psk=PSK, channel_id="c", init_exp=1))
    with contextlib.suppress(E2EEError):
        server.receive(encode_handshake(HandshakeType.INIT, escaped.encode()))


def test_lone_surrogate_is_a_handshake_error() -> None:
    server = ServerHandshake(ServerConfig(psk=PSK, channel_id="c", init_exp=1))
    payload = b'{"channel_id":"\\ud800","role":1,"version":1}'
    try:
        server.receive(encode_handshake(HandshakeType.INIT, payload))
    except E2EEError as exc:
        assert "Unicode" in exc.message
    else:
        raise AssertionError("accepted a lone surrogate")


ops = st.lists(
    st.one_of(
        st.tuples(st.just("app"), st.binary(min_size=90, max_size=300)),
        st.tuples(st.just("app"), st.binary(max_size=10)),
        st.tuples(st.just("ping"), st.just(b"")),
        st.tuples(st.just("rekey"), st.just(b"")),
    ),
    max_size=20,
)


@settings(max_examples=50)
@given(ops, ops)
def test_any_record_sequence_round_trips(
    c2s: list[tuple[str, bytes]], s2c: list[tuple[str, bytes]]
) -> None:
    client = ClientHandshake(
        ClientConfig(psk=PSK, channel_id="c", max_record_bytes=134)
    )
    server = ServerHandshake(
        ServerConfig(
            psk=PSK, channel_id="c", init_exp=4_000_000_000, max_record_bytes=134
        )
    )
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    client.receive(server.receive(ack))
    for sender, receiver, script in (
        (client.records, server.records, c2s),
        (server.records, client.records, s2c),
    ):
        frames: list[bytes] = []
        for op, data in script:
            if op == "app":
                frames.extend(bytes(f) for f in sender.seal_app(data))
            elif op == "ping":
                frames.append(bytes(sender.seal_ping()))
            else:
                frames.append(bytes(sender.seal_rekey()))
        received = b"".join(
            plaintext for flags, plaintext in map(receiver.open, frames) if flags == 0
        )
        assert received == b"".join(d for op, d in script if op == "app")
