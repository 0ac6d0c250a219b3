"""Cancelling a waiter on a session or RPC client leaves them running."""

from __future__ import annotations

import asyncio

import pytest

from flowersec_endpoint.rpc import Router, RpcClient, RpcServer
from flowersec_endpoint.yamux import Role, YamuxSession


class _Pipe:
    """One direction-pair of an in-memory byte channel."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]):
        self._inbox = inbox
        self._outbox = outbox

    async def read(self) -> bytes:
        return await self._inbox.get()

    async def write(self, data: bytes) -> None:
        await self._outbox.put(bytes(data))

    async def close(self) -> None:
        await self._outbox.put(b"")


@pytest.mark.timeout(20)
async def test_cancelled_waiters_do_not_kill_session_or_rpc() -> None:
    a_to_b: asyncio.Queue[bytes] = asyncio.Queue()
    b_to_a: asyncio.Queue[bytes] = asyncio.Queue()
    client = YamuxSession(_Pipe(b_to_a, a_to_b), Role.CLIENT)
    server = YamuxSession(_Pipe(a_to_b, b_to_a), Role.SERVER)

    waiter = asyncio.ensure_future(client.wait_closed())
    await asyncio.sleep(0)
    waiter.cancel()

    router = Router()

    async def echo(payload: object) -> object:
        return payload

    router.register(7, echo)
    opened = await client.open_stream()
    accepted = await server.accept_stream()
    serve = asyncio.ensure_future(RpcServer(accepted, router).serve())
    rpc = RpcClient(opened)
    rpc_waiter = asyncio.ensure_future(rpc.wait_closed())
    await asyncio.sleep(0)
    rpc_waiter.cancel()

    assert await rpc.call(7, {"x": 1}, timeout=5) == {"x": 1}
    assert not client.closed
    await rpc.close()
    serve.cancel()
    await client.close()
    await server.close()
