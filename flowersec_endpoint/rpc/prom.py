"""An :class:`~flowersec_endpoint.rpc.observer.RpcObserver` that feeds Prometheus.

The series keep the reference adapter's names and labels (api.md §10.2), so
dashboards built for Go endpoints work unchanged. Pass a registry to keep
them apart from the process-wide default one.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from flowersec_endpoint.rpc.observer import CallResult, Direction


class PrometheusRpcObserver:
    """Counts server requests, client calls, notifications and frame errors."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self._requests = Counter(
            "flowersec_rpc_requests_total",
            "RPC requests answered by this endpoint, by result.",
            ["result"],
            registry=reg,
        )
        self._frame_errors = Counter(
            "flowersec_rpc_frame_errors_total",
            "RPC server frames that failed to read or write.",
            ["direction"],
            registry=reg,
        )
        self._client_frame_errors = Counter(
            "flowersec_rpc_client_frame_errors_total",
            "RPC client frames that failed to read or write.",
            ["direction"],
            registry=reg,
        )
        self._calls = Counter(
            "flowersec_rpc_client_calls_total",
            "RPC calls made by this endpoint, by result.",
            ["result"],
            registry=reg,
        )
        self._latency = Histogram(
            "flowersec_rpc_client_call_latency_seconds",
            "RPC call latency from send to answer or failure.",
            registry=reg,
        )
        self._notify = Counter(
            "flowersec_rpc_client_notify_total",
            "Notifications received by RPC clients.",
            registry=reg,
        )

    def server_request(self, result: CallResult) -> None:
        """Count one answered request."""
        self._requests.labels(result=result).inc()

    def server_frame_error(self, direction: Direction) -> None:
        """Count one server frame error."""
        self._frame_errors.labels(direction=direction).inc()

    def client_call(self, result: CallResult, duration: float) -> None:
        """Count one call and record its latency."""
        self._calls.labels(result=result).inc()
        self._latency.observe(duration)

    def client_frame_error(self, direction: Direction) -> None:
        """Count one client frame error."""
        self._client_frame_errors.labels(direction=direction).inc()

    def client_notify(self) -> None:
        """Count one received notification."""
        self._notify.inc()
