"""Attach message, close-reason mapping and option validation (no I/O)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.attach import (
    attach_message,
    check_endpoint_instance_id,
    new_endpoint_instance_id,
    rejection_code,
)
from flowersec_endpoint.encoding import DecodeError, b64u_decode, b64u_encode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.options import (
    build_options,
    resolve_origin,
    tunnel_keepalive,
)


def test_attach_message_has_reference_member_order() -> None:
    text = attach_message(
        channel_id="ch<1>", role=1, token="FST2.a.b", endpoint_instance_id="x" * 32
    )
    assert text == (
        '{"v":1,"channel_id":"ch\\u003c1\\u003e","role":1,"token":"FST2.a.b",'
        '"endpoint_instance_id":"' + "x" * 32 + '"}'
    )
    assert json.loads(text)["channel_id"] == "ch<1>"


def test_new_endpoint_instance_id_is_24_bytes() -> None:
    values = {new_endpoint_instance_id() for _ in range(20)}
    assert len(values) == 20
    for value in values:
        assert len(value) == 32
        assert len(b64u_decode(value)) == 24
        assert check_endpoint_instance_id(value) == value


@pytest.mark.parametrize("size", [0, 1, 15, 33, 64])
def test_endpoint_instance_id_length_rule(size: int) -> None:
    with pytest.raises(DecodeError):
        check_endpoint_instance_id(b64u_encode(bytes(size)))


@pytest.mark.parametrize("size", [16, 24, 32])
def test_endpoint_instance_id_accepted_lengths(size: int) -> None:
    value = b64u_encode(bytes(size))
    assert check_endpoint_instance_id(value) == value


@given(st.text(max_size=64))
def test_endpoint_instance_id_parser_only_raises_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        assert check_endpoint_instance_id(text) == text


@pytest.mark.parametrize(
    "reason",
    [
        "too_many_connections",
        "expected_attach",
        "invalid_attach",
        "invalid_token",
        "channel_mismatch",
        "role_mismatch",
        "token_replay",
        "replace_rate_limited",
        "attach_failed",
    ],
)
def test_every_rejection_reason_maps_to_its_code(reason: str) -> None:
    assert rejection_code(reason) == Code(reason)


@pytest.mark.parametrize("reason", ["", "going away", "TOKEN_REPLAY", "timeout"])
def test_other_reasons_are_not_attach_codes(reason: str) -> None:
    assert rejection_code(reason) is None


def test_defaults() -> None:
    opts = build_options(Path.TUNNEL, {})
    assert opts.connect_timeout == 10.0
    assert opts.handshake_timeout == 10.0
    assert opts.max_record_bytes == 1 << 20
    assert opts.max_handshake_payload == 8192
    assert opts.max_buffered_bytes == 4 << 20
    assert opts.keepalive_interval is None
    assert opts.clock_skew == 30.0


def test_zero_timeout_disables_it() -> None:
    opts = build_options(Path.DIRECT, {"connect_timeout": 0, "handshake_timeout": None})
    assert opts.connect_timeout is None
    assert opts.handshake_timeout is None


@pytest.mark.parametrize(
    "args",
    [
        {"connect_timeout": -1},
        {"handshake_timeout": float("nan")},
        {"handshake_timeout": "10"},
        {"max_record_bytes": 0},
        {"max_buffered_bytes": -5},
        {"max_handshake_payload": True},
        {"keepalive_interval": -0.5},
        {"client_features": -1},
        {"client_features": 2**32},
        {"headers": {"X": 1}},
        {"headers": ["Origin"]},
        {"clock_skew": -1},
    ],
)
def test_bad_options_are_invalid_option(args: dict[str, object]) -> None:
    with pytest.raises(FlowersecError) as info:
        build_options(Path.TUNNEL, args)
    assert (info.value.path, info.value.stage, info.value.code) == (
        Path.TUNNEL,
        Stage.VALIDATE,
        Code.INVALID_OPTION,
    )


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        build_options(Path.TUNNEL, {"connect_timout": 1})


def test_origin_falls_back_to_header_and_is_required() -> None:
    assert resolve_origin(Path.TUNNEL, " https://a ", {}) == "https://a"
    assert resolve_origin(Path.TUNNEL, None, {"origin": "https://b"}) == "https://b"
    with pytest.raises(FlowersecError) as info:
        resolve_origin(Path.DIRECT, "  ", {})
    assert info.value.code == Code.MISSING_ORIGIN
    assert info.value.path == Path.DIRECT


@pytest.mark.parametrize(
    ("explicit", "idle", "expected"),
    [(None, 60, 30.0), (None, 1, 0.5), (None, 0, 0.0), (None, -3, 0.0), (2.0, 60, 2.0)],
)
def test_tunnel_keepalive(explicit: float | None, idle: int, expected: float) -> None:
    assert tunnel_keepalive(explicit, idle) == expected


def test_explicit_zero_keepalive_is_off() -> None:
    opts = build_options(Path.TUNNEL, {"keepalive_interval": 0})
    assert tunnel_keepalive(opts.keepalive_interval, 60) == 0.0


OPTION_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
OPTION_NAMES = st.sampled_from(
    [
        "headers",
        "connect_timeout",
        "handshake_timeout",
        "max_handshake_payload",
        "max_record_bytes",
        "max_buffered_bytes",
        "keepalive_interval",
        "client_features",
        "server_features",
        "clock_skew",
        "endpoint_instance_id",
    ]
)


@given(st.dictionaries(OPTION_NAMES, OPTION_VALUES, max_size=4))
def test_build_options_accepts_or_rejects_cleanly(args: dict[str, object]) -> None:
    try:
        opts = build_options(Path.DIRECT, args)
    except FlowersecError as exc:
        assert (exc.path, exc.stage, exc.code) == (
            Path.DIRECT,
            Stage.VALIDATE,
            Code.INVALID_OPTION,
        )
        return
    for timeout in (opts.connect_timeout, opts.handshake_timeout):
        assert timeout is None or timeout > 0
    assert opts.max_record_bytes > 0 and opts.clock_skew > 0
