"""Full stack through a real tunnel process: client and server endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from flowersec_endpoint.client import Client
from flowersec_endpoint.connecting import connect, connect_tunnel
from flowersec_endpoint.demo.service import demo_server, run_exchange
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.rpc import (
    CallError,
    Router,
    RpcClosedError,
    RpcError,
    RpcServer,
)
from flowersec_endpoint.serve import Server, serve_tunnel
from flowersec_endpoint.serve import connect_tunnel as attach_server
from flowersec_endpoint.stack import Stream
from flowersec_endpoint.yamux import Reason, YamuxError
from flowersec_tunnel.issuer import GrantPair, mint_grant_pair
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.spawn import SpawnedTunnel

ORIGIN = "http://127.0.0.1"
Mint = Callable[..., GrantPair]

EXPECTED = [
    'rpc response: {"ok":true}',
    'rpc notify: {"hello":"world"}',
    'echo response: "hello over yamux stream: echo"',
]


def _where(exc: FlowersecError) -> tuple[Path, Stage, Code]:
    return exc.path, exc.stage, exc.code


async def _serve_in_background(
    grant: object, server: Server | None = None, **options: object
) -> asyncio.Task[None]:
    task = asyncio.create_task(
        serve_tunnel(grant, server or demo_server(), origin=ORIGIN, **options)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    return task


@pytest.mark.parametrize("suite", [1, 2])
async def test_demo_exchange_both_suites(mint: Mint, suite: int) -> None:
    pair = mint(allowed_suites=(1, 2), default_suite=suite)
    serving = await _serve_in_background(pair.server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        assert client.path is Path.TUNNEL
        assert client.endpoint_instance_id and len(client.endpoint_instance_id) == 32
        assert await run_exchange(client) == EXPECTED
        await client.ping()
    await asyncio.wait_for(serving, 5)


async def test_connect_auto_detects_a_pair_file(mint: Mint) -> None:
    pair = mint()
    serving = await _serve_in_background(pair.server)
    text = json.dumps(
        {"grant_client": pair.client.to_obj(), "grant_server": pair.server.to_obj()}
    )
    async with await connect(text, origin=ORIGIN) as client:
        assert await run_exchange(client) == EXPECTED
    await asyncio.wait_for(serving, 5)


async def test_reused_grant_is_token_replay(mint: Mint) -> None:
    pair = mint()
    serving = await _serve_in_background(pair.server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        await run_exchange(client)
    await asyncio.wait_for(serving, 5)
    with pytest.raises(FlowersecError) as info:
        await connect_tunnel(pair.client, origin=ORIGIN)
    assert _where(info.value) == (Path.TUNNEL, Stage.ATTACH, Code.TOKEN_REPLAY)


async def test_server_grant_reused_fails_as_handshake_error(mint: Mint) -> None:
    pair = mint()
    serving = await _serve_in_background(pair.server)
    async with await connect_tunnel(pair.client, origin=ORIGIN):
        pass
    await asyncio.wait_for(serving, 5)
    with pytest.raises(FlowersecError) as info:
        await attach_server(pair.server, origin=ORIGIN, handshake_timeout=5)
    assert _where(info.value) == (Path.TUNNEL, Stage.HANDSHAKE, Code.HANDSHAKE_FAILED)


async def test_wrong_psk_fails_on_both_sides(mint: Mint) -> None:
    pair = mint()
    wrong = dataclasses.replace(pair.server, e2ee_psk_b64u=b64u_encode(bytes(32)))
    serving = await _serve_in_background(wrong)
    with pytest.raises(FlowersecError) as client_error:
        await connect_tunnel(pair.client, origin=ORIGIN)
    with pytest.raises(FlowersecError) as server_error:
        await asyncio.wait_for(serving, 5)
    assert _where(client_error.value) == (
        Path.TUNNEL,
        Stage.HANDSHAKE,
        Code.HANDSHAKE_FAILED,
    )
    assert _where(server_error.value) == (
        Path.TUNNEL,
        Stage.HANDSHAKE,
        Code.AUTH_TAG_MISMATCH,
    )


async def test_absent_server_is_a_handshake_timeout(mint: Mint) -> None:
    pair = mint()
    with pytest.raises(FlowersecError) as info:
        await connect_tunnel(pair.client, origin=ORIGIN, handshake_timeout=0.3)
    assert _where(info.value) == (Path.TUNNEL, Stage.HANDSHAKE, Code.TIMEOUT)


async def test_absent_client_is_a_server_handshake_timeout(mint: Mint) -> None:
    pair = mint()
    with pytest.raises(FlowersecError) as info:
        await attach_server(pair.server, origin=ORIGIN, handshake_timeout=0.3)
    assert _where(info.value) == (Path.TUNNEL, Stage.HANDSHAKE, Code.TIMEOUT)


async def test_tunnel_killed_mid_session_is_noticed_by_both(
    mint_own: Mint, own_tunnel: SpawnedTunnel
) -> None:
    pair = mint_own()
    server_attach = asyncio.create_task(attach_server(pair.server, origin=ORIGIN))
    client = await connect_tunnel(pair.client, origin=ORIGIN)
    session = await server_attach
    serving = asyncio.create_task(demo_server().serve_session(session))
    assert await run_exchange(client) == EXPECTED

    own_tunnel.process.kill()
    client_reason = await asyncio.wait_for(client.wait_closed(), 10)
    server_reason = await asyncio.wait_for(session.wait_closed(), 10)
    await asyncio.wait_for(serving, 5)

    assert client_reason is not None and server_reason is not None
    assert client.closed and session.closed
    with pytest.raises(FlowersecError) as info:
        await client.open_stream("echo")
    assert info.value.code is Code.OPEN_STREAM_FAILED
    with pytest.raises(FlowersecError) as ping_info:
        await client.ping()
    assert ping_info.value.code is Code.PING_FAILED
    with pytest.raises(RpcClosedError):
        await client.rpc.call(1, {}, timeout=2)
    await client.close()


async def test_close_from_the_client_ends_the_server_session(mint: Mint) -> None:
    pair = mint()
    server_attach = asyncio.create_task(attach_server(pair.server, origin=ORIGIN))
    client = await connect_tunnel(pair.client, origin=ORIGIN)
    session = await server_attach
    await client.close()
    assert await client.wait_closed() is None
    assert await asyncio.wait_for(session.wait_closed(), 5) is not None
    await client.close()
    await session.close()


async def test_fifty_concurrent_channels(mint: Mint) -> None:
    async def one() -> list[str]:
        pair = mint()
        serving = await _serve_in_background(pair.server, handshake_timeout=30)
        client = await connect_tunnel(pair.client, origin=ORIGIN, handshake_timeout=30)
        async with client:
            lines = await run_exchange(client)
        await asyncio.wait_for(serving, 20)
        return lines

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert results == [EXPECTED] * 50


@pytest.fixture
async def connected(mint: Mint) -> AsyncIterator[Client]:
    pair = mint()
    serving = await _serve_in_background(pair.server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        yield client
    await asyncio.wait_for(serving, 5)


async def test_open_stream_needs_a_kind(connected: Client) -> None:
    with pytest.raises(FlowersecError) as info:
        await connected.open_stream("")
    assert _where(info.value) == (Path.TUNNEL, Stage.VALIDATE, Code.MISSING_STREAM_KIND)


async def test_unhandled_kind_is_reported_and_closed(mint: Mint) -> None:
    pair = mint()
    errors: list[BaseException] = []
    server = demo_server(on_error=errors.append)
    serving = await _serve_in_background(pair.server, server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        stream = await client.open_stream("nobody-serves-this")
        assert await stream.read() == b""
        assert await run_exchange(client) == EXPECTED
    await asyncio.wait_for(serving, 5)
    reported = [e for e in errors if isinstance(e, FlowersecError)]
    assert [_where(e) for e in reported] == [
        (Path.TUNNEL, Stage.RPC, Code.MISSING_HANDLER)
    ]


async def test_keepalive_holds_an_idle_channel_open(mint: Mint) -> None:
    pair = mint(idle_timeout_seconds=1)
    serving = await _serve_in_background(pair.server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        await asyncio.sleep(2.5)
        assert not client.closed
        assert await run_exchange(client) == EXPECTED
    await asyncio.wait_for(serving, 5)


async def test_without_keepalive_the_idle_timeout_is_noticed(mint: Mint) -> None:
    pair = mint(idle_timeout_seconds=1)
    server_attach = asyncio.create_task(
        attach_server(pair.server, origin=ORIGIN, keepalive_interval=0)
    )
    client = await connect_tunnel(pair.client, origin=ORIGIN, keepalive_interval=0)
    session = await server_attach
    assert await asyncio.wait_for(client.wait_closed(), 10) is not None
    assert await asyncio.wait_for(session.wait_closed(), 10) is not None
    await client.close()
    await session.close()


def _other_key_token(pair: GrantPair) -> str:
    other = mint_grant_pair(
        IssuerKey.generate("e2e"),
        tunnel_url=pair.client.tunnel_url,
        audience="flowersec-tunnel:e2e",
        issuer="issuer-e2e",
        channel_id=pair.client.channel_id,
    )
    return other.client.token


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("token_from_another_key", Code.INVALID_TOKEN),
        ("channel_id", Code.CHANNEL_MISMATCH),
        ("server_token", Code.ROLE_MISMATCH),
    ],
)
async def test_tunnel_rejections_map_to_attach_codes(
    mint: Mint, change: str, code: Code
) -> None:
    pair = mint()
    if change == "token_from_another_key":
        grant = dataclasses.replace(pair.client, token=_other_key_token(pair))
    elif change == "channel_id":
        grant = dataclasses.replace(pair.client, channel_id="some-other-channel")
    else:
        grant = dataclasses.replace(pair.client, token=pair.server.token)
    with pytest.raises(FlowersecError) as info:
        await connect_tunnel(grant, origin=ORIGIN)
    assert _where(info.value) == (Path.TUNNEL, Stage.ATTACH, code)


async def test_refused_origin_at_the_tunnel(mint: Mint) -> None:
    with pytest.raises(FlowersecError) as info:
        await connect_tunnel(mint().client, origin="https://evil.example")
    assert _where(info.value) == (Path.TUNNEL, Stage.CONNECT, Code.DIAL_FAILED)


async def test_bad_and_silent_hellos_do_not_block_other_streams(mint: Mint) -> None:
    pair = mint()
    errors: list[BaseException] = []
    server = demo_server(on_error=errors.append)
    server.hello_timeout = 0.3
    serving = await _serve_in_background(pair.server, server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        silent = await client.mux.open_stream()
        garbage = await client.mux.open_stream()
        garbage.write(b"\x00\x00\x00\x02{]")
        await garbage.drain()
        assert await run_exchange(client) == EXPECTED
        with pytest.raises(YamuxError) as reset:
            await silent.read()
        assert reset.value.reason is Reason.STREAM_RESET
    await asyncio.wait_for(serving, 5)
    codes = {_where(e) for e in errors if isinstance(e, FlowersecError)}
    assert codes == {(Path.TUNNEL, Stage.RPC, Code.STREAM_HELLO_FAILED)}
    assert len(errors) == 2


async def test_async_rpc_register_and_rpc_errors(mint: Mint) -> None:
    pair = mint()

    async def register(router: Router, server: RpcServer) -> None:
        async def double(payload: Any) -> Any:
            if not isinstance(payload, int):
                raise RpcError(400, "need an integer")
            return payload * 2

        router.register(7, double)

    serving = await _serve_in_background(pair.server, Server(rpc_register=register))
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        assert await client.rpc.call(7, 21, timeout=5) == 42
        with pytest.raises(CallError) as bad:
            await client.rpc.call(7, "x", timeout=5)
        assert bad.value.code == 400
        with pytest.raises(CallError) as missing:
            await client.rpc.call(8, None, timeout=5)
        assert missing.value.code == 404
    await asyncio.wait_for(serving, 5)


async def test_a_user_handler_replaces_the_rpc_kind(mint: Mint) -> None:
    pair = mint()
    seen: list[bytes] = []

    async def raw(stream: Stream) -> None:
        seen.append(await stream.read())

    server = demo_server()
    server.handle("rpc", raw)
    serving = await _serve_in_background(pair.server, server)
    async with await connect_tunnel(pair.client, origin=ORIGIN) as client:
        await client.rpc.notify(5, {"n": 1})
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
    await asyncio.wait_for(serving, 5)
    assert seen[0].endswith(b'"payload":{"n":1}}')
