"""The ordered checks of e2ee.md §3, §5.2 and §9.3: the first failure wins.

Each case breaks two rules at once, so only the right order yields the
expected reason.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowersec_endpoint.e2ee.constants import (
    Direction,
    HandshakeType,
    RecordFlags,
    Role,
)
from flowersec_endpoint.e2ee.errors import E2EEError, RecordError, RecordFailure
from flowersec_endpoint.e2ee.frames import decode_handshake, encode_handshake
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    ServerConfig,
    ServerHandshake,
)
from flowersec_endpoint.e2ee.keyschedule import SessionKeys, rekey_key
from flowersec_endpoint.e2ee.records import RecordLayer, open_record, seal_record
from flowersec_endpoint.errors import Code

AEAD = AESGCM(bytes(range(32)))
PREFIX = b"\x01\x02\x03\x04"
LIMIT = 100
PSK = bytes(range(0x10, 0x30))
T = 1_700_000_000


def _record(**changes: int | bytes) -> bytes:
    frame = bytearray(seal_record(AEAD, PREFIX, RecordFlags.APP, 1, b"abc"))
    header = dict(
        zip(
            ("magic", "version", "flags", "seq", "length"),
            struct.unpack_from(">4sBBQI", frame),
            strict=True,
        )
    )
    header.update(changes)
    struct.pack_into(">4sBBQI", frame, 0, *header.values())
    return bytes(frame)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"XXXX" + bytes(LIMIT - 3), RecordFailure.RECORD_TOO_LARGE),
        (_record()[:17], RecordFailure.INVALID_LENGTH),
        (_record(magic=b"FSEH", version=2), RecordFailure.INVALID_MAGIC),
        (_record(version=2, flags=3), RecordFailure.BAD_VERSION),
        (_record(flags=3, seq=2), RecordFailure.BAD_FLAG),
        (_record(seq=2, length=1), RecordFailure.BAD_SEQ),
        (_record(length=20), RecordFailure.INVALID_LENGTH),
        (_record()[:-1] + b"\x00", RecordFailure.DECRYPT_FAILED),
        (_record(flags=RecordFlags.PING), RecordFailure.DECRYPT_FAILED),
    ],
)
def test_record_checks_in_order(frame: bytes, reason: RecordFailure) -> None:
    with pytest.raises(RecordError) as info:
        open_record(AEAD, PREFIX, 1, frame, LIMIT)
    assert info.value.reason is reason


def test_record_limit_is_inclusive_and_zero_is_unlimited() -> None:
    frame = seal_record(AEAD, PREFIX, RecordFlags.APP, 1, bytes(LIMIT - 34), LIMIT)
    assert len(frame) == LIMIT
    assert open_record(AEAD, PREFIX, 1, bytes(frame), LIMIT)[1] == bytes(LIMIT - 34)
    with pytest.raises(ValueError):
        seal_record(AEAD, PREFIX, RecordFlags.APP, 1, bytes(LIMIT - 33), LIMIT)
    big = seal_record(AEAD, PREFIX, RecordFlags.APP, 1, bytes(LIMIT), 0)
    assert open_record(AEAD, PREFIX, 1, bytes(big), 0)[1] == bytes(LIMIT)


def _fseh(magic: bytes = b"FSEH", version: int = 1, length: int = 2) -> bytes:
    return struct.pack(">4sBBI", magic, version, 1, length) + b"{}"


@pytest.mark.parametrize(
    ("frame", "limit", "code", "message"),
    [
        (b"FSEH\x01\x01\x00\x00\x00", 8192, Code.HANDSHAKE_FAILED, "invalid length"),
        (_fseh(b"FSEC", 2), 8192, Code.HANDSHAKE_FAILED, "invalid magic"),
        (_fseh(version=0, length=9), 8192, Code.INVALID_VERSION, "invalid version"),
        (_fseh(length=3), 1, Code.HANDSHAKE_FAILED, "invalid length"),
        (_fseh(length=2), 1, Code.HANDSHAKE_FAILED, "payload too large"),
        (_fseh(length=1), 8192, Code.HANDSHAKE_FAILED, "invalid length"),
    ],
)
def test_handshake_frame_checks_in_order(
    frame: bytes, limit: int, code: Code, message: str
) -> None:
    with pytest.raises(E2EEError) as info:
        decode_handshake(frame, limit)
    assert info.value.code is code
    assert info.value.message.endswith(message)


def test_handshake_frame_limit_is_inclusive_and_zero_is_unlimited() -> None:
    assert decode_handshake(_fseh(), 2) == (1, b"{}")
    assert decode_handshake(_fseh(), 0) == (1, b"{}")


def _server(**kw: Any) -> ServerHandshake:
    cfg: dict[str, Any] = {"psk": PSK, "channel_id": "c", "init_exp": T + 100} | kw
    return ServerHandshake(ServerConfig(**cfg), clock=lambda: T + 0.5)


def _init(**fields: Any) -> bytes:
    client = ClientHandshake(ClientConfig(psk=PSK, channel_id="c"))
    base = json.loads(decode_handshake(client.start())[1])
    return encode_handshake(HandshakeType.INIT, json.dumps(base | fields).encode())


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"version": 2, "role": 2}, Code.INVALID_VERSION, "init: bad version"),
        ({"role": 2, "channel_id": "x"}, Code.HANDSHAKE_FAILED, "role"),
        ({"channel_id": "x", "suite": 2}, Code.HANDSHAKE_FAILED, "channel mismatch"),
        ({"suite": 2, "nonce_c_b64u": "@"}, Code.HANDSHAKE_FAILED, "suite"),
        ({"nonce_c_b64u": "AAAA"}, Code.HANDSHAKE_FAILED, "nonce_c"),
    ],
)
def test_init_checks_in_order(fields: dict[str, Any], code: Code, message: str) -> None:
    with pytest.raises(E2EEError) as info:
        _server().receive(_init(**fields))
    assert info.value.code is code
    assert message in info.value.message


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"handshake_id": "x", "timestamp_unix_s": 1}, Code.HANDSHAKE_FAILED),
        (
            {"timestamp_unix_s": T + 200, "auth_tag_b64u": "A"},
            Code.TIMESTAMP_OUT_OF_SKEW,
        ),
        ({"auth_tag_b64u": "AAAA"}, Code.TIMESTAMP_AFTER_INIT_EXP),
    ],
)
def test_ack_checks_in_order(changes: dict[str, Any], code: Code) -> None:
    """handshake_id, then skew, then init_exp, all before the tag is read."""
    server = _server(init_exp=T - 100)
    client = ClientHandshake(
        ClientConfig(psk=PSK, channel_id="c"), clock=lambda: T + 0.5
    )
    ack = client.receive(server.receive(client.start()))
    assert ack is not None
    fields = json.loads(decode_handshake(ack)[1]) | changes
    with pytest.raises(E2EEError) as info:
        server.receive(encode_handshake(HandshakeType.ACK, json.dumps(fields).encode()))
    assert info.value.code is code


def test_ping_and_rekey_payloads_are_not_checked() -> None:
    """e2ee.md §9.3 step 9 and §15.11: flags 1 and 2 act whatever the payload."""
    keys = SessionKeys(
        transcript_hash=bytes(range(0xA0, 0xC0)),
        c2s_key=bytes(32),
        s2c_key=bytes(range(32)),
        rekey_base=bytes(range(0x40, 0x60)),
        c2s_nonce_prefix=bytes(4),
        s2c_nonce_prefix=PREFIX,
    )
    client = RecordLayer(keys, Role.CLIENT)
    client.recv_seq = 2
    new_key = rekey_key(keys.rekey_base, keys.transcript_hash, 3, Direction.S2C)
    frames = [
        seal_record(AEAD, PREFIX, RecordFlags.PING, 2, b"ignored"),
        seal_record(AEAD, PREFIX, RecordFlags.REKEY, 3, b"also ignored"),
        seal_record(AESGCM(new_key), PREFIX, RecordFlags.APP, 4, b"new key"),
    ]
    opened = [client.open(bytes(frame)) for frame in frames]
    assert opened == [(1, b"ignored"), (2, b"also ignored"), (0, b"new key")]
    assert client.recv_seq == 5
