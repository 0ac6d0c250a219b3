"""Connect-time observer hooks (api.md §10.1), for metrics and tracing.

An observer is any object with some of the methods of
:class:`ConnectObserver`; missing methods are skipped. Observers must not
disturb a connection, so an exception raised by one is logged and dropped
(the TypeScript reference does not guard its observer calls).
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from flowersec_endpoint.errors import Path

log = logging.getLogger(__name__)

Result = Literal["ok", "fail"]


class ConnectObserver(Protocol):
    """What a connect reports; durations are monotonic seconds.

    ``on_connect`` reasons: ``websocket_error``, ``timeout``, ``canceled``;
    ``on_attach``: ``send_failed`` (or ``timeout``); ``on_handshake``: the
    handshake code (``timeout``, ``canceled``, ``auth_tag_mismatch``,
    ``handshake_failed``, …). A tunnel's attach rejection is reported as a
    handshake failure here before the connect re-codes it.
    """

    def on_connect(
        self, path: Path, result: Result, reason: str | None, elapsed: float
    ) -> None: ...

    def on_attach(self, result: Result, reason: str | None) -> None: ...

    def on_handshake(
        self, path: Path, result: Result, reason: str | None, elapsed: float
    ) -> None: ...

    def on_rpc_call(self, result: str, elapsed: float) -> None:
        """One call on the client's RPC stream: ``ok``, ``rpc_error``,
        ``handler_not_found``, ``transport_error`` or ``canceled``."""

    def on_rpc_notify(self) -> None:
        """One notification received on the client's RPC stream."""


def emit(observer: object | None, hook: str, *args: object) -> None:
    """Call ``observer.<hook>(*args)`` if it exists; never raise."""
    if observer is None:
        return
    method = getattr(observer, hook, None)
    if not callable(method):
        return
    try:
        method(*args)
    except Exception:
        log.warning("observer %s failed", hook, exc_info=True)
