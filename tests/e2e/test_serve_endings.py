"""How a served session ends (api.md §4.3, §9.3).

A session killed by the peer's protocol violation (a broken record, a bad
Yamux frame) is ``<path>/yamux/accept_stream_failed`` with the cause
chained: raised by ``serve_session``/``serve_tunnel``, reported by a direct
handler, and a non-zero exit of ``flowersec-demo server``. A clean close,
the peer leaving and a local close end the serving quietly.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath

import aiohttp
import pytest
from aiohttp import web

from flowersec_endpoint.attach import attach_message, new_endpoint_instance_id
from flowersec_endpoint.e2ee.channel import SecureChannel, client_handshake
from flowersec_endpoint.e2ee.errors import RecordFailure, SecureChannelError
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.serve import (
    DirectChannel,
    Server,
    accept_direct,
    direct_handler,
)
from flowersec_endpoint.transport import WebSocketTransport
from flowersec_endpoint.yamux import Reason, YamuxError
from flowersec_tunnel.issuer import GrantPair

ORIGIN = "http://127.0.0.1"
PSK = secrets.token_bytes(32)
CHANNEL = "chan-endings"
INIT_EXP = int(time.time()) + 3600
DEMO = str(FilePath(sys.executable).with_name("flowersec-demo"))
ACCEPT_FAILED = (Path.DIRECT, Stage.YAMUX, Code.ACCEPT_STREAM_FAILED)

Mint = Callable[..., GrantPair]
Action = Callable[[aiohttp.ClientWebSocketResponse, SecureChannel], Awaitable[None]]


@dataclass
class Served:
    """A direct app running ``serve_session`` itself, plus a handler route."""

    url: str
    handler_url: str
    server: Server
    outcomes: asyncio.Queue[BaseException | None]
    reported: list[BaseException]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    outcomes: asyncio.Queue[BaseException | None] = asyncio.Queue()
    reported: list[BaseException] = []
    server = Server(on_error=reported.append)
    channel = DirectChannel(CHANNEL, PSK, INIT_EXP)

    async def own_loop(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = await accept_direct(ws, channel)
        try:
            await server.serve_session(session)
        except Exception as exc:
            await outcomes.put(exc)
        else:
            await outcomes.put(None)
        finally:
            await session.close()
        return ws

    app = web.Application()
    app.router.add_get("/own", own_loop)
    app.router.add_get(
        "/handler",
        direct_handler(server, channel=channel, allowed_origins=["127.0.0.1"]),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"ws://{host}:{port}"
    yield Served(base + "/own", base + "/handler", server, outcomes, reported)
    await server.close()
    await runner.cleanup()


@asynccontextmanager
async def _secure_client(
    url: str,
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, SecureChannel]]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Origin": ORIGIN}) as ws,
    ):
        secure = await client_handshake(
            WebSocketTransport(ws), psk=PSK, channel_id=CHANNEL
        )
        yield ws, secure


async def _garbage_record(
    ws: aiohttp.ClientWebSocketResponse, secure: SecureChannel
) -> None:
    await ws.send_bytes(b"garbage, not a record" * 4)


async def _tampered_record(
    ws: aiohttp.ClientWebSocketResponse, secure: SecureChannel
) -> None:
    frame = bytearray(next(iter(secure.records.seal_app(b"x" * 32))))
    frame[-1] ^= 0x01
    await ws.send_bytes(bytes(frame))


async def _bad_yamux_frame(
    ws: aiohttp.ClientWebSocketResponse, secure: SecureChannel
) -> None:
    await secure.write(bytes([7]) + bytes(11))


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__
    return seen


def _where(error: BaseException) -> tuple[Path, Stage, Code]:
    assert isinstance(error, FlowersecError), repr(error)
    return error.path, error.stage, error.code


VIOLATIONS: list[tuple[Action, RecordFailure | Reason]] = [
    (_garbage_record, RecordFailure.INVALID_MAGIC),
    (_tampered_record, RecordFailure.DECRYPT_FAILED),
    (_bad_yamux_frame, Reason.PROTOCOL_ERROR),
]


def _has_reason(error: BaseException, reason: RecordFailure | Reason) -> bool:
    for link in _chain(error):
        if isinstance(link, SecureChannelError | YamuxError) and link.reason == reason:
            return True
    return False


@pytest.mark.parametrize(("action", "reason"), VIOLATIONS)
async def test_violation_fails_serve_session(
    served: Served, action: Action, reason: RecordFailure | Reason
) -> None:
    async with _secure_client(served.url) as (ws, secure):
        await action(ws, secure)
        outcome = await asyncio.wait_for(served.outcomes.get(), 5)
    assert outcome is not None
    assert _where(outcome) == ACCEPT_FAILED
    assert _has_reason(outcome, reason), _chain(outcome)
    assert "\n" not in str(outcome)
    assert served.reported == []


@pytest.mark.parametrize(("action", "reason"), VIOLATIONS)
async def test_violation_reported_by_direct_handler(
    served: Served, action: Action, reason: RecordFailure | Reason
) -> None:
    async with _secure_client(served.handler_url) as (ws, secure):
        await action(ws, secure)
        async with asyncio.timeout(5):
            while not served.reported:
                await asyncio.sleep(0.01)
    assert [_where(e) for e in served.reported] == [ACCEPT_FAILED]
    assert _has_reason(served.reported[0], reason)


async def _clean_close(ws: aiohttp.ClientWebSocketResponse, s: SecureChannel) -> None:
    await s.close()


async def _going_away(ws: aiohttp.ClientWebSocketResponse, s: SecureChannel) -> None:
    await ws.close(code=1001)


@pytest.mark.parametrize("action", [_clean_close, _going_away])
async def test_peer_leaving_is_quiet(served: Served, action: Action) -> None:
    async with _secure_client(served.url) as (ws, secure):
        await action(ws, secure)
        assert await asyncio.wait_for(served.outcomes.get(), 5) is None
    async with _secure_client(served.handler_url) as (ws, secure):
        await action(ws, secure)
        async with asyncio.timeout(5):
            while served.server.sessions:
                await asyncio.sleep(0.01)
    assert served.reported == []


async def test_local_close_is_quiet(served: Served) -> None:
    async with _secure_client(served.url):
        async with asyncio.timeout(5):
            while not served.server.sessions:
                await asyncio.sleep(0.01)
        await served.server.close()
        assert await asyncio.wait_for(served.outcomes.get(), 5) is None
    assert served.reported == []


def test_demo_server_exits_non_zero_on_violation(
    mint: Mint, tmp_path: FilePath
) -> None:
    pair = mint()
    grant_file = tmp_path / "server.json"
    grant_file.write_text(json.dumps({"grant_server": pair.server.to_obj()}))
    server = subprocess.Popen(
        [DEMO, "server", "--grant", str(grant_file), "--origin", ORIGIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        asyncio.run(_attack_through_tunnel(pair))
        out, err = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 1
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flowersec-demo: tunnel yamux (accept_stream_failed):")
    assert "invalid_magic" in lines[0]


async def _attack_through_tunnel(pair: GrantPair) -> None:
    grant = pair.client
    message = attach_message(
        channel_id=grant.channel_id,
        role=1,
        token=grant.token,
        endpoint_instance_id=new_endpoint_instance_id(),
    )
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(grant.tunnel_url, headers={"Origin": ORIGIN}) as ws,
    ):
        await ws.send_str(message)
        await client_handshake(
            WebSocketTransport(ws),
            psk=grant.e2ee_psk_b64u,
            channel_id=grant.channel_id,
            suite=grant.default_suite,
            handshake_timeout=10,
        )
        await ws.send_bytes(b"garbage, not a record" * 4)
        await asyncio.wait_for(ws.receive(), 10)
