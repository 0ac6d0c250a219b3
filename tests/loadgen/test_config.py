"""Go-style durations and the report's config section."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.loadgen.config import LoadConfig, Mode, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("10µs", 0.00001),
    ],
)
def test_parse_duration_accepts_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", " s1", "-1s", "1s2", "1 s"])
def test_parse_duration_rejects_the_rest(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.text(max_size=12))
def test_parse_duration_never_fails_other_than_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= 0


@given(
    st.lists(
        st.tuples(st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h"])),
        min_size=1,
        max_size=4,
    )
)
def test_parse_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * scale[unit] for n, unit in parts)
    assert parse_duration(text) == pytest.approx(expected)


def test_report_dict_gives_durations_in_ms() -> None:
    config = LoadConfig(mode=Mode.FULL, tunnel_url="ws://x/ws", ramp_interval=2.0)
    out = config.report_dict()
    assert out["mode"] == "full"
    assert out["ramp_interval_ms"] == 2000.0
    assert out["conn_timeout_ms"] == 10000.0
    assert "ramp_interval" not in out
