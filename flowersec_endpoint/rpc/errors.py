"""Exceptions of the RPC layer: handler-side, caller-side and transport."""

from __future__ import annotations

from typing import Any

INVALID_PAYLOAD = (400, "invalid payload")
HANDLER_NOT_FOUND = (404, "handler not found")
INTERNAL_ERROR = (500, "internal error")


class RpcError(Exception):
    """Raise from a handler to answer with ``{code, message}``.

    A zero code becomes 500 and an empty message ``"rpc error"``, as the Go
    reference does; ``payload`` is sent alongside the error.
    """

    def __init__(self, code: int, message: str = "", payload: Any = None) -> None:
        self.code = code or 500
        self.message = message or "rpc error"
        self.payload = payload
        super().__init__(f"rpc error {self.code}: {self.message}")


class CallError(Exception):
    """The peer answered a call with an error response."""

    def __init__(
        self, type_id: int, code: int, message: str | None, payload: Any = None
    ) -> None:
        self.type_id = type_id
        self.code = code
        self.message = message or "rpc error"
        self.payload = payload
        super().__init__(f"rpc call {type_id} failed: {code} {self.message}")


class RpcClosedError(Exception):
    """The RPC client or server can no longer send or receive.

    ``__cause__`` carries the underlying stream or framing error, if any.
    """
