"""Official vectors and the worked examples of e2ee.md §16, byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowersec_endpoint.e2ee.constants import Direction, RecordFlags, Role, Suite
from flowersec_endpoint.e2ee.errors import E2EEError
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    ServerConfig,
    ServerHandshake,
)
from flowersec_endpoint.e2ee.keyschedule import (
    EphemeralKey,
    auth_tag,
    derive_session_keys,
    rekey_key,
    transcript_hash,
)
from flowersec_endpoint.e2ee.records import open_record, seal_record
from flowersec_endpoint.encoding import b64u_decode as d
from flowersec_endpoint.encoding import b64u_encode as e
from flowersec_endpoint.errors import Code

# Worked example of §16 (suite 1), values as the reference produced them.
EX = {
    "client_priv": "AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dw",
    "server_priv": "w8rR2N_m7fT7AgkQFx4lLDM6QUhPVl1ka3J5gIeOlZw",
    "nonce_c": "4-rx-P8GDRQbIikwNz5FTFNaYWhvdn2Ei5KZoKeutbw",
    "nonce_s": "o6qxuL_GzdTb4unw9_4FDBMaISgvNj1ES1JZYGdudXw",
    "client_pub": "u1D_noKldM-_gg6X9g-5wUPsdBXPUU-M_Zjv9Z4FlhQ",
    "server_pub": "tQ6tSjSbCdiP1h9KHmzANccrx0rK-UiWndTDNf9QtjI",
    "shared": "f65-GXP19aUEOSuR4kpkoIW0zLP1y1vd3KrCHEjfzwc",
    "th": "KlMhcVnWgKkt26EQsvqZZiLOr9nN9OYu24pB3yHo6Ww",
    "c2s_key": "OhHYuitANweYy8spywspbCRGMKoFSYtHAdIdeb80NEM",
    "s2c_key": "rnTIGCi83g9pVnRW3knsra7EKWZpyzzBInTppLOzO5k",
    "c2s_prefix": "mbFU5A",
    "s2c_prefix": "g75Jag",
    "rekey_base": "H6AzoatmqxSOtRWsod2i0GvskHZYioI7P6-hnIlHsiM",
    "auth_tag": "Tje5ga89s5TcIzCKKNWfncWMvYXQu5rFJGzohPqKAI8",
    "finished": "RlNFQwEBAAAAAAAAAAEAAAAQUWp5dhamzeJILjiPFJy-mw",
    "c2s_app1": "RlNFQwEAAAAAAAAAAAEAAAAV5-N0Ywf73Ch-svoNc8oL_2Lq7T03",
    "s2c_rekey2": "RlNFQwECAAAAAAAAAAIAAAAQGm72dzZ-JRID3kZMjUH2BQ",
    "s2c_new_key": "ILW59B7vGzF1qcPpnethRKPonDHihXWWNjrAWLX0-cI",
    "s2c_app3": "RlNFQwEAAAAAAAAAAAMAAAAV6QoFAN9Lk6mmIsaC8AaMB4wYiAeN",
}
HANDSHAKE_ID = "g4qRmJ-mrbS7wsnQ197l7PP6AQgPFh0k"
INIT_JSON = (
    b'{"channel_id":"chan_example","role":1,"version":1,"suite":1,'
    b'"client_eph_pub_b64u":"u1D_noKldM-_gg6X9g-5wUPsdBXPUU-M_Zjv9Z4FlhQ",'
    b'"nonce_c_b64u":"4-rx-P8GDRQbIikwNz5FTFNaYWhvdn2Ei5KZoKeutbw",'
    b'"client_features":0}'
)
RESP_JSON = (
    b'{"handshake_id":"g4qRmJ-mrbS7wsnQ197l7PP6AQgPFh0k",'
    b'"server_eph_pub_b64u":"tQ6tSjSbCdiP1h9KHmzANccrx0rK-UiWndTDNf9QtjI",'
    b'"nonce_s_b64u":"o6qxuL_GzdTb4unw9_4FDBMaISgvNj1ES1JZYGdudXw",'
    b'"server_features":1}'
)
ACK_JSON = (
    b'{"handshake_id":"g4qRmJ-mrbS7wsnQ197l7PP6AQgPFh0k",'
    b'"timestamp_unix_s":1700000000,'
    b'"auth_tag_b64u":"Tje5ga89s5TcIzCKKNWfncWMvYXQu5rFJGzohPqKAI8"}'
)
TS = 1700000000


def test_transcript_hash_vectors(e2ee_vectors: dict[str, Any]) -> None:
    for case in e2ee_vectors["transcript_hash"]:
        i = case["inputs"]
        th = transcript_hash(
            version=i["version"],
            suite=i["suite"],
            role=i["role"],
            client_features=i["client_features"],
            server_features=i["server_features"],
            channel_id=i["channel_id"],
            nonce_c=d(i["nonce_c_b64u"]),
            nonce_s=d(i["nonce_s_b64u"]),
            client_pub=d(i["client_eph_pub_b64u"]),
            server_pub=d(i["server_eph_pub_b64u"]),
        )
        assert e(th) == case["expected"]["transcript_hash_b64u"], case["case_id"]


def test_record_frame_vectors(e2ee_vectors: dict[str, Any]) -> None:
    for case in e2ee_vectors["record_frame"]:
        i = case["inputs"]
        aead = AESGCM(d(i["key_b64u"]))
        prefix = d(i["nonce_prefix_b64u"])
        plaintext = i["plaintext_utf8"].encode()
        frame = seal_record(
            aead, prefix, i["flags"], i["seq"], plaintext, i["max_record_bytes"]
        )
        expected = case["expected"]["frame_b64u"]
        assert e(bytes(frame)) == expected, case["case_id"]
        assert frame[:18].hex() == "46534543" + "01" + "00" + "0000000000000001" + (
            "00000015"
        )
        flags, opened = open_record(
            aead, prefix, i["seq"], d(expected), i["max_record_bytes"]
        )
        assert (flags, opened) == (i["flags"], plaintext)


def test_handshake_p256_vectors(e2ee_vectors: dict[str, Any]) -> None:
    for case in e2ee_vectors["handshake_p256"]:
        i, x = case["inputs"], case["expected"]
        suite = Suite(i["suite"])
        client = EphemeralKey.from_private_bytes(suite, d(i["client_eph_priv_b64u"]))
        server = EphemeralKey.from_private_bytes(suite, d(i["server_eph_priv_b64u"]))
        assert e(client.public) == i["client_eph_pub_b64u"]
        assert e(server.public) == i["server_eph_pub_b64u"]
        shared = client.exchange(server.public)
        assert e(shared) == x["shared_secret_b64u"]
        assert server.exchange(client.public) == shared
        th = transcript_hash(
            version=i["version"],
            suite=i["suite"],
            role=i["role"],
            client_features=i["client_features"],
            server_features=i["server_features"],
            channel_id=i["channel_id"],
            nonce_c=d(i["nonce_c_b64u"]),
            nonce_s=d(i["nonce_s_b64u"]),
            client_pub=client.public,
            server_pub=server.public,
        )
        assert e(th) == x["transcript_hash_b64u"]
        keys = derive_session_keys(d(i["psk_b64u"]), shared, th)
        assert e(keys.c2s_key) == x["c2s_key_b64u"]
        assert e(keys.s2c_key) == x["s2c_key_b64u"]
        assert e(keys.c2s_nonce_prefix) == x["c2s_nonce_prefix_b64u"]
        assert e(keys.s2c_nonce_prefix) == x["s2c_nonce_prefix_b64u"]
        assert e(keys.rekey_base) == x["rekey_base_b64u"]


def test_standalone_kdf_examples(psk: bytes) -> None:
    th = bytes(range(0xA0, 0xC0))
    assert e(auth_tag(psk, th, TS)) == "hYGydftu2V4-xTZOjaISznsFeLmyTZ-1umB14G5bnfo"
    base = bytes(range(0x40, 0x60))
    assert (
        e(rekey_key(base, th, 5, Direction.C2S))
        == "NJbbSW2EXoSMjeSwWjFeY60-wDOBEZG9hhtSgB5mgSQ"
    )
    assert (
        e(rekey_key(base, th, 5, Direction.S2C))
        == "H-CGEl_F-ROnWmEAALJwwZbS5UMawIqHsIESqz9phTI"
    )
    aead = AESGCM(bytes(range(0xA0, 0xC0)))
    prefix = bytes([1, 2, 3, 4])
    ping = seal_record(aead, prefix, RecordFlags.PING, 1, b"")
    assert e(bytes(ping)) == "RlNFQwEBAAAAAAAAAAEAAAAQEmluDVuYKff3TgJ2bK6YZw"
    rekey = seal_record(aead, prefix, RecordFlags.REKEY, 7, b"")
    assert e(bytes(rekey)) == "RlNFQwECAAAAAAAAAAcAAAAQlO6o6RP6BrobsxxP4SiHfg"


def test_worked_example_key_schedule(psk: bytes) -> None:
    suite = Suite.X25519_HKDF_SHA256_AES_256_GCM
    client = EphemeralKey.from_private_bytes(suite, d(EX["client_priv"]))
    server = EphemeralKey.from_private_bytes(suite, d(EX["server_priv"]))
    assert e(client.public) == EX["client_pub"]
    assert e(server.public) == EX["server_pub"]
    shared = client.exchange(server.public)
    assert e(shared) == EX["shared"]
    th = transcript_hash(
        version=1,
        suite=suite,
        role=Role.CLIENT,
        client_features=0,
        server_features=1,
        channel_id="chan_example",
        nonce_c=d(EX["nonce_c"]),
        nonce_s=d(EX["nonce_s"]),
        client_pub=client.public,
        server_pub=server.public,
    )
    assert e(th) == EX["th"]
    keys = derive_session_keys(psk, shared, th)
    assert e(keys.c2s_key) == EX["c2s_key"]
    assert e(keys.s2c_key) == EX["s2c_key"]
    assert e(keys.c2s_nonce_prefix) == EX["c2s_prefix"]
    assert e(keys.s2c_nonce_prefix) == EX["s2c_prefix"]
    assert e(keys.rekey_base) == EX["rekey_base"]
    assert e(auth_tag(psk, th, TS)) == EX["auth_tag"]
    assert e(rekey_key(keys.rekey_base, th, 2, Direction.S2C)) == EX["s2c_new_key"]


def test_worked_example_full_run(
    psk: bytes, scripted: Callable[[list[bytes]], Callable[[int], bytes]]
) -> None:
    """Both machines with the example's randomness emit the example's bytes."""
    client = ClientHandshake(
        ClientConfig(psk=psk, channel_id="chan_example"),
        rng=scripted([d(EX["client_priv"]), d(EX["nonce_c"])]),
        clock=lambda: TS + 0.75,
    )
    server = ServerHandshake(
        ServerConfig(
            psk=psk, channel_id="chan_example", init_exp=TS + 60, server_features=1
        ),
        rng=scripted([d(EX["server_priv"]), d(EX["nonce_s"]), d(HANDSHAKE_ID)]),
        clock=lambda: float(TS),
    )
    init = client.start()
    assert init == bytes.fromhex("465345480101000000d1") + INIT_JSON
    resp = server.receive(init)
    assert resp == bytes.fromhex("465345480102000000c8") + RESP_JSON
    ack = client.receive(resp)
    assert ack == bytes.fromhex("4653454801030000008f") + ACK_JSON
    finished = server.receive(ack)
    assert e(finished) == EX["finished"]
    assert client.receive(finished) is None
    assert client.done and server.done

    c, s = client.records, server.records
    app1 = bytes(next(c.seal_app(b"ping?")))
    assert e(app1) == EX["c2s_app1"]
    assert s.open(app1) == (RecordFlags.APP, b"ping?")
    rekey = bytes(s.seal_rekey())
    assert e(bytes(rekey)) == EX["s2c_rekey2"]
    pong = bytes(next(s.seal_app(b"pong!")))
    assert e(pong) == EX["s2c_app3"]
    assert c.open(rekey) == (RecordFlags.REKEY, b"")
    assert c.open(pong) == (RecordFlags.APP, b"pong!")


def test_transcript_rejects_bad_inputs() -> None:
    """§6 (and §15.6): empty or over-long fields and non-32-byte nonces."""
    good: dict[str, Any] = {
        "version": 1,
        "suite": 1,
        "role": 1,
        "client_features": 0,
        "server_features": 0,
        "channel_id": "c",
        "nonce_c": bytes(32),
        "nonce_s": bytes(32),
        "client_pub": bytes(32),
        "server_pub": bytes(32),
    }
    transcript_hash(**good)
    for bad in (
        {"channel_id": ""},
        {"channel_id": "x" * 65536},
        {"client_pub": b""},
        {"server_pub": bytes(65536)},
        {"nonce_c": bytes(31)},
        {"nonce_s": bytes(33)},
    ):
        with pytest.raises(E2EEError) as info:
            transcript_hash(**(good | bad))
        assert info.value.code is Code.HANDSHAKE_FAILED, bad
    transcript_hash(**(good | {"channel_id": "x" * 65535}))
