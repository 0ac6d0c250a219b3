"""Connect and serve validation: codes and their order (api.md §2.1, §3, §4.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from flowersec_endpoint.connecting import connect, connect_direct, connect_tunnel
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import ChannelInitGrant, DirectConnectInfo
from flowersec_endpoint.serve import DirectChannel, DirectSettings, accept_direct
from flowersec_endpoint.serve import connect_tunnel as attach_server

PSK = b64u_encode(bytes(range(32)))
GRANT = ChannelInitGrant(
    tunnel_url="ws://127.0.0.1:9/ws",
    channel_id="chan",
    channel_init_expire_at_unix_s=4_000_000_000,
    idle_timeout_seconds=60,
    role=1,
    token="FST2.a.b",
    e2ee_psk_b64u=PSK,
    allowed_suites=(1,),
    default_suite=1,
)
INFO = DirectConnectInfo(
    ws_url="ws://127.0.0.1:9/ws",
    channel_id="chan",
    e2ee_psk_b64u=PSK,
    channel_init_expire_at_unix_s=4_000_000_000,
    default_suite=1,
)
ORIGIN = "http://127.0.0.1"


def _grant(**changes: Any) -> ChannelInitGrant:
    return dataclasses.replace(GRANT, **changes)


def _info(**changes: Any) -> DirectConnectInfo:
    return dataclasses.replace(INFO, **changes)


async def _code(coro: Any) -> tuple[Path, Stage, Code]:
    with pytest.raises(FlowersecError) as info:
        await coro
    return info.value.path, info.value.stage, info.value.code


V = Stage.VALIDATE
T = Path.TUNNEL
D = Path.DIRECT

TUNNEL_CASES: list[tuple[Any, dict[str, Any], Code]] = [
    (None, {}, Code.MISSING_GRANT),
    (_grant(role=2), {}, Code.ROLE_MISMATCH),
    (_grant(role=2, tunnel_url=""), {}, Code.ROLE_MISMATCH),
    (_grant(tunnel_url=""), {}, Code.MISSING_TUNNEL_URL),
    (_grant(channel_id=""), {}, Code.MISSING_CHANNEL_ID),
    (_grant(token=""), {}, Code.MISSING_TOKEN),
    (_grant(channel_init_expire_at_unix_s=0), {}, Code.MISSING_INIT_EXP),
    (_grant(token="", channel_init_expire_at_unix_s=0), {}, Code.MISSING_TOKEN),
    (GRANT, {"connect_timeout": -1}, Code.INVALID_OPTION),
    (GRANT, {"keepalive_interval": -1, "origin": ""}, Code.INVALID_OPTION),
    (GRANT, {"origin": ""}, Code.MISSING_ORIGIN),
    (_grant(e2ee_psk_b64u="nope"), {"origin": " "}, Code.MISSING_ORIGIN),
    (_grant(e2ee_psk_b64u="nope"), {}, Code.INVALID_PSK),
    (_grant(e2ee_psk_b64u=b64u_encode(bytes(16))), {}, Code.INVALID_PSK),
    (_grant(default_suite=3, e2ee_psk_b64u=""), {}, Code.INVALID_PSK),
    (_grant(default_suite=3), {}, Code.INVALID_SUITE),
    (_grant(default_suite=0), {}, Code.INVALID_SUITE),
    (GRANT, {"endpoint_instance_id": "too-short"}, Code.INVALID_ENDPOINT_INSTANCE_ID),
]


@pytest.mark.parametrize(("grant", "options", "code"), TUNNEL_CASES)
async def test_tunnel_client_validation(
    grant: Any, options: dict[str, Any], code: Code
) -> None:
    kwargs = {"origin": ORIGIN, **options}
    assert await _code(connect_tunnel(grant, **kwargs)) == (T, V, code)


async def test_origin_from_headers_is_accepted() -> None:
    where = await _code(
        connect_tunnel(GRANT, headers={"Origin": ORIGIN}, connect_timeout=2)
    )
    assert where == (T, Stage.CONNECT, Code.DIAL_FAILED)


DIRECT_CASES: list[tuple[Any, dict[str, Any], Code]] = [
    (None, {}, Code.MISSING_CONNECT_INFO),
    (_info(ws_url=""), {}, Code.MISSING_WS_URL),
    (_info(ws_url="", channel_id=""), {}, Code.MISSING_WS_URL),
    (_info(channel_id=""), {}, Code.MISSING_CHANNEL_ID),
    (_info(channel_init_expire_at_unix_s=-5), {}, Code.MISSING_INIT_EXP),
    (INFO, {"max_record_bytes": 0}, Code.INVALID_OPTION),
    (INFO, {"origin": None}, Code.MISSING_ORIGIN),
    (INFO, {"endpoint_instance_id": b64u_encode(bytes(24))}, Code.INVALID_OPTION),
    (_info(e2ee_psk_b64u="A" * 43 + "=="), {}, Code.INVALID_PSK),
    (_info(default_suite=7), {}, Code.INVALID_SUITE),
]


@pytest.mark.parametrize(("info", "options", "code"), DIRECT_CASES)
async def test_direct_client_validation(
    info: Any, options: dict[str, Any], code: Code
) -> None:
    kwargs = {"origin": ORIGIN, **options}
    assert await _code(connect_direct(info, **kwargs)) == (D, V, code)


async def test_auto_connect_codes() -> None:
    server_only = {"grant_server": dataclasses.replace(GRANT, role=2).to_obj()}
    assert await _code(connect(server_only, origin=ORIGIN)) == (
        T,
        V,
        Code.ROLE_MISMATCH,
    )
    assert await _code(connect({"grant_client": None}, origin=ORIGIN)) == (
        T,
        V,
        Code.MISSING_GRANT,
    )
    assert await _code(connect("hello", origin=ORIGIN)) == (
        Path.AUTO,
        V,
        Code.INVALID_INPUT,
    )
    assert await _code(connect(INFO.to_json(), origin="")) == (
        D,
        V,
        Code.MISSING_ORIGIN,
    )


SERVER_CASES: list[tuple[Any, dict[str, Any], Code]] = [
    (None, {}, Code.MISSING_GRANT),
    (GRANT, {}, Code.ROLE_MISMATCH),
    (_grant(role=2, tunnel_url=""), {}, Code.MISSING_TUNNEL_URL),
    (_grant(role=2, token=""), {}, Code.MISSING_TOKEN),
    (_grant(role=2), {"clock_skew": -1}, Code.INVALID_OPTION),
    (_grant(role=2), {"origin": ""}, Code.MISSING_ORIGIN),
    (_grant(role=2, e2ee_psk_b64u="x"), {}, Code.INVALID_PSK),
    (_grant(role=2, default_suite=9), {}, Code.INVALID_SUITE),
]


@pytest.mark.parametrize(("grant", "options", "code"), SERVER_CASES)
async def test_tunnel_server_validation(
    grant: Any, options: dict[str, Any], code: Code
) -> None:
    kwargs = {"origin": ORIGIN, **options}
    assert await _code(attach_server(grant, **kwargs)) == (T, V, code)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_dial_failure() -> None:
    grant = _grant(tunnel_url=f"ws://127.0.0.1:{_closed_port()}/ws")
    where = await _code(connect_tunnel(grant, origin=ORIGIN))
    assert where == (T, Stage.CONNECT, Code.DIAL_FAILED)
    info = _info(ws_url=f"ws://127.0.0.1:{_closed_port()}/ws")
    assert await _code(connect_direct(info, origin=ORIGIN)) == (
        D,
        Stage.CONNECT,
        Code.DIAL_FAILED,
    )


async def test_not_a_websocket_url() -> None:
    where = await _code(connect_direct(_info(ws_url="not a url"), origin=ORIGIN))
    assert where == (D, Stage.CONNECT, Code.DIAL_FAILED)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP listener that accepts and then never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_connect_timeout(silent_port: int) -> None:
    grant = _grant(tunnel_url=f"ws://127.0.0.1:{silent_port}/ws")
    where = await _code(connect_tunnel(grant, origin=ORIGIN, connect_timeout=0.2))
    assert where == (T, Stage.CONNECT, Code.TIMEOUT)


class _FakeWebSocket:
    """Stands in for an upgraded socket; validation must close it."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed = True
        return True


_CHANNEL = DirectChannel(channel_id="chan", psk=bytes(32), init_expire_at_unix_s=9)
_BAD_SETTINGS = DirectSettings(handshake_timeout=-1)

ACCEPT_DIRECT_CASES: list[tuple[Any, Any, Code]] = [
    (
        dataclasses.replace(_CHANNEL, channel_id="", psk=b""),
        {},
        Code.MISSING_CHANNEL_ID,
    ),
    (
        dataclasses.replace(_CHANNEL, init_expire_at_unix_s=0, suite=5),
        {},
        Code.MISSING_INIT_EXP,
    ),
    (dataclasses.replace(_CHANNEL, psk=b"x", suite=5), {}, Code.INVALID_PSK),
    (
        dataclasses.replace(_CHANNEL, suite=5),
        {"settings": _BAD_SETTINGS},
        Code.INVALID_SUITE,
    ),
    (_CHANNEL, {"settings": _BAD_SETTINGS}, Code.INVALID_OPTION),
    (_CHANNEL, {"resolver": lambda request: None}, Code.INVALID_OPTION),
    (None, {}, Code.INVALID_OPTION),
]


@pytest.mark.parametrize(("channel", "options", "code"), ACCEPT_DIRECT_CASES)
async def test_accept_direct_validation_order(
    channel: Any, options: dict[str, Any], code: Code
) -> None:
    ws = _FakeWebSocket()
    assert await _code(accept_direct(ws, channel, **options)) == (D, V, code)
    assert ws.closed


async def test_accept_direct_without_socket() -> None:
    assert await _code(accept_direct(None, _CHANNEL)) == (D, V, Code.MISSING_CONN)


async def test_server_endpoint_id_is_checked_after_the_dial() -> None:
    dialed = asyncio.Event()
    closed = asyncio.Event()

    async def accept(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        dialed.set()
        async for _ in ws:
            pass
        closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        grant = _grant(role=2, tunnel_url=f"ws://127.0.0.1:{port}/ws")
        where = await _code(
            attach_server(grant, origin=ORIGIN, endpoint_instance_id="short")
        )
        assert where == (T, V, Code.INVALID_ENDPOINT_INSTANCE_ID)
        assert dialed.is_set()
        await asyncio.wait_for(closed.wait(), 5)
    finally:
        await runner.cleanup()
