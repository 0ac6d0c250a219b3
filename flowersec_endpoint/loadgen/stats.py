"""Sample statistics with the reference's exact definitions (api.md §13.1).

Percentiles are the sorted sample at index ``floor((n - 1) * p)`` (no
interpolation), so figures line up with the reference report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def percentile(ordered: Sequence[float], p: float) -> float:
    """The sorted sample at index ``floor((n - 1) * p)``; 0.0 when empty."""
    if not ordered:
        return 0.0
    return ordered[math.floor((len(ordered) - 1) * p)]


def latency_summary(samples_ms: Iterable[float]) -> dict[str, Any]:
    """``count``, ``min_ms``, ``max_ms``, ``mean_ms`` and the three percentiles."""
    ordered = sorted(samples_ms)
    if not ordered:
        summary: dict[str, Any] = {"count": 0, "min_ms": 0.0, "max_ms": 0.0}
        summary["mean_ms"] = 0.0
    else:
        summary = {
            "count": len(ordered),
            "min_ms": ordered[0],
            "max_ms": ordered[-1],
            "mean_ms": math.fsum(ordered) / len(ordered),
        }
    for name, p in PERCENTILES:
        summary[name] = percentile(ordered, p)
    return summary


def peak_per_second(completed_at: Iterable[float]) -> int:
    """Most events whose wall-clock time falls in the same whole second."""
    buckets = Counter(math.floor(t) for t in completed_at)
    return max(buckets.values(), default=0)


def active_peak(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals ``[open, close)`` alive at one instant.

    A close at the same instant as an open is applied first, so two
    back-to-back holds do not count as overlapping.
    """
    events: list[tuple[float, int]] = []
    for opened, closed in intervals:
        events.append((opened, 1))
        events.append((closed, -1))
    events.sort()
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak
