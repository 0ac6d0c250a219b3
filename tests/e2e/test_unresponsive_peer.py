"""A peer that never answers our close frame does not delay a failed connect.

The fake tunnel below reads the attach, misbehaves, then stops reading, so
it never echoes the close frame the client sends on failure. Without a
short close bound the error surfaced only after aiohttp's 10 s close wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from flowersec_endpoint.connecting import connect_tunnel
from flowersec_endpoint.dial import CLOSE_TIMEOUT
from flowersec_endpoint.errors import Code, FlowersecError, Stage
from flowersec_endpoint.grants import ChannelInitGrant

ORIGIN = "http://127.0.0.1"
BOUND = CLOSE_TIMEOUT + 3.0
"""Far below the 10 s the old close wait took, far above the fix's ~2 s."""

Misbehave = Callable[[web.WebSocketResponse], Awaitable[None]]


async def send_text(ws: web.WebSocketResponse) -> None:
    await ws.send_str("not a handshake")


async def send_garbage(ws: web.WebSocketResponse) -> None:
    await ws.send_bytes(b"\x00" * 64)


async def stay_silent(ws: web.WebSocketResponse) -> None:
    return None


def grant(url: str) -> ChannelInitGrant:
    return ChannelInitGrant(
        tunnel_url=url,
        channel_id="chan-deaf",
        channel_init_expire_at_unix_s=int(time.time()) + 120,
        idle_timeout_seconds=60,
        role=1,
        token="FST2.e30.sig",
        e2ee_psk_b64u="A" * 43,
        allowed_suites=(1,),
        default_suite=1,
    )


async def deaf_tunnel(aiohttp_server: AiohttpServer, misbehave: Misbehave) -> str:
    """Start a fake tunnel; return its WebSocket URL."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await misbehave(ws)
        await asyncio.Event().wait()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/ws")).replace("http://", "ws://")


@pytest.mark.parametrize(
    ("misbehave", "code"),
    [
        (send_text, Code.HANDSHAKE_FAILED),
        (send_garbage, Code.HANDSHAKE_FAILED),
        (stay_silent, Code.TIMEOUT),
    ],
)
async def test_failed_connect_is_reported_without_waiting_for_the_echo(
    aiohttp_server: AiohttpServer, misbehave: Misbehave, code: Code
) -> None:
    url = await deaf_tunnel(aiohttp_server, misbehave)
    with pytest.raises(FlowersecError) as info:
        async with asyncio.timeout(BOUND):
            await connect_tunnel(grant(url), origin=ORIGIN, handshake_timeout=0.5)
    assert (info.value.stage, info.value.code) == (Stage.HANDSHAKE, code)


async def test_cancelled_connect_finishes_without_waiting_for_the_echo(
    aiohttp_server: AiohttpServer,
) -> None:
    url = await deaf_tunnel(aiohttp_server, stay_silent)
    task = asyncio.create_task(connect_tunnel(grant(url), origin=ORIGIN))
    await asyncio.sleep(0.3)
    task.cancel()
    async with asyncio.timeout(BOUND):
        with pytest.raises(asyncio.CancelledError):
            await task
