"""Both sides of the reference demo (api.md §12, demo.fidl.json).

Serving side: the typed demo service of :mod:`flowersec_endpoint.rpc.demo`
(``Demo.Ping`` notifies ``Demo.Hello`` ``{"hello":"world"}``, then answers
``{"ok":true}``) on every RPC stream, and kind ``echo``, which copies every
byte back. Connecting side: the exchange whose three output lines every
reference demo client prints.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from flowersec_endpoint.client import Client
from flowersec_endpoint.rpc import Router, RpcServer
from flowersec_endpoint.rpc.demo import (
    DemoClient,
    DemoService,
    HelloNotify,
    register_demo,
)
from flowersec_endpoint.serve import ErrorReporter, Server
from flowersec_endpoint.stack import Stream

ECHO_KIND = "echo"
ECHO_MESSAGE = "hello over yamux stream: echo"
CALL_TIMEOUT = 5.0
NOTIFY_WAIT = 2.0


def register_demo_service(router: Router, server: RpcServer) -> None:
    """Register ``Demo.Ping`` on a fresh per-stream router."""
    register_demo(router, DemoService(server))


async def echo(stream: Stream) -> None:
    """Copy the stream's bytes back until the peer half-closes."""
    async for chunk in stream:
        stream.write(chunk)
        await stream.drain()


def demo_server(on_error: ErrorReporter | None = None) -> Server:
    """A :class:`Server` offering the demo RPC service and the echo kind."""
    server = Server(rpc_register=register_demo_service, on_error=on_error)
    server.handle(ECHO_KIND, echo)
    return server


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def run_exchange(client: Client) -> list[str]:
    """Ping, wait for the Hello notification, echo once; return the lines.

    The lines are exactly the reference clients' output, including
    ``rpc notify: timeout`` when no notification came within 2 s.
    """
    demo = DemoClient(client.rpc)
    hello: asyncio.Future[HelloNotify] = asyncio.get_running_loop().create_future()

    def on_hello(message: HelloNotify) -> None:
        if not hello.done():
            hello.set_result(message)

    unsubscribe = demo.on_hello(on_hello)
    try:
        response = await demo.ping(timeout=CALL_TIMEOUT)
        lines = [f"rpc response: {_compact(asdict(response))}"]
        try:
            async with asyncio.timeout(NOTIFY_WAIT):
                lines.append(f"rpc notify: {_compact(asdict(await hello))}")
        except TimeoutError:
            lines.append("rpc notify: timeout")
    finally:
        unsubscribe()
    stream = await client.open_stream(ECHO_KIND)
    message = ECHO_MESSAGE.encode("utf-8")
    stream.write(message)
    await stream.drain()
    echoed = await stream.readexactly(len(message))
    await stream.close()
    lines.append(f"echo response: {_compact(echoed.decode('utf-8'))}")
    return lines
