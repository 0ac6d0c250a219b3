"""The one exception of the Yamux layer, with a stable machine-readable reason."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a Yamux operation failed; values never change."""

    PROTOCOL_ERROR = "protocol_error"
    GO_AWAY = "go_away"
    REMOTE_GO_AWAY = "remote_go_away"
    SESSION_CLOSED = "session_closed"
    OPEN_TIMEOUT = "open_timeout"
    WRITE_TIMEOUT = "write_timeout"
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    TRANSPORT_FAILED = "transport_failed"
    STREAMS_EXHAUSTED = "streams_exhausted"
    STREAM_RESET = "stream_reset"
    STREAM_CLOSED = "stream_closed"


class YamuxError(Exception):
    """A session or stream failure; branch on ``reason``, read ``detail``."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = Reason(reason)
        self.detail = detail
        super().__init__(f"yamux {self.reason}: {detail}" if detail else self.reason)
