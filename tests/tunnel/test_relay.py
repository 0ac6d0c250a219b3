"""Pairing and the splice: order, boundaries, buffering, teardown, timers."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel


def record(payload: bytes, seq: int = 0) -> bytes:
    """An FSEC-looking record (header only matters to the tunnel)."""
    return (
        b"FSEC\x01\x00"
        + seq.to_bytes(8, "big")
        + len(payload).to_bytes(4, "big")
        + payload
    )


async def test_client_first_pairing_relays_both_ways(tun: Harness) -> None:
    client, server = await tun.pair()
    await client.send_bytes(b"hello")
    assert (await server.receive_bytes()) == b"hello"
    await server.send_bytes(b"world")
    assert (await client.receive_bytes()) == b"world"


async def test_server_first_with_buffered_messages_in_order(tun: Harness) -> None:
    server = await tun.attach("chan-buf", 2)
    sent = [os.urandom(n) for n in (1, 100, 5000, 0, 70000)]
    for data in sent:
        await server.send_bytes(data)
    await tun.wait_for(lambda: len(tun.server.runtime.hub.channels) == 1)
    ch = tun.server.runtime.hub.channels["chan-buf"]
    await tun.wait_for(
        lambda: ch.slots[2] is not None and len(ch.slots[2].pending) == 5
    )
    client = await tun.attach("chan-buf", 1)
    await client.send_bytes(b"after")
    got = [await client.receive_bytes() for _ in sent]
    assert got == sent
    assert await server.receive_bytes() == b"after"
    assert tun.server.runtime.hub.total_pending == 0


async def test_messages_right_behind_the_attach_are_kept(tun: Harness) -> None:
    server = await tun.attach("chan-pipe", 2)
    client = await tun.ws()
    await client.send_str(tun.attach_message("chan-pipe", 1, tun.token("chan-pipe", 1)))
    for i in range(20):
        await client.send_bytes(bytes([i]) * 10)
    got = [await server.receive_bytes() for _ in range(20)]
    assert got == [bytes([i]) * 10 for i in range(20)]


async def test_large_records_up_to_one_mebibyte(tun: Harness) -> None:
    client, server = await tun.pair()
    big = os.urandom(1048576)
    await client.send_bytes(big)
    assert await server.receive_bytes() == big


async def test_oversize_record_after_admission(tun: Harness) -> None:
    client, server = await tun.pair()
    await client.send_bytes(b"x" * 1048577)
    assert (await tun.closed_with(client))[0] == 1009
    assert await tun.closed_with(server) == (1009, "record_too_large")


async def test_peer_close_ends_the_other_side_with_a_reason(tun: Harness) -> None:
    client, server = await tun.pair()
    await client.send_bytes(b"last words")
    await client.close()
    assert await server.receive_bytes() == b"last words"
    assert await tun.closed_with(server) == (1001, "peer_closed")
    await tun.wait_for(lambda: not tun.server.runtime.hub.channels)
    await tun.wait_for(lambda: tun.server.runtime.hub.conns == 0)


async def test_text_after_admission_ends_the_channel(tun: Harness) -> None:
    client, server = await tun.pair()
    await client.send_str("nope")
    assert await tun.closed_with(client) == (1003, "non_binary_frame")
    assert await tun.closed_with(server) == (1003, "non_binary_frame")


async def test_pending_overflow_closes_the_waiting_side(tun: Harness) -> None:
    server = await tun.attach("chan-of", 2)
    await server.send_bytes(b"x" * 262144)
    await server.send_bytes(b"y")
    assert await tun.closed_with(server) == (1008, "pending_overflow")
    assert tun.server.runtime.hub.total_pending == 0


async def test_global_pending_cap(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(max_total_pending_bytes=1000)
    first = await tun.attach("chan-g1", 2)
    await first.send_bytes(b"x" * 600)
    second = await tun.attach("chan-g2", 2)
    await tun.wait_for(lambda: tun.server.runtime.hub.total_pending == 600)
    await second.send_bytes(b"y" * 600)
    assert await tun.closed_with(second) == (1008, "pending_overflow")
    assert not first.closed
    await first.close()


async def test_replacement_resets_both_sides(tun: Harness) -> None:
    client, server = await tun.pair("chan-rep")
    newcomer = await tun.attach("chan-rep", 1)
    assert await tun.closed_with(client) == (1001, "replaced")
    assert await tun.closed_with(server) == (1001, "replaced")
    fresh = await tun.attach("chan-rep", 2)
    await tun.wait_for(lambda: tun.is_paired("chan-rep"))
    await newcomer.send_bytes(b"again")
    assert await fresh.receive_bytes() == b"again"


async def test_idle_timeout(tun: Harness) -> None:
    client, server = await tun.pair(idle=1)
    await asyncio.sleep(0.6)
    await client.send_bytes(b"keep")
    assert await server.receive_bytes() == b"keep"
    started = time.monotonic()
    assert await tun.closed_with(server) == (1001, "idle_timeout")
    assert await tun.closed_with(client) == (1001, "idle_timeout")
    assert time.monotonic() - started >= 0.8


async def test_init_window_expiry_without_records(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(skew_seconds=0)
    now = int(time.time())
    client, server = await tun.pair(init_exp=now + 1, exp=now + 1)
    await client.send_bytes(b"handshake, not a record")
    assert await server.receive_bytes() == b"handshake, not a record"
    assert await tun.closed_with(client, timeout=4) == (1008, "init_expired")
    assert await tun.closed_with(server) == (1008, "init_expired")


async def test_records_exempt_from_init_window(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(skew_seconds=0)
    now = int(time.time())
    client, server = await tun.pair(init_exp=now + 1, exp=now + 1)
    await client.send_bytes(record(b"ping"))
    assert await server.receive_bytes() == record(b"ping")
    await asyncio.sleep(2.2)
    await server.send_bytes(b"still here")
    assert await client.receive_bytes() == b"still here"


async def test_other_channels_keep_flowing(tun: Harness) -> None:
    good_client, good_server = await tun.pair()
    bad_client, bad_server = await tun.pair()
    await bad_client.send_str("text is not allowed")
    for i in range(50):
        await good_client.send_bytes(i.to_bytes(2, "big"))
    assert await tun.closed_with(bad_server) == (1003, "non_binary_frame")
    got = [await good_server.receive_bytes() for _ in range(50)]
    assert got == [i.to_bytes(2, "big") for i in range(50)]


async def test_backpressure_stops_reading_the_sender(tun: Harness) -> None:
    client, server = await tun.pair()
    payload = b"z" * 65536
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await client.send_bytes(payload)
            sent += 1

    task = asyncio.create_task(flood())
    await asyncio.sleep(1.0)
    stalled_at = sent
    await asyncio.sleep(0.3)
    assert sent == stalled_at, "sender was not slowed down"
    task.cancel()
    received = 0
    while received < stalled_at:
        await server.receive_bytes()
        received += 1
    assert received == stalled_at


async def test_write_timeout_ends_a_stuck_channel(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(write_timeout=0.3)
    client, server = await tun.pair()
    server_transport = server._response.connection.transport  # type: ignore[union-attr]
    assert server_transport is not None
    server_transport.pause_reading()
    payload = b"w" * 65536

    async def flood() -> None:
        while True:
            await client.send_bytes(payload)

    task = asyncio.create_task(flood())
    code, reason = await tun.closed_with(client, timeout=10)
    task.cancel()
    assert (code, reason) == (1011, "write_error")


async def test_healthz_and_404(tun: Harness) -> None:
    async with tun.session.get(tun.url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.read() == b"ok"
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    for path in ("/", "/ws/", "/metrics", "/healthz/x"):
        async with tun.session.get(tun.url + path) as resp:
            assert resp.status == 404
            assert await resp.read() == b"404 page not found\n"


async def test_ping_answered_and_no_tunnel_pings(tun: Harness) -> None:
    ws = await tun.session.ws_connect(
        tun.ws_url, headers={"Origin": "https://app.example.com"}, autoping=False
    )
    await ws.ping(b"abc")
    msg = await ws.receive(timeout=2)
    assert msg.type is aiohttp.WSMsgType.PONG
    assert msg.data == b"abc"
    await ws.close()
