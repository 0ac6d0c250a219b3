"""Serving-session stream helpers over an in-memory Yamux pair (api.md §4.3-4.4)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.rpc import Router, RpcClient, RpcClosedError, RpcServer
from flowersec_endpoint.serve import Server, Session
from flowersec_endpoint.streamhello import encode_hello
from flowersec_endpoint.yamux import YamuxError, YamuxSession


class FakeSecure:
    """The secure-channel surface a Connection uses; it never ends by itself."""

    def __init__(self) -> None:
        self.ended: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )

    async def wait_closed(self) -> BaseException | None:
        return await self.ended

    async def close(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    async def ping(self) -> None:
        return None


async def _noop() -> None:
    return None


def serving(mux: YamuxSession) -> Session:
    return Session(
        path=Path.DIRECT,
        endpoint_instance_id=None,
        secure=FakeSecure(),  # type: ignore[arg-type]
        mux=mux,
        close_socket=_noop,
        keepalive_interval=0.0,
    )


async def test_accept_stream_hello_non_positive_limit_means_8_kib(
    pair: Any,
) -> None:
    client, server = pair
    session = serving(server)
    stream = await client.open_stream()
    stream.write(encode_hello("k" * 8000))
    kind, _ = await session.accept_stream_hello(0)
    assert kind == "k" * 8000
    await session.close()


async def test_accept_stream_hello_bad_hello_and_session_end(pair: Any) -> None:
    client, server = pair
    session = serving(server)
    stream = await client.open_stream()
    stream.write(struct.pack(">I", 8193))
    with pytest.raises(FlowersecError) as info:
        await session.accept_stream_hello()
    error = info.value
    assert (error.path, error.stage, error.code) == (
        Path.DIRECT,
        Stage.RPC,
        Code.STREAM_HELLO_FAILED,
    )
    with pytest.raises(YamuxError):
        await asyncio.wait_for(stream.read(), 5)
    await client.close()
    with pytest.raises(FlowersecError) as info:
        await session.accept_stream_hello()
    assert (info.value.stage, info.value.code) == (
        Stage.YAMUX,
        Code.ACCEPT_STREAM_FAILED,
    )
    await session.close()


async def test_open_stream_codes(pair: Any) -> None:
    _, server = pair
    session = serving(server)
    with pytest.raises(FlowersecError) as info:
        await session.open_stream("")
    assert (info.value.stage, info.value.code) == (
        Stage.VALIDATE,
        Code.MISSING_STREAM_KIND,
    )
    with pytest.raises(FlowersecError) as info:
        await session.open_stream("k" * 8176)
    assert (info.value.stage, info.value.code) == (
        Stage.RPC,
        Code.STREAM_HELLO_FAILED,
    )
    assert server.stream_count == 0
    await session.close()
    with pytest.raises(FlowersecError) as info:
        await session.open_stream("echo")
    assert (info.value.stage, info.value.code) == (
        Stage.YAMUX,
        Code.OPEN_STREAM_FAILED,
    )


async def test_unhandled_kind_reported_and_stream_closed(pair: Any) -> None:
    client, server = pair
    errors: list[BaseException] = []
    runtime = Server(on_error=errors.append)
    session = serving(server)
    serving_task = asyncio.create_task(runtime.serve_session(session))
    stream = await client.open_stream()
    stream.write(encode_hello("nobody"))
    assert await asyncio.wait_for(stream.read(), 5) == b""
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, FlowersecError)
    assert (error.path, error.stage, error.code) == (
        Path.DIRECT,
        Stage.RPC,
        Code.MISSING_HANDLER,
    )
    await session.close()
    await asyncio.wait_for(serving_task, 5)


async def test_fresh_router_per_rpc_stream_and_frame_limit(pair: Any) -> None:
    client, server = pair
    registered: list[tuple[Router, RpcServer]] = []

    def register(router: Router, rpc_server: RpcServer) -> None:
        registered.append((router, rpc_server))
        router.register(1, lambda payload: asyncio.sleep(0, payload))

    frame_errors: list[str] = []

    class Observer:
        def server_frame_error(self, direction: str) -> None:
            frame_errors.append(direction)

    runtime = Server(
        rpc_register=register, rpc_max_frame_bytes=100, rpc_observer=Observer()
    )
    session = serving(server)
    serving_task = asyncio.create_task(runtime.serve_session(session))
    rpcs = []
    for _ in range(2):
        stream = await client.open_stream()
        stream.write(encode_hello("rpc"))
        rpcs.append(RpcClient(stream))
    assert await rpcs[0].call(1, "a") == "a"
    assert await rpcs[1].call(1, "b") == "b"
    assert registered[0][0] is not registered[1][0]
    with pytest.raises(RpcClosedError):
        await asyncio.wait_for(rpcs[0].call(1, "x" * 200), 5)
    assert await rpcs[1].call(1, "still") == "still"
    assert frame_errors == ["read"]
    await session.close()
    await asyncio.wait_for(serving_task, 5)


async def test_sequential_rpc_mode_answers_in_arrival_order(pair: Any) -> None:
    client, server = pair
    done: list[int] = []

    async def slow_first(payload: Any) -> Any:
        await asyncio.sleep(0.05 if payload == 0 else 0)
        done.append(payload)
        return payload

    def register(router: Router, rpc_server: RpcServer) -> None:
        router.register(1, slow_first)

    runtime = Server(rpc_register=register, rpc_max_concurrency=1)
    session = serving(server)
    serving_task = asyncio.create_task(runtime.serve_session(session))
    stream = await client.open_stream()
    stream.write(encode_hello("rpc"))
    rpc = RpcClient(stream)
    assert await asyncio.gather(rpc.call(1, 0), rpc.call(1, 1)) == [0, 1]
    assert done == [0, 1]
    await session.close()
    await asyncio.wait_for(serving_task, 5)
