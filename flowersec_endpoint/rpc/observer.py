"""RPC observer hooks with the Go reference's callbacks (api.md §10.2).

An observer is any object with some of the methods of :class:`RpcObserver`;
missing methods are skipped and an exception raised by one is logged and
dropped, so metrics code can never disturb a call. Results are the
reference's: ``ok``, ``rpc_error``, ``handler_not_found`` (an error
response with code 404), ``transport_error`` and ``canceled`` (a local
cancellation or timeout).
"""

from __future__ import annotations

from typing import Literal, Protocol

from flowersec_endpoint.observer import emit
from flowersec_endpoint.rpc.envelope import WireError

CallResult = Literal[
    "ok", "rpc_error", "handler_not_found", "transport_error", "canceled"
]
Direction = Literal["read", "write"]

__all__ = [
    "CallResult",
    "ConnectRpcObserver",
    "Direction",
    "RpcObserver",
    "emit",
    "result_of",
]


class RpcObserver(Protocol):
    """What the RPC client and server report; durations are seconds."""

    def server_request(self, result: CallResult) -> None: ...

    def server_frame_error(self, direction: Direction) -> None: ...

    def client_call(self, result: CallResult, duration: float) -> None: ...

    def client_frame_error(self, direction: Direction) -> None: ...

    def client_notify(self) -> None: ...


class ConnectRpcObserver:
    """Feeds a connect observer's TS-style ``on_rpc_call``/``on_rpc_notify``.

    The client returned by a connect reports its RPC calls to the same
    observer as the connect itself, as the TS client does (api.md §10.1).
    """

    def __init__(self, observer: object) -> None:
        self._observer = observer

    def server_request(self, result: CallResult) -> None:
        """Not reported: a connecting client serves no requests."""

    def server_frame_error(self, direction: Direction) -> None:
        """Not reported: a connecting client serves no requests."""

    def client_frame_error(self, direction: Direction) -> None:
        """Not reported: the TS observer has no such hook."""

    def client_call(self, result: CallResult, duration: float) -> None:
        """Forward to ``on_rpc_call``."""
        emit(self._observer, "on_rpc_call", result, duration)

    def client_notify(self) -> None:
        """Forward to ``on_rpc_notify``."""
        emit(self._observer, "on_rpc_notify")


def result_of(error: WireError | None) -> CallResult:
    """Classify a response as the reference's metrics do (404 is its own)."""
    if error is None:
        return "ok"
    return "handler_not_found" if error.code == 404 else "rpc_error"
