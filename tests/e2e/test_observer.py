"""Connect observer hooks (api.md §10.1) over a real tunnel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from flowersec_endpoint.connecting import connect_tunnel
from flowersec_endpoint.demo.service import demo_server, run_exchange
from flowersec_endpoint.errors import Code, FlowersecError
from flowersec_endpoint.rpc import CallError
from flowersec_endpoint.serve import serve_tunnel
from flowersec_tunnel.issuer import GrantPair

ORIGIN = "http://127.0.0.1"
Mint = Callable[..., GrantPair]


class Recorder:
    """Records every hook call as a tuple, elapsed times checked then dropped."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def on_connect(
        self, path: object, result: str, reason: str | None, elapsed: float
    ) -> None:
        assert elapsed >= 0
        self.events.append(("connect", str(path), result, reason))

    def on_attach(self, result: str, reason: str | None) -> None:
        self.events.append(("attach", result, reason))

    def on_handshake(
        self, path: object, result: str, reason: str | None, elapsed: float
    ) -> None:
        assert elapsed >= 0
        self.events.append(("handshake", str(path), result, reason))


async def test_successful_connect_reports_each_step(mint: Mint) -> None:
    pair = mint()
    serving = asyncio.create_task(
        serve_tunnel(pair.server, demo_server(), origin=ORIGIN)
    )
    recorder = Recorder()
    async with await connect_tunnel(pair.client, origin=ORIGIN, observer=recorder):
        pass
    await asyncio.wait_for(serving, 5)
    assert recorder.events == [
        ("connect", "tunnel", "ok", None),
        ("attach", "ok", None),
        ("handshake", "tunnel", "ok", None),
    ]


async def test_timeout_is_reported_as_a_handshake_failure(mint: Mint) -> None:
    recorder = Recorder()
    with pytest.raises(FlowersecError):
        await connect_tunnel(
            mint().client, origin=ORIGIN, handshake_timeout=0.2, observer=recorder
        )
    assert recorder.events[-1] == ("handshake", "tunnel", "fail", "timeout")


async def test_dial_failure_is_reported(mint: Mint) -> None:
    recorder = Recorder()
    with pytest.raises(FlowersecError):
        await connect_tunnel(
            mint().client, origin="https://x.example", observer=recorder
        )
    assert recorder.events == [("connect", "tunnel", "fail", "websocket_error")]


class Broken:
    """A partial observer whose only hook raises."""

    calls = 0

    def on_attach(self, result: str, reason: str | None) -> None:
        Broken.calls += 1
        raise RuntimeError("observer bug")


async def test_partial_and_failing_observers_do_not_disturb(mint: Mint) -> None:
    pair = mint()
    serving = asyncio.create_task(
        serve_tunnel(pair.server, demo_server(), origin=ORIGIN)
    )
    async with await connect_tunnel(pair.client, origin=ORIGIN, observer=Broken()):
        pass
    await asyncio.wait_for(serving, 5)
    assert Broken.calls == 1
    with pytest.raises(FlowersecError) as info:
        await connect_tunnel(pair.client, origin=ORIGIN, observer=Broken())
    assert info.value.code is Code.TOKEN_REPLAY


async def test_cancelling_a_connect_propagates_and_is_reported(mint: Mint) -> None:
    recorder = Recorder()
    task = asyncio.create_task(
        connect_tunnel(mint().client, origin=ORIGIN, observer=recorder)
    )
    async with asyncio.timeout(5):
        while len(recorder.events) < 2:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.events[-1] == ("handshake", "tunnel", "fail", "canceled")


class RpcRecorder(Recorder):
    """Also records the TS-style RPC hooks."""

    def on_rpc_call(self, result: str, elapsed: float) -> None:
        assert elapsed >= 0
        self.events.append(("rpc_call", result))

    def on_rpc_notify(self) -> None:
        self.events.append(("rpc_notify",))


async def test_rpc_calls_and_notifications_are_reported(mint: Mint) -> None:
    pair = mint()
    serving = asyncio.create_task(
        serve_tunnel(pair.server, demo_server(), origin=ORIGIN)
    )
    recorder = RpcRecorder()
    async with await connect_tunnel(
        pair.client, origin=ORIGIN, observer=recorder
    ) as client:
        await run_exchange(client)
        with pytest.raises(CallError):
            await client.rpc.call(404, {}, timeout=5)
    await asyncio.wait_for(serving, 5)
    assert recorder.events[3:] == [
        ("rpc_notify",),
        ("rpc_call", "ok"),
        ("rpc_call", "handler_not_found"),
    ]
