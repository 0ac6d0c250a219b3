"""The Origin table of tunnel.md §4.3 and property tests of the parsers."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_tunnel.attach import (
    MAX_ATTACH_BYTES,
    Attach,
    AttachRejected,
    Reject,
    parse_attach,
)
from flowersec_tunnel.origin import OriginPolicy, split_host_port

TABLE = [
    # entry, origin, allowed
    ("https://example.com", "https://example.com", True),
    ("https://example.com", "https://example.com:443", False),
    ("https://example.com", "http://example.com", False),
    ("https://example.com", "https://EXAMPLE.com", False),
    ("example.com", "https://example.com:5173", True),
    ("example.com", "http://example.com", True),
    ("example.com", "https://sub.example.com", False),
    ("example.com:5173", "https://example.com:5173", True),
    ("example.com:5173", "https://example.com:9999", False),
    ("example.com:5173", "https://example.com", False),
    ("*.example.com", "https://a.example.com", True),
    ("*.example.com", "https://a.b.example.com:1", True),
    ("*.example.com", "https://example.com", True),
    ("*.example.com", "https://badexample.com", False),
    ("*.", "https://example.com", False),
    ("::1", "http://[::1]:5173", True),
    ("[::1]:5173", "http://[::1]:5173", True),
    ("[::1]:5173", "http://[::1]:5174", False),
    ("127.0.0.1", "http://127.0.0.1:8080", True),
    ("localhost", "http://localhost", True),
    ("null", "null", True),
    ("null", "https://null", True),
    ("example.com", "null", False),
    ("example.com", "example.com", True),
    ("example.com", "https://example.com:abc", False),
    ("  example.com  ", "https://example.com", True),
    ("", "https://example.com", False),
    ("x:1", "x:1", True),
    ("::1", "http://::1:5173", True),
    ("::1", "http://::1:x", False),
]


@pytest.mark.parametrize(("entry", "origin", "allowed"), TABLE)
def test_origin_table(entry: str, origin: str, allowed: bool) -> None:
    assert OriginPolicy([entry], allow_no_origin=False).allows(origin) is allowed


def test_missing_origin() -> None:
    assert not OriginPolicy(["x"], allow_no_origin=False).allows(None)
    assert not OriginPolicy(["x"], allow_no_origin=False).allows("")
    assert OriginPolicy(["x"], allow_no_origin=True).allows(None)


def test_first_matching_entry_wins_in_list_order() -> None:
    policy = OriginPolicy(["", "a.com:1", "*.b.com", "c.com"], allow_no_origin=False)
    assert policy.entries == ("a.com:1", "*.b.com", "c.com")
    assert policy.allows("https://c.com")
    assert policy.allows("https://x.b.com")
    assert not policy.allows("https://a.com:2")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a:1", ("a", "1")),
        ("a:", ("a", "")),
        ("[::1]:80", ("::1", "80")),
        (":80", ("", "80")),
        ("a", None),
        ("::1", None),
        ("[::1]", None),
        ("[::1]x:1", None),
        ("a]:1", None),
    ],
)
def test_split_host_port(text: str, parts: tuple[str, str] | None) -> None:
    assert split_host_port(text) == parts


@given(st.lists(st.text(max_size=20), max_size=4), st.text(max_size=40))
def test_origin_policy_never_crashes(entries: list[str], origin: str) -> None:
    OriginPolicy(entries, allow_no_origin=False).allows(origin)


@given(
    st.sampled_from(["http", "https"]),
    st.text(string.ascii_lowercase, min_size=1, max_size=10),
    st.integers(1, 65535),
)
def test_hostname_entry_accepts_any_port(scheme: str, host: str, port: int) -> None:
    policy = OriginPolicy([host], allow_no_origin=False)
    assert policy.allows(f"{scheme}://{host}:{port}")
    assert not policy.allows(f"{scheme}://{host}x:{port}")


B64U = string.ascii_letters + string.digits + "-_"


@given(
    channel_id=st.text(min_size=1, max_size=64),
    role=st.sampled_from([1, 2]),
    token=st.text(min_size=1, max_size=100),
    instance=st.text(B64U, min_size=22, max_size=43).filter(lambda t: len(t) % 4 != 1),
)
def test_valid_attach_round_trips(
    channel_id: str, role: int, token: str, instance: str
) -> None:
    text = json.dumps(
        {
            "v": 1,
            "channel_id": channel_id,
            "role": role,
            "token": token,
            "endpoint_instance_id": instance,
        }
    )
    try:
        attach = parse_attach(text)
    except AttachRejected as exc:
        assert exc.reason is Reject.INVALID_ATTACH
        assert len(channel_id.encode("utf-8", "surrogatepass")) > 0
        return
    assert attach == Attach(channel_id, role, token, instance)


@given(st.binary(max_size=MAX_ATTACH_BYTES + 10))
def test_attach_parser_rejects_garbage_cleanly(data: bytes) -> None:
    try:
        parse_attach(data)
    except AttachRejected as exc:
        assert exc.reason is Reject.INVALID_ATTACH
        assert exc.code == 1002


@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "channel_id", "role", "token", "endpoint_instance_id", "caps", "x"]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 300),
            st.floats(allow_nan=False),
            st.text(max_size=50),
            st.lists(st.integers(), max_size=2),
            st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
        ),
    )
)
def test_attach_parser_on_json_shapes(obj: dict[str, object]) -> None:
    try:
        attach = parse_attach(json.dumps(obj))
    except AttachRejected as exc:
        assert exc.reason is Reject.INVALID_ATTACH
        return
    assert obj["v"] == 1 and type(obj["v"]) is int
    assert attach.role in (1, 2)
    assert attach.channel_id and attach.token
