"""The report's statistics follow the reference definitions exactly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.loadgen.stats import (
    active_peak,
    latency_summary,
    peak_per_second,
    percentile,
)

samples = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200
)


def test_percentile_uses_floor_index_without_interpolation() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 0.50) == 50.0
    assert percentile(ordered, 0.95) == 95.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile([1.0, 2.0], 0.99) == 1.0
    assert percentile([], 0.5) == 0.0


@given(samples, st.floats(min_value=0, max_value=1))
def test_percentile_is_the_sample_at_floor_index(values: list[float], p: float) -> None:
    ordered = sorted(values)
    assert percentile(ordered, p) == ordered[math.floor((len(ordered) - 1) * p)]


@given(samples)
def test_latency_summary_is_ordered(values: list[float]) -> None:
    summary = latency_summary(values)
    assert summary["count"] == len(values)
    assert summary["min_ms"] <= summary["p50_ms"] <= summary["p95_ms"]
    assert summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["min_ms"] <= summary["mean_ms"] * (1 + 1e-9) + 1e-9
    assert summary["mean_ms"] <= summary["max_ms"] * (1 + 1e-9) + 1e-9


def test_empty_latency_summary_is_all_zero() -> None:
    summary = latency_summary([])
    assert summary["count"] == 0
    assert summary["p99_ms"] == 0.0


def test_peak_per_second_counts_whole_wall_clock_seconds() -> None:
    assert peak_per_second([10.1, 10.9, 11.0, 11.5, 11.99, 12.0]) == 3
    assert peak_per_second([]) == 0


def test_active_peak_counts_overlaps_only() -> None:
    assert active_peak([(0, 10), (1, 2), (3, 4)]) == 2
    assert active_peak([(0, 1), (1, 2)]) == 1
    assert active_peak([]) == 0


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), max_size=50))
def test_active_peak_matches_brute_force(pairs: list[tuple[int, int]]) -> None:
    intervals = [(min(a, b), max(a, b)) for a, b in pairs]
    brute = max(
        (sum(1 for o, c in intervals if o <= t < c) for t in range(101)), default=0
    )
    assert active_peak(intervals) == brute
