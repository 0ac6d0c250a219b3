"""Attempts through the E2EE layer: handshake mode and full mode.

The stages and their clocks are the reference's (api.md §13.1): the client
times ``ws_open``, ``attach_send`` and its ``handshake``; ``pair_ready`` runs
from the end of the attach send to the first binary message the client
receives (the server's handshake response); full mode adds one RPC call
(``rpc_call``). The client is assembled from the library's layers so that
each stage can be timed; the serving side runs concurrently through the
library's own serving endpoint (``serve.connect_tunnel``, clock skew 30 s,
server features 1) and, in full mode, the demo RPC service: type 1
notifies type 2 ``{"hello":"world"}`` and answers ``{"ok":true}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from flowersec_endpoint.demo.service import register_demo_service
from flowersec_endpoint.e2ee.channel import SecureChannel, client_handshake
from flowersec_endpoint.errors import Code, FlowersecError, Path
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.loadgen.attempt import (
    AttemptFailed,
    Hold,
    Sample,
    StageTimer,
    describe,
)
from flowersec_endpoint.loadgen.minting import psk_of
from flowersec_endpoint.loadgen.runtime import Runtime
from flowersec_endpoint.loadgen.wire import dial, send_attach
from flowersec_endpoint.rpc import CallError, RpcClient
from flowersec_endpoint.serve import Server, Session, connect_tunnel
from flowersec_endpoint.stack import open_kind_stream, start_mux
from flowersec_endpoint.transport import CLOSE_NORMAL, WebSocketTransport
from flowersec_endpoint.yamux.session import YamuxSession

SERVER_FEATURES = 1
CLOCK_SKEW = 30.0
PING_TYPE_ID = 1
PING_PAYLOAD = {"ping": True}


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


class _Client:
    """The connecting side's layers, closed top-down."""

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.channel: SecureChannel | None = None
        self.mux: YamuxSession | None = None

    async def close(self) -> None:
        if self.mux is not None:
            await self.mux.close()
        if self.channel is not None:
            await self.channel.close()
        if self.ws is not None:
            await self.ws.close()

    async def wait_closed(self) -> None:
        """Return when the connection ends.

        Without Yamux nothing else reads the channel, so records (the
        server's keepalive pings) are read and dropped here.
        """
        if self.mux is not None:
            await self.mux.wait_closed()
        elif self.channel is not None:
            with contextlib.suppress(FlowersecError):
                while await self.channel.read():
                    pass


class _Server:
    """The serving side: its session and, in full mode, the serve loop."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.serving: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.serving is not None:
            self.serving.cancel()
            await asyncio.gather(self.serving, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def wait_closed(self) -> None:
        if self.session is not None:
            await self.session.wait_closed()


async def secure_attempt(rt: Runtime, sample: Sample, full: bool) -> Hold:
    """Run one handshake-mode or full-mode attempt; return its hold."""
    loop = asyncio.get_running_loop()
    timer = StageTimer(loop.time() + rt.config.conn_timeout)
    async with timer.stage("channel_init", timed=False):
        pair = rt.minter.mint(rt.channel_id(sample.index))
    async with timer.stage("psk_decode", timed=False):
        psk = psk_of(pair.client)
    client, server = _Client(), _Server()
    server_task = asyncio.create_task(_serve(rt, pair.server, server, full))
    try:
        await _client_steps(rt, timer, pair.client, psk, client)
        async with timer.stage("server_ready", timed=False):
            await asyncio.shield(server_task)
        if full:
            await _rpc_steps(rt, timer, client)
    except BaseException:
        server_task.cancel()
        await asyncio.gather(server_task, return_exceptions=True)
        await asyncio.gather(client.close(), server.close(), return_exceptions=True)
        raise
    sample.timings.update(timer.timings)

    async def close_both() -> None:
        await asyncio.gather(client.close(), server.close(), return_exceptions=True)

    return Hold(sample, [client.wait_closed(), server.wait_closed()], close_both)


async def _client_steps(
    rt: Runtime,
    timer: StageTimer,
    grant: ChannelInitGrant,
    psk: bytes,
    client: _Client,
) -> None:
    """Dial, attach and handshake, each timed."""
    async with timer.stage("ws_open"):
        client.ws = await dial(rt.http, grant.tunnel_url, rt.config.origin)
    async with timer.stage("attach_send"):
        await send_attach(client.ws, grant)
    attached = time.perf_counter()
    transport = TimedTransport(WebSocketTransport(client.ws))
    async with timer.stage("handshake"):
        client.channel = await client_handshake(
            transport,
            psk=psk,
            channel_id=grant.channel_id,
            suite=grant.default_suite,
            path=Path.TUNNEL,
            handshake_timeout=None,
        )
    if transport.first_received is not None:
        timer.record("pair_ready", attached, transport.first_received)


async def _rpc_steps(rt: Runtime, timer: StageTimer, client: _Client) -> None:
    """Yamux client, the ``rpc`` stream and one call; the session stays open."""
    assert client.channel is not None
    async with timer.stage("yamux_client", timed=False):
        client.mux = start_mux(Path.TUNNEL, client.channel, client=True)
    async with timer.stage("yamux_open", timed=False):
        try:
            stream = await open_kind_stream(Path.TUNNEL, client.mux, "rpc")
        except FlowersecError as exc:
            if exc.code is Code.STREAM_HELLO_FAILED:
                raise AttemptFailed("rpc_hello", describe(exc)) from exc
            raise
    rpc = RpcClient(stream)
    try:
        deadline = asyncio.get_running_loop().time() + rt.config.rpc_timeout
        async with timer.stage("rpc_call", deadline=deadline):
            with contextlib.suppress(CallError):
                await rpc.call(PING_TYPE_ID, PING_PAYLOAD)
    finally:
        await rpc.close()


async def _serve(
    rt: Runtime, grant: ChannelInitGrant, side: _Server, full: bool
) -> None:
    """The serving endpoint: attach and handshake, then serve in full mode."""
    side.session = await connect_tunnel(
        grant,
        origin=rt.config.origin,
        http_session=rt.http,
        server_features=SERVER_FEATURES,
        clock_skew=CLOCK_SKEW,
        handshake_timeout=rt.config.conn_timeout,
    )
    if full:
        side.serving = asyncio.create_task(
            Server(rpc_register=register_demo_service).serve_session(side.session)
        )
