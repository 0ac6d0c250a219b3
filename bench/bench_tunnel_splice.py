"""Splice throughput through one paired channel, and memory per idle channel.

Throughput: the tunnel runs in this process (uvloop when available) next to
two raw aiohttp clients, so the figure includes the clients' own CPU time
on the same cores; it is a floor for the tunnel alone.

Memory: the tunnel runs in a forked child so its RSS is measured alone;
this process holds N paired channels (2N WebSockets) open against it and
prints the child's RSS before and after.

    .venv/bin/python bench/bench_tunnel_splice.py --seconds 3 --idle 1000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import secrets
import time
from dataclasses import replace

import aiohttp

from flowersec_endpoint.encoding import b64u_encode
from flowersec_tunnel.config import TunnelConfig
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.logs import configure
from flowersec_tunnel.server import TunnelServer
from flowersec_tunnel.tokens import TokenPayload, sign_token

AUD = "flowersec-tunnel:bench"
ISS = "issuer-bench"
ORIGIN = "https://bench.example"
KEY = IssuerKey.from_seed("k1", bytes(range(32)))


def config() -> TunnelConfig:
    return TunnelConfig(
        aud=AUD,
        iss=ISS,
        allow_origin=(ORIGIN,),
        issuer_keys_file="unused",
        max_conns=100000,
        max_channels=50000,
    )


def token(channel_id: str, role: int) -> str:
    now = int(time.time())
    payload = TokenPayload(
        kid="k1",
        aud=AUD,
        iss=ISS,
        channel_id=channel_id,
        role=role,
        token_id=secrets.token_urlsafe(18),
        init_exp=now + 600,
        idle_timeout_seconds=600,
        iat=now,
        exp=now + 600,
    )
    return sign_token(payload, KEY)


def attach_text(channel_id: str, role: int) -> str:
    import json

    return json.dumps(
        {
            "v": 1,
            "channel_id": channel_id,
            "role": role,
            "token": token(channel_id, role),
            "endpoint_instance_id": b64u_encode(os.urandom(24)),
        }
    )


async def open_pair(
    session: aiohttp.ClientSession, url: str, channel_id: str
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
    pair = []
    for role in (1, 2):
        ws = await session.ws_connect(url, headers={"Origin": ORIGIN})
        await ws.send_str(attach_text(channel_id, role))
        pair.append(ws)
    return pair[0], pair[1]


async def throughput(url: str, size: int, seconds: float) -> tuple[float, float]:
    """One direction, one channel: messages/s and MB/s delivered."""
    async with aiohttp.ClientSession() as session:
        client, server = await open_pair(session, url, secrets.token_urlsafe(8))
        payload = os.urandom(size)
        stop = time.perf_counter() + seconds
        received = 0

        async def sender() -> None:
            while time.perf_counter() < stop:
                await client.send_bytes(payload)
            await client.send_bytes(b"")

        task = asyncio.create_task(sender())
        started = time.perf_counter()
        while True:
            msg = await server.receive_bytes()
            if not msg:
                break
            received += 1
        elapsed = time.perf_counter() - started
        await task
        await client.close()
        await server.close()
    return received / elapsed, received * size / elapsed / 1e6


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(conn: multiprocessing.connection.Connection) -> None:
    """Run the tunnel alone in this process and report its address."""

    async def run() -> None:
        server = TunnelServer(config(), {KEY.kid: KEY.public_key})
        await server.start()
        conn.send(server.listen)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await server.close()

    _run(run())


async def idle_memory(count: int) -> tuple[int, int]:
    parent, child_end = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(target=child, args=(child_end,))
    proc.start()
    listen = parent.recv()
    assert proc.pid is not None
    url = f"ws://{listen}/ws"
    await asyncio.sleep(0.3)
    before = rss_kib(proc.pid)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        sockets = []
        for index in range(count):
            sockets.extend(await open_pair(session, url, f"idle-{index}"))
        await asyncio.sleep(1.0)
        after = rss_kib(proc.pid)
        for ws in sockets:
            await ws.close()
    parent.send("stop")
    proc.join(10)
    return before, after


def _run(coro: object) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
        return
    uvloop.run(coro)  # type: ignore[arg-type]


async def main(args: argparse.Namespace) -> None:
    server = TunnelServer(
        replace(config(), write_timeout=10.0), {KEY.kid: KEY.public_key}
    )
    await server.start()
    url = f"ws://{server.listen}/ws"
    for size in args.sizes:
        rate, mbps = await throughput(url, size, args.seconds)
        print(f"splice {size:>7} B messages: {rate:>10.0f} msg/s {mbps:>8.1f} MB/s")
    await server.close()
    if args.idle:
        before, after = await idle_memory(args.idle)
        per = (after - before) * 1024 / args.idle
        print(
            f"idle paired channels: {args.idle}  tunnel RSS {before / 1024:.1f} MiB"
            f" -> {after / 1024:.1f} MiB  ({per / 1024:.1f} KiB per channel)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 16384, 262144])
    parser.add_argument("--idle", type=int, default=1000)
    configure(level=logging.WARNING)
    _run(main(parser.parse_args()))
