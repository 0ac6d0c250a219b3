"""The typed payload codec (mux-rpc.md §5): Go-like lenient decoding."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.rpc.typed import PayloadError, from_payload, to_payload


@dataclass
class Inner:
    name: str = ""


@dataclass
class Outer:
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    extra: dict[str, int] = field(default_factory=dict)
    raw: Any = None


def test_roundtrip_and_defaults() -> None:
    value = Outer(3, 0.5, True, ["a"], Inner("x"), Inner("y"), {"k": 1}, [1, {}])
    assert from_payload(Outer, to_payload(value)) == value
    assert from_payload(Outer, None) == Outer()
    assert from_payload(Outer, {"count": None, "unknown": 1}) == Outer()
    assert from_payload(Outer, {"ratio": 2}).ratio == 2.0


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"count": "1"},
        {"count": True},
        {"count": 1.0},
        {"flag": 1},
        {"tags": "a"},
        {"tags": [1]},
        {"inner": []},
        {"maybe": {"name": 5}},
        {"extra": {"k": "v"}},
    ],
)
def test_wrong_types(payload: Any) -> None:
    with pytest.raises(PayloadError):
        from_payload(Outer, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["count", "ratio", "flag", "tags", "inner", "name", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_decoder_only_payload_error(payload: Any) -> None:
    with contextlib.suppress(PayloadError):
        assert isinstance(from_payload(Outer, payload), Outer)


def test_absent_optional_is_omitted_json_null_kept() -> None:
    assert to_payload(Outer()) == {
        "count": 0,
        "ratio": 0.0,
        "flag": False,
        "tags": [],
        "inner": {"name": ""},
        "extra": {},
        "raw": None,
    }
    nested = to_payload([Outer(maybe=Inner("n"))])
    assert nested[0]["maybe"] == {"name": "n"}
