"""Auto-detection of connect inputs (api.md §1.4) and the shared input checks."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import ChannelInitGrant, DirectConnectInfo
from flowersec_endpoint.inputs import (
    check_suite,
    decode_psk,
    detect,
    endpoint_instance_id,
)

GRANT: dict[str, Any] = {
    "tunnel_url": "ws://127.0.0.1:1/ws",
    "channel_id": "ch",
    "channel_init_expire_at_unix_s": 1700000000,
    "idle_timeout_seconds": 60,
    "role": 1,
    "token": "FST2.x.y",
    "e2ee_psk_b64u": b64u_encode(bytes(32)),
    "allowed_suites": [1],
    "default_suite": 1,
}
INFO: dict[str, Any] = {
    "ws_url": "ws://127.0.0.1:1/ws",
    "channel_id": "ch",
    "e2ee_psk_b64u": b64u_encode(bytes(32)),
    "channel_init_expire_at_unix_s": 1700000000,
    "default_suite": 1,
    "extra": "ignored",
}


def _code(exc: pytest.ExceptionInfo[FlowersecError]) -> tuple[Path, Stage, Code]:
    return exc.value.path, exc.value.stage, exc.value.code


def test_bare_grant_in_every_form() -> None:
    text = json.dumps(GRANT)
    for form in (
        GRANT,
        text,
        text.encode(),
        io.StringIO(text),
        io.BytesIO(b" " + text.encode()),
    ):
        result = detect(form)  # type: ignore[arg-type]
        assert isinstance(result, ChannelInitGrant)
        assert result.role == 1 and result.channel_id == "ch"


def test_wrapped_and_pair_files_pick_grant_client() -> None:
    server = dict(GRANT, role=2, token="server-token")
    pair = {"version": "x", "grant_client": GRANT, "grant_server": server}
    result = detect(pair)
    assert isinstance(result, ChannelInitGrant) and result.token == "FST2.x.y"
    assert detect({"grant_client": GRANT}) == result


def test_lone_grant_server_is_decoded_for_a_role_mismatch_later() -> None:
    result = detect({"grant_server": dict(GRANT, role=2)})
    assert isinstance(result, ChannelInitGrant) and result.role == 2


def test_direct_info_ignores_extra_keys() -> None:
    result = detect(json.dumps(INFO))
    assert isinstance(result, DirectConnectInfo)
    assert result.ws_url == INFO["ws_url"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"grant_client": None}, (Path.TUNNEL, Stage.VALIDATE, Code.MISSING_GRANT)),
        ({"grant_server": None}, (Path.TUNNEL, Stage.VALIDATE, Code.MISSING_GRANT)),
        ({"grant_client": 5}, (Path.TUNNEL, Stage.VALIDATE, Code.INVALID_INPUT)),
        ({"hello": 1}, (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        ("[1, 2]", (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        ("not json", (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        ("{bad", (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        (42, (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        (None, (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        (b"\xff{", (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT)),
        (dict(GRANT, role="1"), (Path.TUNNEL, Stage.VALIDATE, Code.INVALID_INPUT)),
        (
            dict(INFO, default_suite=True),
            (Path.DIRECT, Stage.VALIDATE, Code.INVALID_INPUT),
        ),
        (
            "{" + " " * (1024 * 1024) + "}",
            (Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT),
        ),
    ],
)
def test_bad_inputs(value: Any, expected: tuple[Path, Stage, Code]) -> None:
    with pytest.raises(FlowersecError) as info:
        detect(value)
    assert _code(info) == expected


@given(st.text(max_size=200))
def test_detect_on_any_text_raises_only_flowersec_error(text: str) -> None:
    try:
        detect(text)
    except FlowersecError as exc:
        assert exc.stage is Stage.VALIDATE


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = st.sampled_from(
    ["ws_url", "grant_client", "grant_server", "tunnel_url", "token", "role", "x"]
)


@given(st.dictionaries(KEYS, JSON_VALUES, max_size=4))
def test_detect_on_any_object_raises_only_flowersec_error(obj: dict[str, Any]) -> None:
    try:
        result = detect(json.dumps(obj))
    except FlowersecError as exc:
        assert exc.code in {Code.INVALID_INPUT, Code.MISSING_GRANT}
    else:
        assert isinstance(result, ChannelInitGrant | DirectConnectInfo)


def test_psk_rules() -> None:
    assert decode_psk(Path.TUNNEL, b64u_encode(bytes(range(32)))) == bytes(range(32))
    for bad in (
        "",
        "!!!",
        b64u_encode(bytes(31)),
        b64u_encode(bytes(33)),
        "A" * 43 + "=",
    ):
        with pytest.raises(FlowersecError) as info:
            decode_psk(Path.DIRECT, bad)
        assert _code(info) == (Path.DIRECT, Stage.VALIDATE, Code.INVALID_PSK)


@pytest.mark.parametrize("suite", [0, 3, 65535])
def test_suite_rule(suite: int) -> None:
    with pytest.raises(FlowersecError) as info:
        check_suite(Path.TUNNEL, suite)
    assert info.value.code == Code.INVALID_SUITE
    assert check_suite(Path.TUNNEL, 2) == 2


def test_endpoint_instance_id_choice() -> None:
    assert len(endpoint_instance_id(Path.TUNNEL, None)) == 32
    given_id = b64u_encode(bytes(16))
    assert endpoint_instance_id(Path.TUNNEL, given_id) == given_id
    with pytest.raises(FlowersecError) as info:
        endpoint_instance_id(Path.TUNNEL, "short")
    assert info.value.code == Code.INVALID_ENDPOINT_INSTANCE_ID
