"""RPC client and server over a real Yamux stream (mux-rpc.md §4-5)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from flowersec_endpoint.rpc import (
    CallError,
    Router,
    RpcClient,
    RpcClosedError,
    RpcError,
    RpcFramingError,
    RpcServer,
    encode_frame,
)
from flowersec_endpoint.rpc.demo import (
    DemoClient,
    DemoService,
    HelloNotify,
    PingRequest,
    register_demo,
)
from flowersec_endpoint.rpc.prom import PrometheusRpcObserver
from flowersec_endpoint.yamux import YamuxStream

Streams = tuple[YamuxStream, YamuxStream]


async def start(
    streams: Streams, router: Router, **server_options: Any
) -> tuple[RpcClient, RpcServer, asyncio.Task[None]]:
    client_stream, server_stream = streams
    server = RpcServer(server_stream, router, **server_options)
    task = asyncio.create_task(server.serve())
    return RpcClient(client_stream), server, task


async def test_concurrent_calls_matched_by_id(stream_pair: Streams) -> None:
    router = Router()
    active = 0
    peak = 0

    async def slow_echo(payload: Any) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001 * (50 - payload["n"]) / 5)
        active -= 1
        return {"n": payload["n"]}

    router.register(7, slow_echo)
    client, _, task = await start(stream_pair, router)
    results = await asyncio.gather(*(client.call(7, {"n": n}) for n in range(50)))
    assert results == [{"n": n} for n in range(50)]
    assert peak > 1
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_sequential_mode_answers_in_order(stream_pair: Streams) -> None:
    router = Router()
    order: list[int] = []

    async def handler(payload: Any) -> Any:
        await asyncio.sleep(0.002 if payload == 0 else 0)
        order.append(payload)
        return payload

    router.register(1, handler)
    client, _, _ = await start(stream_pair, router, max_concurrency=1)
    assert await asyncio.gather(client.call(1, 0), client.call(1, 1)) == [0, 1]
    assert order == [0, 1]


async def test_errors_404_500_and_app_codes(stream_pair: Streams) -> None:
    router = Router()

    async def app_error(payload: Any) -> Any:
        raise RpcError(409, "conflict", payload={"why": 1})

    async def zero_error(payload: Any) -> Any:
        raise RpcError(0)

    async def crash(payload: Any) -> Any:
        raise RuntimeError("secret detail")

    async def not_json(payload: Any) -> Any:
        return {1, 2}

    async def nan(payload: Any) -> Any:
        return {"x": float("nan")}

    async def code_out_of_range(payload: Any) -> Any:
        raise RpcError(2**32, "too big")

    router.register(2, app_error)
    router.register(3, zero_error)
    router.register(4, crash)
    router.register(5, not_json)
    router.register(6, nan)
    router.register(7, code_out_of_range)
    client, _, _ = await start(stream_pair, router)
    expected = {
        99: (404, "handler not found", None),
        2: (409, "conflict", {"why": 1}),
        3: (500, "rpc error", None),
        4: (500, "internal error", None),
        5: (500, "internal error", None),
        6: (500, "internal error", None),
        7: (500, "internal error", None),
    }
    for type_id, (code, message, payload) in expected.items():
        with pytest.raises(CallError) as info:
            await client.call(type_id, {})
        assert (info.value.code, info.value.message) == (code, message)
        assert info.value.payload == payload
        assert info.value.type_id == type_id


async def test_notification_precedes_response(stream_pair: Streams) -> None:
    router = Router()
    client_stream, server_stream = stream_pair
    server = RpcServer(server_stream, router)

    async def ping(payload: Any) -> Any:
        await server.notify(2, {"hello": "world"})
        return {"ok": True}

    router.register(1, ping)
    serving = asyncio.create_task(server.serve())
    client = RpcClient(client_stream)
    seen: list[Any] = []
    unsubscribe = client.on_notify(2, seen.append)
    client.on_notify(2, lambda p: seen.append(("second", p)))
    assert await client.call(1, {}) == {"ok": True}
    assert seen == [{"hello": "world"}, ("second", {"hello": "world"})]
    unsubscribe()
    await client.call(1, {})
    assert len(seen) == 3
    await client.close()
    await asyncio.wait_for(serving, 5)


async def test_client_notify_reaches_server_in_order(stream_pair: Streams) -> None:
    router = Router()
    got: list[Any] = []
    done = asyncio.Event()

    async def on_note(payload: Any) -> Any:
        await asyncio.sleep(0.001 if payload == 0 else 0)
        got.append(payload)
        if len(got) == 5:
            done.set()
        return None

    router.register(3, on_note)
    client, _, _ = await start(stream_pair, router)
    await client.notify(99, "unknown type is dropped")
    for n in range(5):
        await client.notify(3, n)
    await asyncio.wait_for(done.wait(), 5)
    assert got == [0, 1, 2, 3, 4]


async def test_timeout_and_cancel_are_local(stream_pair: Streams) -> None:
    router = Router()
    release = asyncio.Event()

    async def blocked(payload: Any) -> Any:
        await release.wait()
        return "late"

    async def quick(payload: Any) -> Any:
        return "quick"

    router.register(1, blocked)
    router.register(2, quick)
    client, _, _ = await start(stream_pair, router)
    with pytest.raises(TimeoutError):
        await client.call(1, None, timeout=0.05)
    pending = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    release.set()
    assert await client.call(2) == "quick"
    assert not client._pending


async def test_oversized_frames(stream_pair: Streams) -> None:
    router = Router()

    async def huge(payload: Any) -> Any:
        return "x" * (1 << 20)

    router.register(1, huge)
    router.register(2, lambda payload: asyncio.sleep(0, payload))
    client, _, _ = await start(stream_pair, router)
    with pytest.raises(RpcFramingError):
        await client.call(2, "y" * (1 << 20))
    with pytest.raises(CallError) as info:
        await client.call(1)
    assert info.value.code == 500
    assert await client.call(2, "y" * 1000) == "y" * 1000


async def test_oversized_prefix_from_peer_fails_client(stream_pair: Streams) -> None:
    client_stream, server_stream = stream_pair
    client = RpcClient(client_stream)
    call = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    server_stream.write(struct.pack(">I", (1 << 20) + 1))
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(call, 5)
    with pytest.raises(RpcClosedError):
        await client.call(1)


async def test_server_stops_on_oversized_prefix(stream_pair: Streams) -> None:
    client_stream, server_stream = stream_pair
    task = asyncio.create_task(RpcServer(server_stream, Router()).serve())
    client_stream.write(struct.pack(">I", (1 << 20) + 1))
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(task, 5)


async def test_three_bad_frames_close_server(stream_pair: Streams) -> None:
    router = Router()
    router.register(1, lambda payload: asyncio.sleep(0, "ok"))
    client_stream, server_stream = stream_pair
    task = asyncio.create_task(RpcServer(server_stream, router).serve())
    client = RpcClient(client_stream)
    client_stream.write(encode_frame(b"nope") + encode_frame(b""))
    assert await client.call(1) == "ok"
    client_stream.write(encode_frame(b"{") * 3)
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(task, 5)


async def test_close_fails_pending_and_later_calls(stream_pair: Streams) -> None:
    router = Router()
    router.register(1, lambda payload: asyncio.sleep(10))
    client, _, task = await start(stream_pair, router)
    pending = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(RpcClosedError, match="rpc closed"):
        await pending
    with pytest.raises(RpcClosedError):
        await client.notify(1)
    task.cancel()


async def test_stream_end_fails_pending(stream_pair: Streams) -> None:
    client_stream, server_stream = stream_pair
    client = RpcClient(client_stream)
    pending = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    server_stream.reset()
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(pending, 5)


async def test_demo_service_typed(stream_pair: Streams) -> None:
    router = Router()
    client_stream, server_stream = stream_pair
    server = RpcServer(server_stream, router)
    register_demo(router, DemoService(server))
    serving = asyncio.create_task(server.serve())
    demo = DemoClient(RpcClient(client_stream))
    hellos: list[HelloNotify] = []
    demo.on_hello(hellos.append)
    response = await demo.ping(PingRequest(), timeout=5)
    assert response.ok is True
    assert hellos == [HelloNotify(hello="world")]
    with pytest.raises(CallError) as info:
        await demo.rpc.call(1, [])
    assert (info.value.code, info.value.message) == (400, "invalid payload")
    assert await demo.rpc.call(1, None) == {"ok": True}
    await demo.rpc.close()
    await asyncio.wait_for(serving, 5)


async def test_rpc_over_rechunked_channel(make_pair: Any) -> None:
    client_session, server_session = await make_pair(seed=11)
    stream = await client_session.open_stream()
    stream.write(b"\0")
    peer = await server_session.accept_stream()
    await peer.readexactly(1)
    router = Router()
    router.register(1, lambda payload: asyncio.sleep(0, payload))
    client, _server, task = await start((stream, peer), router)
    payloads = [{"i": i, "blob": "z" * (i * 997 % 70000)} for i in range(60)]
    results = await asyncio.gather(*(client.call(1, p) for p in payloads))
    assert results == payloads
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_unsendable_request_is_refused_locally(stream_pair: Streams) -> None:
    router = Router()
    router.register(1, lambda payload: asyncio.sleep(0, payload))
    client, server, _ = await start(stream_pair, router)
    with pytest.raises(ValueError):
        await client.call(1, float("nan"))
    with pytest.raises(ValueError):
        await client.call(2**32)
    with pytest.raises(ValueError):
        await client.notify(1, float("inf"))
    with pytest.raises(ValueError):
        await server.notify(1, float("-inf"))
    assert await client.call(1, "still fine") == "still fine"
    await client.close()


async def test_client_tolerates_two_bad_frames_not_three(
    stream_pair: Streams,
) -> None:
    client_stream, server_stream = stream_pair
    client = RpcClient(client_stream)
    pending = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    good = b'{"type_id":1,"request_id":0,"response_to":1,"payload":"ok"}'
    server_stream.write(encode_frame(b"nope") + encode_frame(b"") + encode_frame(good))
    assert await asyncio.wait_for(pending, 5) == "ok"
    pending = asyncio.create_task(client.call(1))
    await asyncio.sleep(0.01)
    server_stream.write(encode_frame(b"{") * 3)
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(RpcClosedError):
        await client.call(1)


async def test_router_replace_unregister_and_bad_notifications(
    stream_pair: Streams,
) -> None:
    router = Router()
    notes: list[Any] = []

    async def crash(payload: Any) -> Any:
        raise RuntimeError("ignored")

    async def note(payload: Any) -> Any:
        notes.append(payload)

    router.register(1, lambda payload: asyncio.sleep(0, "old"))
    router.register(1, lambda payload: asyncio.sleep(0, "new"))
    router.register(5, crash)
    router.register(6, note)
    client, _, task = await start(stream_pair, router)
    assert await client.call(1) == "new"
    await client.notify(5, "boom")
    await client.notify(99, "nobody")
    await client.notify(6, "after")
    assert await client.call(1) == "new"
    assert notes == ["after"]
    router.unregister(1)
    with pytest.raises(CallError) as info:
        await client.call(1)
    assert (info.value.code, info.value.message) == (404, "handler not found")
    await client.close()
    await asyncio.wait_for(task, 5)


class Recorder:
    """An RpcObserver that records every callback (duration dropped)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def server_request(self, result: str) -> None:
        self.events.append(("server_request", result))

    def server_frame_error(self, direction: str) -> None:
        self.events.append(("server_frame_error", direction))

    def client_call(self, result: str, duration: float) -> None:
        assert duration >= 0
        self.events.append(("client_call", result))

    def client_frame_error(self, direction: str) -> None:
        self.events.append(("client_frame_error", direction))

    def client_notify(self) -> None:
        self.events.append(("client_notify",))


class Broken:
    """An observer that fails: it must never disturb a call."""

    def client_call(self, result: str, duration: float) -> None:
        raise RuntimeError("observer bug")


async def test_rpc_observer_results(stream_pair: Streams) -> None:
    router = Router()
    release = asyncio.Event()
    client_stream, server_stream = stream_pair
    seen = Recorder()
    server = RpcServer(server_stream, router, observer=seen)

    async def ok(payload: Any) -> Any:
        await server.notify(2, "note")
        return "fine"

    async def conflict(payload: Any) -> Any:
        raise RpcError(409, "conflict")

    router.register(1, ok)
    router.register(3, conflict)
    router.register(4, lambda payload: release.wait())
    serving = asyncio.create_task(server.serve())
    client = RpcClient(client_stream, observer=seen)
    assert await client.call(1) == "fine"
    for type_id in (3, 404):
        with pytest.raises(CallError):
            await client.call(type_id)
    with pytest.raises(TimeoutError):
        await client.call(4, timeout=0.01)
    server_stream.write(encode_frame(b"nope"))
    assert await client.call(1) == "fine"
    client_stream.write(encode_frame(b"nope"))
    client.observer = Broken()
    assert await client.call(1) == "fine"
    release.set()
    client.observer = None
    await client.close()
    await asyncio.wait_for(serving, 5)
    assert [e for e in seen.events if e[0].startswith("client")] == [
        ("client_notify",),
        ("client_call", "ok"),
        ("client_call", "rpc_error"),
        ("client_call", "handler_not_found"),
        ("client_call", "canceled"),
        ("client_frame_error", "read"),
        ("client_notify",),
        ("client_call", "ok"),
    ]
    assert sorted(e for e in seen.events if e[0].startswith("server")) == [
        ("server_frame_error", "read"),
        ("server_request", "handler_not_found"),
        ("server_request", "ok"),
        ("server_request", "ok"),
        ("server_request", "ok"),
        ("server_request", "ok"),
        ("server_request", "rpc_error"),
    ]


async def test_prometheus_rpc_observer_names(stream_pair: Streams) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusRpcObserver(registry)
    router = Router()
    client_stream, server_stream = stream_pair
    server = RpcServer(server_stream, router, observer=metrics)

    async def ok(payload: Any) -> Any:
        await server.notify(2, "note")
        return "fine"

    router.register(1, ok)
    serving = asyncio.create_task(server.serve())
    client = RpcClient(client_stream, observer=metrics)
    await client.call(1)
    with pytest.raises(CallError):
        await client.call(404)
    server_stream.write(encode_frame(b"nope"))
    await client.call(1)
    await client.close()
    await asyncio.wait_for(serving, 5)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("flowersec_rpc_requests_total", result="ok") == 2
    assert value("flowersec_rpc_requests_total", result="handler_not_found") == 1
    assert value("flowersec_rpc_client_calls_total", result="ok") == 2
    assert value("flowersec_rpc_client_frame_errors_total", direction="read") == 1
    assert value("flowersec_rpc_client_notify_total") == 2
    assert value("flowersec_rpc_client_call_latency_seconds_count") == 3
    assert value("flowersec_rpc_frame_errors_total", direction="read") is None
