"""A failed handshake closes the WebSocket with 1002, whoever closes it last.

The E2EE layer starts a 1002 close in the background so the error is raised
at once; the connect and accept flows then close the socket themselves. The
peer must still see 1002, not the 1000 of that later, generic close.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from flowersec_endpoint.connecting import connect_direct
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.errors import FlowersecError, Stage
from flowersec_endpoint.grants import ChannelInitGrant, DirectConnectInfo
from flowersec_endpoint.serve import (
    DirectChannel,
    DirectSettings,
    ResolvedChannel,
    ResolveRequest,
    Server,
    connect_tunnel,
    direct_handler,
)

ORIGIN = "http://127.0.0.1"
GARBAGE = b"NOT-A-FLOWERSEC-FRAME"
PSK = secrets.token_bytes(32)
INIT_EXP = int(time.time()) + 3600

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def app_url() -> AsyncIterator[Callable[[Route], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(route: Route) -> str:
        app = web.Application()
        app.router.add_get("/ws", route)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"ws://{host}:{port}/ws"

    yield start
    for runner in runners:
        await runner.cleanup()


def _resolve(request: ResolveRequest) -> ResolvedChannel:
    return ResolvedChannel(psk=PSK, init_expire_at_unix_s=INIT_EXP)


@pytest.mark.parametrize("resolved", [False, True])
async def test_direct_accept_sends_1002(
    app_url: Callable[[Route], Awaitable[str]], resolved: bool
) -> None:
    errors: list[BaseException] = []
    server = Server(on_error=errors.append)
    handler = direct_handler(
        server,
        channel=None if resolved else DirectChannel("chan", PSK, INIT_EXP),
        resolver=_resolve if resolved else None,
        allowed_origins=["127.0.0.1"],
        settings=DirectSettings(handshake_timeout=5),
    )
    url = await app_url(handler)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Origin": ORIGIN}) as ws,
    ):
        await ws.send_bytes(GARBAGE)
        msg = await asyncio.wait_for(ws.receive(), 5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1002)
    assert [e.stage for e in errors if isinstance(e, FlowersecError)] == [
        Stage.HANDSHAKE
    ]


class _GarbagePeer:
    """A WebSocket peer that answers the first message with garbage."""

    def __init__(self, expect_text: bool) -> None:
        self.expect_text = expect_text
        self.close_code: asyncio.Future[int | None] = (
            asyncio.get_running_loop().create_future()
        )

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        assert first.type is (
            aiohttp.WSMsgType.TEXT if self.expect_text else aiohttp.WSMsgType.BINARY
        )
        await ws.send_bytes(GARBAGE)
        msg = await ws.receive()
        code = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else None
        self.close_code.set_result(code)
        return ws


async def test_direct_client_sends_1002(
    app_url: Callable[[Route], Awaitable[str]],
) -> None:
    peer = _GarbagePeer(expect_text=False)
    url = await app_url(peer.handle)
    info = DirectConnectInfo(url, "chan", b64u_encode(PSK), INIT_EXP, 1)
    with pytest.raises(FlowersecError) as raised:
        await connect_direct(info, origin=ORIGIN, handshake_timeout=5)
    assert raised.value.stage is Stage.HANDSHAKE
    assert await asyncio.wait_for(peer.close_code, 5) == 1002


async def test_tunnel_server_sends_1002(
    app_url: Callable[[Route], Awaitable[str]],
) -> None:
    peer = _GarbagePeer(expect_text=True)
    url = await app_url(peer.handle)
    grant = ChannelInitGrant(
        tunnel_url=url,
        channel_id="chan",
        channel_init_expire_at_unix_s=INIT_EXP,
        idle_timeout_seconds=60,
        role=2,
        token="tok",
        e2ee_psk_b64u=b64u_encode(PSK),
        allowed_suites=(1,),
        default_suite=1,
    )
    with pytest.raises(FlowersecError) as raised:
        await connect_tunnel(grant, origin=ORIGIN, handshake_timeout=5)
    assert raised.value.stage is Stage.HANDSHAKE
    assert await asyncio.wait_for(peer.close_code, 5) == 1002
