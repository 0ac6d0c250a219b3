"""Grant and direct-info models: reference JSON out, strict decoding in."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.encoding import DecodeError
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import (
    MAX_JSON_BYTES,
    ChannelInitGrant,
    DirectConnectInfo,
    decode_direct_connect_info_json,
    decode_grant_client_json,
    decode_grant_json,
    decode_grant_server_json,
    direct_info_from_obj,
    grant_from_obj,
)

GRANT: dict[str, Any] = {
    "tunnel_url": "ws://127.0.0.1:8080/ws",
    "channel_id": "chan",
    "channel_init_expire_at_unix_s": 1700000000,
    "idle_timeout_seconds": 60,
    "role": 1,
    "token": "FST2.secret-token",
    "e2ee_psk_b64u": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
    "allowed_suites": [1, 2],
    "default_suite": 1,
}
INFO: dict[str, Any] = {
    "ws_url": "ws://127.0.0.1:9/ws",
    "channel_id": "chan",
    "e2ee_psk_b64u": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
    "channel_init_expire_at_unix_s": 1700000000,
    "default_suite": 2,
}


def server_grant() -> dict[str, Any]:
    return {**GRANT, "role": 2, "token": "FST2.other"}


def test_grant_round_trip_exact_order() -> None:
    grant = grant_from_obj(dict(GRANT))
    assert grant.allowed_suites == (1, 2)
    assert list(grant.to_obj()) == list(GRANT)
    assert grant.to_json() == json.dumps(GRANT, separators=(",", ":")).encode()
    assert "secret-token" not in repr(grant)
    assert GRANT["e2ee_psk_b64u"] not in repr(grant)


def test_grant_emits_all_members_when_empty() -> None:
    grant = grant_from_obj({})
    assert grant.to_json() == (
        b'{"tunnel_url":"","channel_id":"","channel_init_expire_at_unix_s":0,'
        b'"idle_timeout_seconds":0,"role":0,"token":"","e2ee_psk_b64u":"",'
        b'"allowed_suites":[],"default_suite":0}'
    )
    assert grant_from_obj({"allowed_suites": None, "role": None}).role == 0


def test_info_round_trip_exact_order() -> None:
    info = direct_info_from_obj(dict(INFO))
    assert list(info.to_obj()) == list(INFO)
    assert info.to_json() == json.dumps(INFO, separators=(",", ":")).encode()
    assert INFO["e2ee_psk_b64u"] not in repr(info)


@pytest.mark.parametrize(
    "changes",
    [
        {"role": 256},
        {"role": "1"},
        {"role": 1.0},
        {"idle_timeout_seconds": 2**31},
        {"channel_init_expire_at_unix_s": 2**63},
        {"allowed_suites": [1, "2"]},
        {"allowed_suites": [70000]},
        {"allowed_suites": 1},
        {"default_suite": True},
        {"token": 5},
        {"tunnel_url": ["ws://x"]},
    ],
)
def test_grant_type_errors(changes: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        grant_from_obj({**GRANT, **changes})
    with pytest.raises(FlowersecError) as info:
        decode_grant_json(json.dumps({**GRANT, **changes}))
    assert (info.value.path, info.value.stage, info.value.code) == (
        Path.TUNNEL,
        Stage.VALIDATE,
        Code.INVALID_INPUT,
    )


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(GRANT),
        json.dumps(
            {"version": "1", "grant_client": GRANT, "grant_server": server_grant()}
        ),
        json.dumps({"grant_client": GRANT}).encode(),
        bytearray(json.dumps(GRANT).encode()),
    ],
)
def test_decode_client(data: str | bytes) -> None:
    assert decode_grant_client_json(data) == grant_from_obj(dict(GRANT))


def test_decode_server_and_readers() -> None:
    pair = json.dumps({"grant_client": GRANT, "grant_server": server_grant()})
    assert decode_grant_server_json(pair).token == "FST2.other"
    assert decode_grant_server_json(io.BytesIO(pair.encode())).role == 2
    assert decode_grant_json(json.dumps(server_grant())).role == 2


def code_of(call: Any, data: Any) -> tuple[Path, Code]:
    with pytest.raises(FlowersecError) as info:
        call(data)
    assert info.value.stage is Stage.VALIDATE
    return info.value.path, info.value.code


def test_decode_errors() -> None:
    pair = json.dumps({"grant_client": GRANT, "grant_server": server_grant()})
    assert code_of(decode_grant_client_json, json.dumps(server_grant())) == (
        Path.TUNNEL,
        Code.ROLE_MISMATCH,
    )
    assert code_of(decode_grant_server_json, json.dumps(GRANT)) == (
        Path.TUNNEL,
        Code.ROLE_MISMATCH,
    )
    assert code_of(decode_grant_server_json, '{"grant_client":{}}') == (
        Path.TUNNEL,
        Code.ROLE_MISMATCH,
    )
    assert code_of(decode_grant_client_json, '{"grant_client":null}') == (
        Path.TUNNEL,
        Code.MISSING_GRANT,
    )
    for bad in ('{"grant_client":"x"}', '{"grant_client":[]}', "[]", "{", ""):
        assert code_of(decode_grant_client_json, bad) == (
            Path.TUNNEL,
            Code.INVALID_INPUT,
        )
    assert code_of(
        decode_grant_client_json, pair.replace('"role": 1', '"role": "1"')
    ) == (
        Path.TUNNEL,
        Code.INVALID_INPUT,
    )
    assert code_of(decode_direct_connect_info_json, '{"ws_url":1}') == (
        Path.DIRECT,
        Code.INVALID_INPUT,
    )
    assert code_of(decode_direct_connect_info_json, b"\xff") == (
        Path.DIRECT,
        Code.INVALID_INPUT,
    )


def test_size_cap() -> None:
    padding = " " * (MAX_JSON_BYTES - len(json.dumps(GRANT)))
    exact = json.dumps(GRANT) + padding
    assert len(exact.encode()) == MAX_JSON_BYTES
    assert decode_grant_json(exact).role == 1
    assert code_of(decode_grant_json, exact + " ") == (Path.TUNNEL, Code.INVALID_INPUT)
    assert code_of(decode_grant_json, io.BytesIO((exact + " ").encode())) == (
        Path.TUNNEL,
        Code.INVALID_INPUT,
    )
    text = json.dumps(INFO) + "é" * MAX_JSON_BYTES
    assert code_of(decode_direct_connect_info_json, text) == (
        Path.DIRECT,
        Code.INVALID_INPUT,
    )


def test_info_extras_ignored() -> None:
    info = decode_direct_connect_info_json(json.dumps({"version": "x", **INFO}))
    assert info == DirectConnectInfo(**INFO)
    assert isinstance(grant_from_obj(GRANT), ChannelInitGrant)


_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.lists(st.integers(min_value=-3, max_value=70000), max_size=3)
)
_grant_objs = st.dictionaries(st.sampled_from([*GRANT, *INFO, "grant_client"]), _values)


@given(
    st.one_of(
        st.binary(max_size=200), _grant_objs.map(lambda o: json.dumps(o).encode())
    )
)
def test_fuzz_decoders_raise_only_flowersec_error(data: bytes) -> None:
    for decode in (
        decode_grant_json,
        decode_grant_client_json,
        decode_grant_server_json,
        decode_direct_connect_info_json,
    ):
        with contextlib.suppress(FlowersecError):
            result = decode(data)
            assert json.loads(result.to_json()) == result.to_obj()


@given(_grant_objs)
def test_fuzz_round_trip(obj: dict[str, Any]) -> None:
    with contextlib.suppress(DecodeError):
        grant = grant_from_obj(obj)
        assert grant_from_obj(json.loads(grant.to_json())) == grant
