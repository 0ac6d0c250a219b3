"""Bad input at scale: memory and slots stay bounded, good channels flow."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import StartTunnel


async def test_half_open_connections_are_bounded(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(max_conns=40, attach_timeout=0.3)
    idle = [await tun.ws() for _ in range(40)]
    refused = await tun.ws()
    assert await tun.closed_with(refused) == (1013, "too_many_connections")
    idle[0]._writer.transport.write(b"\x81\xfe\x20\x00mask" + b"x" * 4000)
    outcomes = await asyncio.gather(*(tun.closed_with(ws) for ws in idle))
    assert set(outcomes) == {(1002, "expected_attach")}
    await tun.wait_for(lambda: tun.server.runtime.hub.conns == 0)
    client, server = await tun.pair()
    await client.send_bytes(b"still serving")
    assert await server.receive_bytes() == b"still serving"


async def test_unpaired_channels_are_bounded(start_tunnel: StartTunnel) -> None:
    cap = 1 << 20
    tun = await start_tunnel(max_total_pending_bytes=cap)
    hub = tun.server.runtime.hub
    waiting = [await tun.attach(f"lonely-{i}", 2) for i in range(8)]
    for ws in waiting:
        await ws.send_bytes(b"p" * 200_000)
    await tun.wait_for(lambda: hub.total_pending > 0)
    closed = []
    for ws in waiting:
        try:
            closed.append(await tun.closed_with(ws, timeout=0.3))
        except TimeoutError:
            continue
    assert (1008, "pending_overflow") in closed
    assert hub.total_pending <= cap
    assert len(hub.channels) == 8 - len(closed)
