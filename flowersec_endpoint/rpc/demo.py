"""The demo service of ``demo.fidl.json``: ``Demo.Ping`` = 1, ``Demo.Hello`` = 2.

Reference behaviour: on Ping the server first notifies Hello
``{"hello":"world"}``, then answers ``{"ok":true}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flowersec_endpoint.rpc import typed
from flowersec_endpoint.rpc.client import RpcClient
from flowersec_endpoint.rpc.server import Router

DEMO_PING_TYPE_ID = 1
DEMO_HELLO_TYPE_ID = 2


@dataclass(slots=True)
class PingRequest:
    """Demo ping request (no fields)."""


@dataclass(slots=True)
class PingResponse:
    """Demo ping response."""

    ok: bool = False


@dataclass(slots=True)
class HelloNotify:
    """Demo hello notification."""

    hello: str = ""


class DemoClient:
    """Typed client of the Demo service over an :class:`RpcClient`."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def ping(
        self, request: PingRequest | None = None, *, timeout: float | None = None
    ) -> PingResponse:
        """Call ``Demo.Ping``."""
        return await typed.call(
            self.rpc,
            DEMO_PING_TYPE_ID,
            request or PingRequest(),
            PingResponse,
            timeout=timeout,
        )

    def on_hello(self, handler: Callable[[HelloNotify], object]) -> Callable[[], None]:
        """Subscribe to ``Demo.Hello``; returns an unsubscribe function."""
        return typed.on_notify(self.rpc, DEMO_HELLO_TYPE_ID, HelloNotify, handler)


class DemoHandler(Protocol):
    """Server-side implementation of the Demo request methods."""

    async def ping(self, request: PingRequest) -> PingResponse: ...


def register_demo(router: Router, handler: DemoHandler) -> None:
    """Register every Demo request method of ``handler`` on ``router``."""
    typed.register(router, DEMO_PING_TYPE_ID, PingRequest, PingResponse, handler.ping)


async def notify_demo_hello(notifier: typed.Notifier, message: HelloNotify) -> None:
    """Send ``Demo.Hello``."""
    await typed.notify(notifier, DEMO_HELLO_TYPE_ID, message)


class DemoService:
    """The reference demo handler: notify Hello, then answer ``ok``."""

    def __init__(self, notifier: typed.Notifier) -> None:
        self._notifier = notifier

    async def ping(self, request: PingRequest) -> PingResponse:
        """Send ``{"hello":"world"}`` first, then return ``{"ok":true}``."""
        await notify_demo_hello(self._notifier, HelloNotify(hello="world"))
        return PingResponse(ok=True)
