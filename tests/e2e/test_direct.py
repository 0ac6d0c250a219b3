"""Direct path: a serving endpoint mounted in an aiohttp app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from flowersec_endpoint.connecting import connect, connect_direct
from flowersec_endpoint.demo.service import demo_server, run_exchange
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import DirectConnectInfo
from flowersec_endpoint.rpc import Router, RpcServer
from flowersec_endpoint.serve import (
    DirectChannel,
    DirectSettings,
    ResolvedChannel,
    ResolveRequest,
    Server,
    direct_handler,
)
from flowersec_endpoint.stack import Stream
from flowersec_endpoint.yamux import YamuxConfig

ORIGIN = "http://127.0.0.1:5173"
EXPECTED = [
    'rpc response: {"ok":true}',
    'rpc notify: {"hello":"world"}',
    'echo response: "hello over yamux stream: echo"',
]


@dataclass
class DirectServer:
    """A running app plus what the tests need to reach and inspect it."""

    base: str
    psk: bytes
    init_exp: int
    server: Server
    errors: list[BaseException] = field(default_factory=list)
    resolved: list[ResolveRequest] = field(default_factory=list)

    def info(
        self, route: str = "/ws", suite: int = 1, **changes: object
    ) -> DirectConnectInfo:
        values: dict[str, object] = {
            "ws_url": self.base + route,
            "channel_id": "chan-direct",
            "e2ee_psk_b64u": b64u_encode(self.psk),
            "channel_init_expire_at_unix_s": self.init_exp,
            "default_suite": suite,
        }
        values.update(changes)
        return DirectConnectInfo(**values)  # type: ignore[arg-type]

    async def reported(self, timeout: float = 5) -> list[tuple[Path, Stage, Code]]:
        """The codes reported so far, once at least one arrived."""
        async with asyncio.timeout(timeout):
            while not self.errors:
                await asyncio.sleep(0.01)
        return self.codes()

    def codes(self) -> list[tuple[Path, Stage, Code]]:
        return [
            (e.path, e.stage, e.code)
            for e in self.errors
            if isinstance(e, FlowersecError)
        ]


@pytest.fixture
async def direct() -> AsyncIterator[DirectServer]:
    psk = secrets.token_bytes(32)
    init_exp = int(time.time()) + 120
    errors: list[BaseException] = []
    server = demo_server(on_error=errors.append)
    state = DirectServer("", psk, init_exp, server, errors)

    def resolve(request: ResolveRequest) -> ResolvedChannel:
        state.resolved.append(request)
        if request.channel_id == "boom":
            raise RuntimeError("resolver exploded")
        return ResolvedChannel(psk=psk, init_expire_at_unix_s=init_exp)

    def add(
        route: str,
        suite: int = 1,
        origins: Iterable[str] = ("127.0.0.1",),
        **kw: object,
    ) -> None:
        app.router.add_get(
            route,
            direct_handler(
                server,
                allowed_origins=origins,
                settings=DirectSettings(handshake_timeout=5),
                **kw,  # type: ignore[arg-type]
            ),
        )

    app = web.Application()
    channel = DirectChannel("chan-direct", psk, init_exp)
    add("/ws", channel=channel)
    add("/p256", channel=DirectChannel("chan-direct", psk, init_exp, suite=2))
    add("/resolve", resolver=resolve)
    add("/open", channel=channel, origins=(), allow_no_origin=True)
    app.on_shutdown.append(lambda _app: server.close())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base = f"ws://{host}:{port}"
    yield state
    await runner.cleanup()


def _where(exc: FlowersecError) -> tuple[Path, Stage, Code]:
    return exc.path, exc.stage, exc.code


@pytest.mark.parametrize(
    ("route", "suite"), [("/ws", 1), ("/p256", 2), ("/resolve", 2)]
)
async def test_demo_exchange(direct: DirectServer, route: str, suite: int) -> None:
    async with await connect_direct(direct.info(route, suite), origin=ORIGIN) as client:
        assert client.path is Path.DIRECT
        assert client.endpoint_instance_id is None
        assert await run_exchange(client) == EXPECTED
    assert direct.codes() == []


async def test_auto_detect_direct_json(direct: DirectServer) -> None:
    text = direct.info().to_json().decode()
    async with await connect(text, origin=ORIGIN) as client:
        assert client.path is Path.DIRECT
        assert await run_exchange(client) == EXPECTED


async def test_resolver_sees_the_init(direct: DirectServer) -> None:
    info = direct.info("/resolve", 1, channel_id="any-channel")
    async with await connect_direct(info, origin=ORIGIN, client_features=5) as client:
        await run_exchange(client)
    assert direct.resolved == [ResolveRequest("any-channel", 1, 1, 5)]


async def test_failing_resolver_is_reported(direct: DirectServer) -> None:
    with pytest.raises(FlowersecError) as info:
        await connect_direct(direct.info("/resolve", channel_id="boom"), origin=ORIGIN)
    assert _where(info.value) == (Path.DIRECT, Stage.HANDSHAKE, Code.HANDSHAKE_FAILED)
    assert await direct.reported() == [
        (Path.DIRECT, Stage.VALIDATE, Code.RESOLVE_FAILED)
    ]


async def test_wrong_psk_fails_on_both_sides(direct: DirectServer) -> None:
    info = direct.info(e2ee_psk_b64u=b64u_encode(bytes(32)))
    with pytest.raises(FlowersecError) as client_error:
        await connect_direct(info, origin=ORIGIN)
    assert _where(client_error.value) == (
        Path.DIRECT,
        Stage.HANDSHAKE,
        Code.HANDSHAKE_FAILED,
    )
    assert await direct.reported() == [
        (Path.DIRECT, Stage.HANDSHAKE, Code.AUTH_TAG_MISMATCH)
    ]


async def test_wrong_suite_for_a_fixed_channel(direct: DirectServer) -> None:
    with pytest.raises(FlowersecError) as info:
        await connect_direct(direct.info("/ws", 2), origin=ORIGIN)
    assert info.value.stage is Stage.HANDSHAKE


async def test_refused_origin(direct: DirectServer) -> None:
    with pytest.raises(FlowersecError) as info:
        await connect_direct(direct.info(), origin="https://evil.example")
    assert _where(info.value) == (Path.DIRECT, Stage.CONNECT, Code.DIAL_FAILED)
    assert direct.codes() == [(Path.DIRECT, Stage.CONNECT, Code.UPGRADE_FAILED)]


async def test_missing_origin_at_the_server(direct: DirectServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(direct.base + "/ws")
    assert info.value.status == 403
    assert direct.codes() == [(Path.DIRECT, Stage.VALIDATE, Code.MISSING_ORIGIN)]


async def test_allow_no_origin_route(direct: DirectServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(direct.base + "/open")
        await ws.close()
    with pytest.raises(FlowersecError) as info:
        await connect_direct(direct.info("/open"), origin="https://other.example")
    assert _where(info.value) == (Path.DIRECT, Stage.CONNECT, Code.DIAL_FAILED)


async def test_plain_http_request_is_rejected(direct: DirectServer) -> None:
    url = direct.base.replace("ws://", "http://") + "/ws"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Origin": "http://127.0.0.1"}) as reply,
    ):
        assert reply.status == 400
    assert direct.codes() == [(Path.DIRECT, Stage.CONNECT, Code.UPGRADE_FAILED)]


async def test_server_close_is_noticed_by_the_client(direct: DirectServer) -> None:
    client = await connect_direct(direct.info(), origin=ORIGIN)
    await run_exchange(client)
    assert direct.server.sessions == 1
    await direct.server.close()
    assert await asyncio.wait_for(client.wait_closed(), 5) is not None
    assert client.closed
    with pytest.raises(FlowersecError):
        await client.open_stream("echo")
    await client.close()


def test_direct_handler_needs_an_origin_rule() -> None:
    server = demo_server()
    channel = DirectChannel("c", bytes(32), 1)
    with pytest.raises(ValueError):
        direct_handler(server, channel=channel)
    with pytest.raises(ValueError):
        direct_handler(server, allowed_origins=["x"])


async def test_rpc_is_stream_1_and_a_user_handler_wins(direct: DirectServer) -> None:
    seen: list[int] = []
    router = Router()
    router.register(1, lambda payload: asyncio.sleep(0, "mine"))

    async def own_rpc(stream: Stream) -> None:
        seen.append(stream.id)
        await RpcServer(stream, router).serve()

    direct.server.handle("rpc", own_rpc)
    async with await connect_direct(direct.info(), origin=ORIGIN) as client:
        assert await client.rpc.call(1, {}, timeout=5) == "mine"
        echo = await client.open_stream("echo")
        assert echo.id == 3
    assert seen == [1]
    assert direct.codes() == []


async def test_yamux_config_reaches_the_serving_session() -> None:
    psk = secrets.token_bytes(32)
    init_exp = int(time.time()) + 120
    config = YamuxConfig(close_timeout=1.5, write_timeout=3.0)
    seen: list[YamuxConfig] = []

    async def probe(stream: Stream) -> None:
        seen.append(stream._session.config)

    server = Server()
    server.handle("probe", probe)
    app = web.Application()
    app.router.add_get(
        "/ws",
        direct_handler(
            server,
            channel=DirectChannel("chan-y", psk, init_exp),
            allowed_origins=["127.0.0.1"],
            yamux_config=config,
        ),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        info = DirectConnectInfo(
            ws_url=f"ws://{host}:{port}/ws",
            channel_id="chan-y",
            e2ee_psk_b64u=b64u_encode(psk),
            channel_init_expire_at_unix_s=init_exp,
            default_suite=1,
        )
        async with await connect_direct(info, origin=ORIGIN) as client:
            stream = await client.open_stream("probe")
            assert await asyncio.wait_for(stream.read(), 5) == b""
        assert seen == [config]
    finally:
        await server.close()
        await runner.cleanup()
