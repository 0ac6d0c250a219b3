"""``flowersec-demo`` with no subcommand: the whole job in one command.

It generates a throwaway issuer key, starts a real ``flowersec-tunnel``
process on an ephemeral loopback port with that key's keyset, mints a grant
pair with the issuer library, runs a serving endpoint and a client through
the tunnel, prints the demo exchange and the figures of a burst of RPC
calls, and stops everything. The tunnel runs non-dev with the generated key
so that the demo needs nothing from the tunnel's output but its ready line.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from flowersec_endpoint.client import Client
from flowersec_endpoint.connecting import connect_tunnel
from flowersec_endpoint.demo.service import CALL_TIMEOUT, demo_server, run_exchange
from flowersec_endpoint.rpc.demo import DEMO_PING_TYPE_ID
from flowersec_endpoint.serve import serve_tunnel
from flowersec_tunnel.issuer import mint_grant_pair, random_id
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.spawn import spawn_tunnel

DEMO_KID = "demo"
DEMO_AUD = "flowersec-tunnel:demo"
DEMO_ISS = "issuer-demo"


def percentile(sorted_values: list[float], p: float) -> float:
    """The sample at index floor((n - 1) * p), as the reference reports it."""
    return sorted_values[int((len(sorted_values) - 1) * p)]


async def rpc_burst(
    client: Client, calls: int, concurrency: int
) -> tuple[list[float], float]:
    """Run ``calls`` pings with ``concurrency`` in flight; latencies + wall time."""
    latencies: list[float] = []
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await client.rpc.call(DEMO_PING_TYPE_ID, {}, timeout=CALL_TIMEOUT)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    return latencies, time.perf_counter() - started


async def run_local(args: argparse.Namespace) -> int:
    """Run the one-command demo; returns the exit status."""
    origin: str = args.origin
    key = IssuerKey.generate(DEMO_KID)
    tunnel = await asyncio.to_thread(
        spawn_tunnel,
        kid=key.kid,
        public_key=key.public_key,
        aud=DEMO_AUD,
        iss=DEMO_ISS,
        origin=origin,
        channels=1,
    )
    print(f"tunnel: {tunnel.ws_url} (pid {tunnel.pid})", flush=True)
    try:
        pair = mint_grant_pair(
            key,
            tunnel_url=tunnel.ws_url,
            audience=DEMO_AUD,
            issuer=DEMO_ISS,
            channel_id=random_id(),
        )
        print(f"channel: {pair.client.channel_id}", flush=True)
        server = demo_server()
        serving = asyncio.create_task(serve_tunnel(pair.server, server, origin=origin))
        started = time.perf_counter()
        client = await connect_tunnel(pair.client, origin=origin)
        connected_ms = (time.perf_counter() - started) * 1000
        async with client:
            print(f"connected: {connected_ms:.1f} ms (attach + E2EE + yamux)")
            for line in await run_exchange(client):
                print(line, flush=True)
            if args.calls:
                latencies, wall = await rpc_burst(client, args.calls, args.concurrency)
                latencies.sort()
                ms = [value * 1000 for value in latencies]
                print(
                    f"rpc burst: {len(ms)} calls, {args.concurrency} in flight, "
                    f"{len(ms) / wall:.0f} calls/s, p50 {percentile(ms, 0.5):.2f} ms, "
                    f"p95 {percentile(ms, 0.95):.2f} ms, "
                    f"p99 {percentile(ms, 0.99):.2f} ms, max {ms[-1]:.2f} ms",
                    flush=True,
                )
        await asyncio.wait_for(serving, timeout=5.0)
    finally:
        status, _log_tail = await asyncio.to_thread(tunnel.stop)
    print(f"stopped: tunnel exited with status {status}", flush=True)
    return 0
