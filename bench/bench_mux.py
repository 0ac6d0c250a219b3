"""Yamux + RPC throughput in one process over an in-memory byte channel.

Prints stream opens/s (open, hello, accept, read hello), RPC calls/s
(sequential and 32 concurrent callers) and MB/s of bulk data over one
stream. No encryption is involved, so the figures bound what the mux and
RPC layers alone cost. Run: ``.venv/bin/python bench/bench_mux.py``
(uvloop by default, ``--loop asyncio`` for the stdlib loop).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from typing import Any

from flowersec_endpoint.rpc import Router, RpcClient, RpcServer
from flowersec_endpoint.streamhello import encode_hello, read_hello
from flowersec_endpoint.yamux import Role, YamuxSession, YamuxStream


class _Pipe:
    def __init__(self, limit: int) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.limit = limit
        self.closed = False
        self.changed = asyncio.Event()


class MemoryChannel:
    """One end of an in-memory ByteChannel with a bounded buffer."""

    def __init__(self, inbound: _Pipe, outbound: _Pipe) -> None:
        self._in = inbound
        self._out = outbound

    async def read(self) -> bytes:
        while not self._in.chunks:
            if self._in.closed:
                return b""
            self._in.changed.clear()
            await self._in.changed.wait()
        chunk = self._in.chunks.popleft()
        self._in.size -= len(chunk)
        self._in.changed.set()
        return chunk

    async def write(self, data: bytes) -> None:
        while self._out.size >= self._out.limit and not self._out.closed:
            self._out.changed.clear()
            await self._out.changed.wait()
        if self._out.closed:
            raise ConnectionResetError("closed")
        self._out.chunks.append(data)
        self._out.size += len(data)
        self._out.changed.set()

    async def close(self) -> None:
        for pipe in (self._in, self._out):
            pipe.closed = True
            pipe.changed.set()


def session_pair() -> tuple[YamuxSession, YamuxSession]:
    a_to_b, b_to_a = _Pipe(4 << 20), _Pipe(4 << 20)
    client = YamuxSession(MemoryChannel(b_to_a, a_to_b), Role.CLIENT)
    server = YamuxSession(MemoryChannel(a_to_b, b_to_a), Role.SERVER)
    return client, server


async def bench_opens(count: int) -> float:
    client, server = session_pair()

    async def acceptor() -> None:
        for _ in range(count):
            stream = await server.accept_stream()
            await read_hello(stream)
            await stream.close()

    task = asyncio.create_task(acceptor())
    started = time.perf_counter()
    for _ in range(count):
        stream = await client.open_stream()
        stream.write(encode_hello("rpc"))
        await stream.close()
    await task
    elapsed = time.perf_counter() - started
    await client.close()
    await server.close()
    return count / elapsed


async def _rpc_pair() -> tuple[YamuxSession, YamuxSession, RpcClient]:
    client, server = session_pair()
    stream = await client.open_stream()
    stream.write(encode_hello("rpc"))
    peer = await server.accept_stream()
    await read_hello(peer)
    router = Router()

    async def ping(payload: Any) -> Any:
        return {"ok": True}

    router.register(1, ping)
    asyncio.get_running_loop().create_task(RpcServer(peer, router).serve())
    return client, server, RpcClient(stream)


async def bench_calls(count: int, callers: int) -> float:
    client, server, rpc = await _rpc_pair()

    async def caller(n: int) -> None:
        for _ in range(n):
            await rpc.call(1, {})

    started = time.perf_counter()
    await asyncio.gather(*(caller(count // callers) for _ in range(callers)))
    elapsed = time.perf_counter() - started
    await rpc.close()
    await client.close()
    await server.close()
    return (count // callers) * callers / elapsed


async def bench_bulk(total: int, block: int) -> float:
    client, server = session_pair()
    stream = await client.open_stream()
    data = b"\xa5" * block

    async def sink(peer: YamuxStream) -> int:
        received = 0
        async for chunk in peer:
            received += len(chunk)
        return received

    started = time.perf_counter()
    stream.write(b"x")
    receiver = asyncio.create_task(sink(await server.accept_stream()))
    for _ in range(total // block):
        stream.write(data)
        await stream.drain()
    await stream.close()
    received = await receiver
    elapsed = time.perf_counter() - started
    await client.close()
    await server.close()
    return received / elapsed / 1e6


async def run(args: argparse.Namespace) -> None:
    print(f"event loop: {args.loop}")
    print(f"stream opens/s (open+hello+accept): {await bench_opens(args.opens):,.0f}")
    print(f"rpc calls/s (1 caller):  {await bench_calls(args.calls, 1):,.0f}")
    print(f"rpc calls/s (32 callers): {await bench_calls(args.calls, 32):,.0f}")
    mbps = await bench_bulk(args.bulk_mib << 20, 64 * 1024)
    print(f"one stream bulk: {mbps:,.1f} MB/s ({args.bulk_mib} MiB, 64 KiB writes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--bulk-mib", type=int, default=256)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
