"""Issuer private key file and tunnel keyset file: formats, modes, errors."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowersec_endpoint.encoding import b64u_encode
from flowersec_tunnel.jsonfile import RefuseOverwriteError
from flowersec_tunnel.keys import (
    IssuerKey,
    KeyFileError,
    load_issuer_key,
    load_keyset,
    write_issuer_key,
    write_keyset,
)

SPEC_PRIV = (
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe_884Qvh1w3RjnS8CZZ-TWMJulDV8d"
    "3IZkElUxuA"
)
SPEC_PUB = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issuer_key_file_layout(tmp_path: Path, key: IssuerKey) -> None:
    path = tmp_path / "issuer_key.json"
    write_issuer_key(path, key)
    assert path.read_bytes() == (
        b'{\n  "kid": "k1",\n  "privkey_b64u": "' + SPEC_PRIV.encode() + b'"\n}'
    )
    assert mode_of(path) == 0o600
    assert load_issuer_key(path) == key
    assert SPEC_PRIV not in repr(key)


def test_keyset_file_layout(tmp_path: Path, key: IssuerKey) -> None:
    path = tmp_path / "issuer_keys.json"
    write_keyset(path, {"k1": key.public_key, "k0": bytes(32)})
    text = path.read_text()
    assert text == (
        '{\n  "keys": [\n    {\n      "kid": "k1",\n      "pubkey_b64u": "'
        + SPEC_PUB
        + '"\n    },\n    {\n      "kid": "k0",\n      "pubkey_b64u": "'
        + b64u_encode(bytes(32))
        + '"\n    }\n  ]\n}'
    )
    assert mode_of(path) == 0o644
    assert load_keyset(path) == {"k1": key.public_key, "k0": bytes(32)}


def test_write_refuses_and_overwrites(tmp_path: Path, key: IssuerKey) -> None:
    path = tmp_path / "k.json"
    path.write_text("old")
    path.chmod(0o666)
    with pytest.raises(RefuseOverwriteError) as info:
        write_issuer_key(path, key)
    assert str(info.value) == (
        f"refusing to overwrite existing file: {path} (use --overwrite)"
    )
    assert path.read_text() == "old"
    write_issuer_key(path, key, overwrite=True)
    assert mode_of(path) == 0o600
    assert load_issuer_key(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_write_keyset_rejects_bad_keys(tmp_path: Path) -> None:
    for keys in ({}, {"": bytes(32)}, {"k": bytes(31)}):
        with pytest.raises(ValueError):
            write_keyset(tmp_path / "x.json", keys)
    assert not (tmp_path / "x.json").exists()


def test_generate_and_from_seed() -> None:
    key = IssuerKey.generate("k9")
    assert IssuerKey.from_seed("k9", key.seed) == key
    assert len(key.private_key) == 64
    with pytest.raises(ValueError):
        IssuerKey.from_seed("k", bytes(31))
    with pytest.raises(ValueError):
        IssuerKey("k", bytes(32), bytes(3))


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "f.json"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


WRONG_HALF = b64u_encode(bytes(range(32)) + bytes(32))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "parse"),
        ("nope", "parse"),
        ("[]", "parse"),
        ("null", "parse"),
        ('{"kid":"k1"}', "missing"),
        ('{"privkey_b64u":"' + SPEC_PRIV + '"}', "missing"),
        ('{"kid":"","privkey_b64u":"' + SPEC_PRIV + '"}', "missing"),
        ('{"kid":1,"privkey_b64u":"' + SPEC_PRIV + '"}', "parse"),
        ('{"kid":"k1","privkey_b64u":"' + SPEC_PRIV + '="}', "base64url"),
        ('{"kid":"k1","privkey_b64u":"' + SPEC_PRIV[:-2] + '"}', "64 bytes"),
        ('{"kid":"k1","privkey_b64u":"' + SPEC_PUB + '"}', "64 bytes"),
        ('{"kid":"k1","privkey_b64u":"' + WRONG_HALF + '"}', "does not match"),
        (b'{"kid":"\xff","privkey_b64u":"x"}', "parse"),
    ],
)
def test_issuer_key_load_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(KeyFileError) as info:
        load_issuer_key(path)
    message = str(info.value)
    assert fragment in message
    assert str(path) in message
    assert SPEC_PRIV[:20] not in message


def test_issuer_key_accepts_extras_and_crlf(tmp_path: Path, key: IssuerKey) -> None:
    broken = SPEC_PRIV[:40] + "\\r\\n" + SPEC_PRIV[40:]
    path = write(tmp_path, '{"x":[1],"kid":"k1","privkey_b64u":"' + broken + '"}')
    assert load_issuer_key(path) == key


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="read issuer private key file"):
        load_issuer_key(tmp_path / "absent.json")
    with pytest.raises(KeyFileError, match="read issuer keys file"):
        load_keyset(tmp_path)


def entry(kid: object = "k1", pub: object = SPEC_PUB) -> dict[str, object]:
    return {"kid": kid, "pubkey_b64u": pub}


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"keys": None},
        {"keys": []},
        {"keys": {}},
        {"keys": "k1"},
        {"keys": [None]},
        {"keys": [1]},
        {"keys": [entry(kid="")]},
        {"keys": [entry(pub="")]},
        {"keys": [entry(kid=None)]},
        {"keys": [entry(kid=1)]},
        {"keys": [entry(pub=["x"])]},
        {"keys": [entry(pub=SPEC_PUB + "=")]},
        {"keys": [entry(pub=SPEC_PUB[:-1])]},
        {"keys": [entry(pub=SPEC_PRIV)]},
        {"keys": [entry(), entry(kid="k2", pub="A")]},
    ],
)
def test_keyset_load_errors(tmp_path: Path, doc: dict[str, object]) -> None:
    with pytest.raises(KeyFileError):
        load_keyset(write(tmp_path, json.dumps(doc)))


@pytest.mark.parametrize("content", ["", "{", "[]", "null", '{"keys":[]} x'])
def test_keyset_not_json(tmp_path: Path, content: str) -> None:
    with pytest.raises(KeyFileError, match="parse issuer keys file"):
        load_keyset(write(tmp_path, content))


def test_keyset_last_duplicate_wins_and_extras_ignored(tmp_path: Path) -> None:
    other = b64u_encode(bytes(32))
    doc = {"v": 1, "keys": [entry(), {**entry(kid="k1", pub=other), "note": "x"}]}
    assert load_keyset(write(tmp_path, json.dumps(doc))) == {"k1": bytes(32)}


def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "{}")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as a user that ignores file modes")
    with pytest.raises(KeyFileError, match="read"):
        load_keyset(path)


_fuzz = settings(
    max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["keys", "kid", "pubkey_b64u", "privkey_b64u", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
).map(json.dumps)


@_fuzz
@given(st.one_of(st.binary(max_size=200), _json_text.map(str.encode)))
def test_fuzz_loaders_raise_only_key_file_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    with contextlib.suppress(KeyFileError):
        assert all(len(v) == 32 for v in load_keyset(path).values())
    with contextlib.suppress(KeyFileError):
        load_issuer_key(path)
