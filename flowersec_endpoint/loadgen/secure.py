"""Attempts through the E2EE layer: handshake mode and full mode.

The stages and their clocks are the reference's (api.md §13.1): the client
times ``ws_open``, ``attach_send`` and its ``handshake``; ``pair_ready`` runs
from the end of the attach send to the first binary message the client
receives (the server's handshake response). The server side runs
concurrently, as in the reference, with clock skew 30 s and server
features 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiohttp

from flowersec_endpoint.e2ee.channel import (
    SecureChannel,
    client_handshake,
    server_handshake,
)
from flowersec_endpoint.errors import FlowersecError, Path
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.loadgen.attempt import Hold, Sample, StageTimer
from flowersec_endpoint.loadgen.minting import psk_of
from flowersec_endpoint.loadgen.runtime import Runtime
from flowersec_endpoint.loadgen.wire import dial, send_attach
from flowersec_endpoint.transport import CLOSE_NORMAL, WebSocketTransport

SERVER_FEATURES = 1
CLOCK_SKEW = 30.0


class TimedTransport:
    """A transport that notes when the first message arrived."""

    def __init__(self, inner: WebSocketTransport) -> None:
        self.inner = inner
        self.first_received: float | None = None

    async def send(self, data: bytes | bytearray) -> None:
        await self.inner.send(data)

    async def recv(self) -> bytes:
        data = await self.inner.recv()
        if self.first_received is None:
            self.first_received = time.perf_counter()
        return data

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        await self.inner.close(code, reason)


class _Side:
    """One endpoint's socket and secure channel, closed together."""

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.channel: SecureChannel | None = None
        self.extra_closers: list[Callable[[], Awaitable[None]]] = []

    async def close(self) -> None:
        for closer in reversed(self.extra_closers):
            await closer()
        if self.channel is not None:
            await self.channel.close()
        if self.ws is not None:
            await self.ws.close()

    async def wait_closed(self) -> None:
        """Read (and drop) records until the channel ends.

        Nothing else reads the channel in handshake mode, so this is what
        notices a channel the tunnel closed.
        """
        if self.channel is not None:
            with contextlib.suppress(FlowersecError):
                while await self.channel.read():
                    pass


async def secure_attempt(rt: Runtime, sample: Sample, full: bool) -> Hold:
    """Run one handshake-mode or full-mode attempt; return its hold."""
    loop = asyncio.get_running_loop()
    timer = StageTimer(loop.time() + rt.config.conn_timeout)
    async with timer.stage("channel_init", timed=False):
        pair = rt.minter.mint(rt.channel_id(sample.index))
    async with timer.stage("psk_decode", timed=False):
        psk = psk_of(pair.client)
    client, server = _Side(), _Side()
    server_task = asyncio.create_task(_server(rt, pair.server, psk, server, full))
    try:
        async with timer.stage("ws_open"):
            client.ws = await dial(rt.http, pair.client.tunnel_url, rt.config.origin)
        async with timer.stage("attach_send"):
            await send_attach(client.ws, pair.client)
        attached = time.perf_counter()
        transport = TimedTransport(WebSocketTransport(client.ws))
        async with timer.stage("handshake"):
            client.channel = await client_handshake(
                transport,
                psk=psk,
                channel_id=pair.client.channel_id,
                suite=pair.client.default_suite,
                path=Path.TUNNEL,
                handshake_timeout=None,
            )
        if transport.first_received is not None:
            timer.record("pair_ready", attached, transport.first_received)
        async with timer.stage("server_ready", timed=False):
            await asyncio.shield(server_task)
    except BaseException:
        server_task.cancel()
        await asyncio.gather(server_task, return_exceptions=True)
        await asyncio.gather(client.close(), server.close(), return_exceptions=True)
        raise
    sample.timings.update(timer.timings)

    async def close_both() -> None:
        await asyncio.gather(client.close(), server.close(), return_exceptions=True)

    return Hold(sample, [client.wait_closed(), server.wait_closed()], close_both)


async def _server(
    rt: Runtime, grant: ChannelInitGrant, psk: bytes, side: _Side, full: bool
) -> None:
    """The serving endpoint: dial, attach, server handshake."""
    side.ws = await dial(rt.http, grant.tunnel_url, rt.config.origin)
    await send_attach(side.ws, grant)
    side.channel = await server_handshake(
        WebSocketTransport(side.ws),
        psk=psk,
        channel_id=grant.channel_id,
        init_exp=grant.channel_init_expire_at_unix_s,
        suite=grant.default_suite,
        clock_skew=CLOCK_SKEW,
        server_features=SERVER_FEATURES,
        path=Path.TUNNEL,
        handshake_timeout=None,
        keepalive_interval=max(0.5, grant.idle_timeout_seconds / 2),
    )
