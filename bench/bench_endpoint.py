"""End-to-end figures of the endpoint library: connect, RPC, stream bytes.

Both endpoints run in this process (uvloop when available); the tunnel is
a real ``flowersec-tunnel`` child process on 127.0.0.1. The figures
therefore include the cost of both endpoints on the same cores, like the
reference load generator's. Printed per path (tunnel and direct):

- connect: time from ``connect_*`` to a ready client (dial, attach,
  E2EE handshake, Yamux, RPC stream), sequential channels;
- rpc: calls/s and latency on one connection, 1 and 32 calls in flight;
- stream: MB/s of one Yamux stream (64 KiB writes into a sink).

    .venv/bin/python bench/bench_endpoint.py --channels 100 --calls 5000 --mib 64
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from flowersec_endpoint.client import Client
from flowersec_endpoint.connecting import connect_direct, connect_tunnel
from flowersec_endpoint.demo.local import percentile, rpc_burst
from flowersec_endpoint.demo.service import demo_server
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.grants import DirectConnectInfo
from flowersec_endpoint.serve import DirectChannel, Server, direct_handler, serve_tunnel
from flowersec_endpoint.stack import Stream
from flowersec_tunnel.issuer import mint_grant_pair, random_id
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.spawn import SpawnedTunnel, spawn_tunnel

ORIGIN = "http://127.0.0.1"
AUD = "flowersec-tunnel:bench"
ISS = "issuer-bench"
CHUNK = 64 * 1024

Connector = Callable[[], Awaitable[Client]]


def _latency(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return (
        f"p50 {percentile(ms, 0.5):.2f} ms, p95 {percentile(ms, 0.95):.2f} ms, "
        f"p99 {percentile(ms, 0.99):.2f} ms"
    )


async def _sink(stream: Stream) -> None:
    total = 0
    async for chunk in stream:
        total += len(chunk)
    stream.write(total.to_bytes(8, "big"))
    await stream.drain()


def bench_server() -> Server:
    """The demo service plus a ``sink`` kind that counts bytes."""
    server = demo_server()
    server.handle("sink", _sink)
    return server


async def measure_connects(channels: int, connector: Connector) -> None:
    """Sequential connects; each connection is closed before the next."""
    times: list[float] = []
    for _ in range(channels):
        started = time.perf_counter()
        client = await connector()
        times.append(time.perf_counter() - started)
        await client.close()
    rate = channels / sum(times)
    print(f"  connect x{channels}: {rate:.0f}/s; {_latency(times)}")


async def measure_rpc(client: Client, calls: int, in_flight: int) -> None:
    """Ping calls on one connection with ``in_flight`` concurrent callers."""
    latencies, wall = await rpc_burst(client, calls, in_flight)
    print(
        f"  rpc x{calls}, {in_flight} in flight: {calls / wall:.0f} calls/s; "
        + _latency(latencies)
    )


async def measure_stream(client: Client, mib: int) -> None:
    """One stream, ``mib`` MiB written in 64 KiB chunks, acknowledged."""
    stream = await client.open_stream("sink")
    chunk = secrets.token_bytes(CHUNK)
    started = time.perf_counter()
    for _ in range(mib * 1024 * 1024 // CHUNK):
        stream.write(chunk)
        await stream.drain()
    await stream.close()
    received = int.from_bytes(await stream.readexactly(8), "big")
    wall = time.perf_counter() - started
    print(f"  stream {received / 2**20:.0f} MiB: {received / wall / 1e6:.0f} MB/s")


async def run_path(name: str, connector: Connector, args: argparse.Namespace) -> None:
    """All three measurements for one path."""
    print(f"{name}:")
    await measure_connects(args.channels, connector)
    async with await connector() as client:
        await measure_rpc(client, args.calls, 1)
        await measure_rpc(client, args.calls, 32)
        await measure_stream(client, args.mib)


def tunnel_connector(
    key: IssuerKey, tunnel: SpawnedTunnel, server: Server
) -> Connector:
    """Mint a pair per connection, serve it, and connect the client."""
    serving: set[asyncio.Task[None]] = set()

    async def connector() -> Client:
        pair = mint_grant_pair(
            key,
            tunnel_url=tunnel.ws_url,
            audience=AUD,
            issuer=ISS,
            channel_id=random_id(),
        )
        task = asyncio.create_task(serve_tunnel(pair.server, server, origin=ORIGIN))
        serving.add(task)
        task.add_done_callback(serving.discard)
        return await connect_tunnel(pair.client, origin=ORIGIN)

    return connector


@asynccontextmanager
async def direct_site(server: Server) -> AsyncIterator[DirectConnectInfo]:
    """A direct endpoint on 127.0.0.1 and the info to reach it."""
    psk = secrets.token_bytes(32)
    init_exp = int(time.time()) + 3600
    app = web.Application()
    channel = DirectChannel("bench", psk, init_exp)
    app.router.add_get(
        "/ws", direct_handler(server, channel=channel, allowed_origins=["127.0.0.1"])
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield DirectConnectInfo(
            f"ws://{host}:{port}/ws", "bench", b64u_encode(psk), init_exp, 1
        )
    finally:
        await runner.cleanup()


async def main(args: argparse.Namespace) -> None:
    key = IssuerKey.generate("bench")
    tunnel = await asyncio.to_thread(
        spawn_tunnel,
        kid=key.kid,
        public_key=key.public_key,
        aud=AUD,
        iss=ISS,
        origin=ORIGIN,
        channels=args.channels,
    )
    server = bench_server()
    try:
        await run_path("tunnel", tunnel_connector(key, tunnel, server), args)
        async with direct_site(server) as info:

            async def direct() -> Client:
                return await connect_direct(info, origin=ORIGIN)

            await run_path("direct", direct, args)
        await server.close()
    finally:
        await asyncio.to_thread(tunnel.stop)


def run() -> None:
    parser = argparse.ArgumentParser(description="endpoint library figures")
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args))
    else:
        uvloop.run(main(args))


if __name__ == "__main__":
    run()
