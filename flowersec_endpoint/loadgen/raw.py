"""Attempts that stop below the E2EE layer: attach-only and idle.

Attach-only mirrors the reference: success once both endpoints have sent
their attach (admission is not confirmed). Idle confirms the pairing: each
side sends one probe frame after its attach and waits for the other's, and
``pair_ready`` is the time from the end of the client's attach send to the
arrival of the server's probe, the same span the reference times in full
mode (there it ends with the server's handshake response).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.loadgen.attempt import Hold, Sample, StageTimer
from flowersec_endpoint.loadgen.runtime import Runtime
from flowersec_endpoint.loadgen.wire import (
    dial,
    probe_frame,
    receive_binary,
    send_attach,
)


async def raw_attempt(rt: Runtime, sample: Sample, confirm: bool) -> Hold:
    """Run one raw attempt; return the hold, or raise AttemptFailed."""
    loop = asyncio.get_running_loop()
    timer = StageTimer(loop.time() + rt.config.conn_timeout)
    async with timer.stage("channel_init", timed=False):
        pair = rt.minter.mint(rt.channel_id(sample.index))
    opened: list[aiohttp.ClientWebSocketResponse] = []
    server = asyncio.create_task(_server_side(rt, pair.server, opened, confirm))
    try:
        async with timer.stage("ws_open"):
            client = await dial(rt.http, pair.client.tunnel_url, rt.config.origin)
        opened.append(client)
        async with timer.stage("attach_send"):
            await send_attach(client, pair.client)
        attached = time.perf_counter()
        if confirm:
            async with timer.stage("pair_ready", timed=False):
                await client.send_bytes(probe_frame(1))
                await receive_binary(client)
            timer.record("pair_ready", attached, time.perf_counter())
        async with timer.stage("server_ready" if confirm else "server_attach"):
            await asyncio.shield(server)
    except BaseException:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        await _close_all(opened)
        raise
    sample.timings.update(timer.timings)
    sample.timings.pop("server_ready", None)
    sample.timings.pop("server_attach", None)
    return Hold(sample, [_drain(ws) for ws in opened], lambda: _close_all(opened))


async def _server_side(
    rt: Runtime,
    grant: ChannelInitGrant,
    opened: list[aiohttp.ClientWebSocketResponse],
    confirm: bool,
) -> None:
    ws = await dial(rt.http, grant.tunnel_url, rt.config.origin)
    opened.append(ws)
    await send_attach(ws, grant)
    if confirm:
        await ws.send_bytes(probe_frame(1))
        await receive_binary(ws)


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read until the socket ends; an idle channel should see nothing."""
    while True:
        msg = await ws.receive()
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return


async def _close_all(opened: list[aiohttp.ClientWebSocketResponse]) -> None:
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
