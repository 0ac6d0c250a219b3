"""Prometheus metrics of tunnel.md §9.5, switchable at run time.

The seven reference series keep their names and labels so existing
dashboards work. Each enable builds a fresh registry (SIGUSR1 restarts the
counters, as in the reference); while disabled every recording call is a
cheap no-op and ``/metrics`` answers 404.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

PAIR_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Series:
    """One registry holding the reference series plus our additions."""

    def __init__(
        self, connections: Callable[[], float], channels: Callable[[], float]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        conns = Gauge(
            "flowersec_tunnel_connections",
            "Upgraded WebSocket connections counted against the limit.",
            registry=reg,
        )
        conns.set_function(connections)
        chans = Gauge(
            "flowersec_tunnel_channels",
            "Channel states currently held.",
            registry=reg,
        )
        chans.set_function(channels)
        self.attach = Counter(
            "flowersec_tunnel_attach_total",
            "Upgrade and attach outcomes.",
            ["result", "reason"],
            registry=reg,
        )
        self.replace = Counter(
            "flowersec_tunnel_replace_total",
            "Outcomes of same-role re-attaches.",
            ["result"],
            registry=reg,
        )
        self.close = Counter(
            "flowersec_tunnel_close_total",
            "Channel and endpoint ends, one per end, by reason.",
            ["reason"],
            registry=reg,
        )
        self.pair_latency = Histogram(
            "flowersec_tunnel_pair_latency_seconds",
            "Seconds from channel creation to the second endpoint's arrival.",
            buckets=PAIR_LATENCY_BUCKETS,
            registry=reg,
        )
        self.encrypted = Counter(
            "flowersec_tunnel_encrypted",
            "Channel states that reached the encrypted phase.",
            registry=reg,
        )
        self.relayed_bytes = Counter(
            "flowersec_tunnel_relayed_bytes",
            "Payload bytes relayed by ended channels (addition).",
            registry=reg,
        )


class Metrics:
    """Recording facade; every method is a no-op while metrics are disabled.

    Enabling turns off prometheus-client's ``*_created`` samples process-wide,
    so that the exposition holds only the series listed here.
    """

    def __init__(
        self, connections: Callable[[], float], channels: Callable[[], float]
    ) -> None:
        self._gauges = (connections, channels)
        self._series: _Series | None = None

    @property
    def enabled(self) -> bool:
        return self._series is not None

    def enable(self) -> bool:
        """Start recording into a fresh registry; False if already enabled."""
        if self._series is not None:
            return False
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._series = _Series(*self._gauges)
        return True

    def disable(self) -> None:
        """Stop recording and drop the registry."""
        self._series = None

    def render(self) -> bytes | None:
        """The text exposition, or None while disabled."""
        series = self._series
        return None if series is None else generate_latest(series.registry)

    def attach(self, reason: str) -> None:
        """Count one attach outcome; ``reason == "ok"`` means success."""
        if self._series is not None:
            result = "ok" if reason == "ok" else "fail"
            self._series.attach.labels(result, reason).inc()

    def replace(self, result: str) -> None:
        if self._series is not None:
            self._series.replace.labels(result).inc()

    def close(self, reason: str, relayed_bytes: int = 0) -> None:
        if self._series is not None:
            self._series.close.labels(reason).inc()
            if relayed_bytes:
                self._series.relayed_bytes.inc(relayed_bytes)

    def pair_latency(self, seconds: float) -> None:
        if self._series is not None:
            self._series.pair_latency.observe(seconds)

    def encrypted(self) -> None:
        if self._series is not None:
            self._series.encrypted.inc()
