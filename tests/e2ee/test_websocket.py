"""Handshakes and records over a real aiohttp WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowersec_endpoint.e2ee.channel import (
    SecureChannel,
    client_handshake,
    server_handshake,
)
from flowersec_endpoint.e2ee.errors import RecordFailure, SecureChannelError
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.transport import TransportClosed, WebSocketTransport

PSK = bytes(range(0x10, 0x30))
CHANNEL = "chan_ws"
Handler = Callable[[WebSocketTransport, web.Request], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[TestServer] = []
    done: list[asyncio.Future[Any]] = []

    async def start(handler: Handler) -> str:
        async def ws_route(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            fut: asyncio.Future[Any] = asyncio.ensure_future(
                handler(WebSocketTransport(ws), request)
            )
            done.append(fut)
            await asyncio.wait([fut])
            return ws

        app = web.Application()
        app.router.add_get("/ws", ws_route)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/ws"))

    yield start
    for fut in done:
        if not fut.done():
            fut.cancel()
    await asyncio.gather(*done, return_exceptions=True)
    for server in servers:
        await server.close()


async def _echo_server(transport: WebSocketTransport, suite: int) -> None:
    channel = await server_handshake(
        transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000, suite=suite
    )
    while data := await channel.read():
        if data == b"rekey please":
            await channel.rekey()
        await channel.write(data)
    await channel.close()


@pytest.mark.parametrize("suite", [1, 2])
async def test_echo_over_websocket(
    serve: Callable[[Handler], Awaitable[str]], suite: int
) -> None:
    url = await serve(lambda t, _: _echo_server(t, suite))
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        channel = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL, suite=suite
        )
        await channel.write(b"hello")
        assert await channel.read() == b"hello"
        await channel.rekey()
        await channel.write(b"rekey please")
        assert await channel.read() == b"rekey please"
        big = bytes(range(256)) * 8192
        await channel.write(big)
        got = b""
        while len(got) < len(big):
            got += await channel.read()
        assert got == big
        await channel.ping()
        await channel.write(b"bye")
        assert await channel.read() == b"bye"
        await channel.close()
        assert await channel.wait_closed() is None


async def test_text_message_is_fatal(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    result: asyncio.Future[BaseException | None] = asyncio.Future()

    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        channel = await server_handshake(
            transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
        )
        try:
            await channel.read()
        except FlowersecError as exc:
            result.set_result(exc)

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        channel = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL
        )
        await ws.send_str("not binary")
        err = await result
        assert isinstance(err, SecureChannelError)
        assert err.reason is RecordFailure.TEXT_MESSAGE
        with pytest.raises(SecureChannelError) as info:
            await channel.read()
        assert info.value.reason is RecordFailure.TRANSPORT_CLOSED


async def test_close_reason_reaches_client(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def reject(transport: WebSocketTransport, _: web.Request) -> None:
        await transport.recv()
        await transport.close(1008, "invalid_token")

    url = await serve(reject)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        with pytest.raises(FlowersecError) as info:
            await client_handshake(
                WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL, path=Path.TUNNEL
            )
    err = info.value
    assert (err.path, err.stage, err.code) == (
        Path.TUNNEL,
        Stage.HANDSHAKE,
        Code.HANDSHAKE_FAILED,
    )
    assert isinstance(err.cause, TransportClosed)
    assert (err.cause.code, err.cause.reason) == (1008, "invalid_token")


async def test_wrong_psk_over_websocket(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    result: asyncio.Future[FlowersecError] = asyncio.Future()

    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        try:
            await server_handshake(
                transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
            )
        except FlowersecError as exc:
            result.set_result(exc)

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        with pytest.raises(FlowersecError) as info:
            await client_handshake(
                WebSocketTransport(ws), psk=bytes(32), channel_id=CHANNEL
            )
    assert info.value.code is Code.HANDSHAKE_FAILED
    assert (await result).code is Code.AUTH_TAG_MISMATCH


async def test_peer_clean_close_is_eof(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    server_channel: asyncio.Future[SecureChannel] = asyncio.Future()

    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        channel = await server_handshake(
            transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
        )
        server_channel.set_result(channel)
        assert await channel.read() == b""

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        channel = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL
        )
        pending = asyncio.ensure_future(channel.read())
        server = await server_channel
        await server.close()
        assert await pending == b""
        assert await channel.wait_closed() is None


async def test_connection_lost_is_not_a_clean_end(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        channel = await server_handshake(
            transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
        )
        await channel.write(b"last words")
        assert request.transport is not None
        request.transport.close()

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        channel = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL
        )
        assert await channel.read() == b"last words"
        with pytest.raises(SecureChannelError) as info:
            await channel.read()
    assert info.value.reason is RecordFailure.TRANSPORT_CLOSED
    assert isinstance(info.value.cause, TransportClosed)
    assert info.value.cause.code is None


async def test_pings_are_skipped_without_autoping(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(transport: WebSocketTransport, _: web.Request) -> None:
        ws = transport.websocket
        await ws.ping(b"p")
        await transport.send(b"frame")
        await transport.recv()

    url = await serve(handler)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, autoping=False) as ws,
    ):
        transport = WebSocketTransport(ws)
        assert await transport.recv() == b"frame"
        await transport.close()


async def test_local_close_with_pending_read(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    server_end: asyncio.Future[bytes] = asyncio.Future()

    async def handler(transport: WebSocketTransport, _: web.Request) -> None:
        channel = await server_handshake(
            transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
        )
        server_end.set_result(await channel.read())

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        channel = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL
        )
        pending = asyncio.ensure_future(channel.read())
        await asyncio.sleep(0.01)
        await asyncio.wait_for(channel.close(), 5)
        assert await asyncio.wait_for(pending, 5) == b""
        assert await asyncio.wait_for(server_end, 5) == b""


@pytest.mark.parametrize("resolved", [False, True])
async def test_text_during_server_handshake_is_handshake_failed(
    serve: Callable[[Handler], Awaitable[str]], resolved: bool
) -> None:
    """e2ee.md §14: a text message during the handshake is handshake_failed."""
    from flowersec_endpoint.serve import DirectSettings
    from flowersec_endpoint.stack import server_handshake_resolved

    result: asyncio.Future[BaseException] = asyncio.Future()

    async def resolve(init: Any) -> tuple[bytes, int]:
        return PSK, 4_000_000_000

    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        try:
            if resolved:
                await server_handshake_resolved(
                    Path.DIRECT,
                    transport.websocket,
                    resolve=resolve,
                    options=DirectSettings(handshake_timeout=5),
                    cache=None,
                )
            else:
                await server_handshake(
                    transport, psk=PSK, channel_id=CHANNEL, init_exp=4_000_000_000
                )
        except BaseException as exc:
            result.set_result(exc)

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("not a frame")
        error = await asyncio.wait_for(result, 5)
    assert isinstance(error, FlowersecError), repr(error)
    assert (error.path, error.stage, error.code) == (
        Path.DIRECT,
        Stage.HANDSHAKE,
        Code.HANDSHAKE_FAILED,
    )


async def test_text_during_client_handshake_is_handshake_failed(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(transport: WebSocketTransport, request: web.Request) -> None:
        await transport.recv()
        await transport.websocket.send_str("not a frame")
        await transport.websocket.receive()

    url = await serve(handler)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        with pytest.raises(FlowersecError) as info:
            await client_handshake(
                WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL, path=Path.TUNNEL
            )
    assert (info.value.path, info.value.stage, info.value.code) == (
        Path.TUNNEL,
        Stage.HANDSHAKE,
        Code.HANDSHAKE_FAILED,
    )
