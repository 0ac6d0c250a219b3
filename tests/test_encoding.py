"""Strict base64url and JSON field readers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.encoding import (
    DecodeError,
    b64u_decode,
    b64u_encode,
    dumps_compact,
    loads_object,
    read_int,
    read_str,
)


@given(st.binary(max_size=200))
def test_b64u_round_trip(data: bytes) -> None:
    assert b64u_decode(b64u_encode(data), canonical=True) == data


@pytest.mark.parametrize("text", ["AA==", "A+B/", "AB C", "A", "AAAAA", "ÄA"])
def test_b64u_rejects(text: str) -> None:
    with pytest.raises(DecodeError):
        b64u_decode(text)


def test_b64u_lenient_vs_canonical() -> None:
    assert b64u_decode("AB") == b"\x00"
    assert b64u_decode("AA\r\nAA") == b"\x00\x00\x00"
    with pytest.raises(DecodeError):
        b64u_decode("AB", canonical=True)
    with pytest.raises(DecodeError):
        b64u_decode("AA\nAA", canonical=True)
    assert b64u_decode("") == b""


@pytest.mark.parametrize(
    "text", ["[]", "null", '{"a":1} x', '{"a":NaN}', b'{"a":"\xff"}']
)
def test_loads_object_rejects(text: str | bytes) -> None:
    with pytest.raises(DecodeError):
        loads_object(text)


def test_loads_object_duplicates_last_wins() -> None:
    assert loads_object('{"a":1,"a":2}') == {"a": 2}


@pytest.mark.parametrize("value", [True, 1.0, "1", 256, -1])
def test_read_int_rejects(value: object) -> None:
    with pytest.raises(DecodeError):
        read_int({"role": value}, "role", 0, 255)


def test_readers_treat_null_as_absent() -> None:
    assert read_int({"role": None}, "role", 0, 255) == 0
    assert read_str({"s": None}, "s") == ""
    assert read_str({}, "s") == ""
    with pytest.raises(DecodeError):
        read_str({"s": 1}, "s")


@given(st.text(max_size=50))
def test_loads_object_only_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        loads_object(text)


def test_dumps_compact_go_escapes() -> None:
    out = dumps_compact({"a": "<&>\u2028é\n\x01"})
    assert out == '{"a":"\\u003c\\u0026\\u003e\\u2028é\\n\\u0001"}'.encode()


def test_read_str_rejects_lone_surrogate() -> None:
    with pytest.raises(DecodeError):
        read_str(loads_object('{"s":"\\ud800"}'), "s")
