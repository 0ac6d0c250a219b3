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

__all__ = ["CallResult", "Direction", "RpcObserver", "emit", "result_of"]


class RpcObserver(Protocol):
    """What the RPC client and server report; durations are seconds."""

    def server_request(self, result: CallResult) -> None: ...

    def server_frame_error(self, direction: Direction) -> None: ...

    def client_call(self, result: CallResult, duration: float) -> None: ...

    def client_frame_error(self, direction: Direction) -> None: ...

    def client_notify(self) -> None: ...


def result_of(error: WireError | None) -> CallResult:
    """Classify a response as the reference's metrics do (404 is its own)."""
    if error is None:
        return "ok"
    return "handler_not_found" if error.code == 404 else "rpc_error"
