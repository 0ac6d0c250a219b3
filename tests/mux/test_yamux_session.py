"""Yamux sessions end to end over in-memory channels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowersec_endpoint.yamux import (
    Reason,
    Role,
    StreamState,
    YamuxConfig,
    YamuxError,
    YamuxSession,
)

Pair = tuple[YamuxSession, YamuxSession]


async def test_open_accept_echo(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    assert stream.id == 1
    stream.write(b"hello")
    await stream.drain()
    accepted = await server.accept_stream()
    assert accepted.id == 1
    assert await accepted.readexactly(5) == b"hello"
    accepted.write(b"world")
    assert await stream.readexactly(5) == b"world"
    second = await server.open_stream()
    assert second.id == 2
    assert (await client.accept_stream()).id == 2


async def test_half_close_both_directions(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"request")
    await stream.close()
    await stream.close()
    with pytest.raises(YamuxError) as info:
        stream.write(b"more")
    assert info.value.reason is Reason.STREAM_CLOSED
    peer = await server.accept_stream()
    assert b"".join([chunk async for chunk in peer]) == b"request"
    assert stream.state is StreamState.LOCAL_CLOSE
    peer.write(b"reply")
    await peer.close()
    assert await stream.read() == b"reply"
    assert await stream.read() == b""
    assert stream.state is StreamState.CLOSED
    assert peer.state is StreamState.CLOSED
    await asyncio.sleep(0)
    assert client.stream_count == 0
    assert server.stream_count == 0


async def test_reset_fails_peer_reads_and_writes(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"x")
    peer = await server.accept_stream()
    assert await peer.read() == b"x"
    reader = asyncio.create_task(peer.read())
    await asyncio.sleep(0.01)
    stream.reset()
    with pytest.raises(YamuxError) as info:
        await reader
    assert info.value.reason is Reason.STREAM_RESET
    with pytest.raises(YamuxError):
        peer.write(b"y")
    with pytest.raises(YamuxError):
        await stream.read()
    assert peer.state is StreamState.RESET


async def test_readexactly_incomplete(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"abc")
    await stream.close()
    peer = await server.accept_stream()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await peer.readexactly(10)
    assert info.value.partial == b"abc"


async def test_many_streams(make_pair: Any) -> None:
    client, server = await make_pair(seed=7)

    async def echo_server() -> None:
        async def echo(stream: Any) -> None:
            async for chunk in stream:
                stream.write(chunk)
                await stream.drain()
            await stream.close()

        async with asyncio.TaskGroup() as group:
            for _ in range(200):
                group.create_task(echo(await server.accept_stream()))

    async def one(i: int) -> None:
        stream = await client.open_stream()
        payload = bytes([i % 256]) * (1000 + i * 37)
        stream.write(payload)
        await stream.close()
        got = b"".join([chunk async for chunk in stream])
        assert got == payload

    serving = asyncio.create_task(echo_server())
    await asyncio.gather(*(one(i) for i in range(200)))
    await serving
    await asyncio.sleep(0.01)
    assert client.stream_count == 0
    assert server.stream_count == 0
    assert not client._streams
    assert not server._streams


async def test_flow_control_bulk_keeps_other_stream_responsive(
    make_pair: Any,
) -> None:
    client, server = await make_pair(limit=256 * 1024)
    bulk = await client.open_stream()
    bulk.write(b"B")
    chat = await client.open_stream()
    chat.write(b"C")
    bulk_peer = await server.accept_stream()
    chat_peer = await server.accept_stream()
    assert await bulk_peer.readexactly(1) == b"B"
    assert await chat_peer.readexactly(1) == b"C"
    total = 10 * 1024 * 1024
    block = bytes(range(256)) * 256

    async def send_bulk() -> None:
        for _ in range(total // len(block)):
            bulk.write(block)
            await bulk.drain()
        await bulk.close()

    async def receive_bulk() -> int:
        count = 0
        async for chunk in bulk_peer:
            count += len(chunk)
            await asyncio.sleep(0)
        return count

    sender = asyncio.create_task(send_bulk())
    await asyncio.sleep(0.01)
    assert bulk._core.pending_send > 0
    assert bulk._core.send_window < 256 * 1024
    for i in range(20):
        chat.write(b"%d;" % i)
        assert await chat_peer.readexactly(len(b"%d;" % i)) == b"%d;" % i
    receiver = asyncio.create_task(receive_bulk())
    for _ in range(20):
        chat_peer.write(b"ping")
        assert await chat.readexactly(4) == b"ping"
    assert await receiver == total
    await sender


async def test_unread_data_blocks_writer_at_window(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"\0" * (400 * 1024))
    drained = asyncio.create_task(stream.drain())
    await asyncio.sleep(0.05)
    assert not drained.done()
    assert stream._core.send_window == 0
    peer = await server.accept_stream()
    assert peer._core.readable == 256 * 1024
    await peer.readexactly(200 * 1024)
    await asyncio.wait_for(drained, 5)
    await peer.readexactly(200 * 1024)


async def test_ping_rtt(pair: Pair) -> None:
    client, server = pair
    rtt = await client.ping(timeout=5)
    assert rtt >= 0
    assert await server.ping(timeout=5) >= 0


async def test_accept_backlog_overflow_resets(make_pair: Any) -> None:
    client, server = await make_pair(server_config=YamuxConfig(accept_backlog=2))
    streams = [await client.open_stream() for _ in range(4)]
    for stream in streams:
        stream.write(b"hi")
    with pytest.raises(YamuxError) as info:
        await asyncio.wait_for(streams[3].read(), 5)
    assert info.value.reason is Reason.STREAM_RESET
    with pytest.raises(YamuxError):
        await asyncio.wait_for(streams[2].read(), 5)
    first = await server.accept_stream()
    assert await first.readexactly(2) == b"hi"
    await server.accept_stream()
    late = await client.open_stream()
    late.write(b"ok")
    assert await (await server.accept_stream()).readexactly(2) == b"ok"


async def test_open_timeout_closes_session(channels: Any) -> None:
    a, b = channels()
    client = YamuxSession(a, Role.CLIENT, YamuxConfig(open_timeout=0.05))
    await client.open_stream()
    await asyncio.wait_for(client.wait_closed(), 5)
    assert client.error is not None
    assert client.error.reason is Reason.OPEN_TIMEOUT
    await b.close()


async def test_go_away_normal_stops_new_opens_only(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    peer = await server.accept_stream()
    server.go_away()
    for _ in range(100):
        if client._core.remote_go_away:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(YamuxError) as info:
        await client.open_stream()
    assert info.value.reason is Reason.REMOTE_GO_AWAY
    stream.write(b"still")
    assert await peer.readexactly(5) == b"still"
    refused = await server.open_stream()
    refused.write(b"x")
    assert await server.ping(timeout=5) >= 0


async def test_session_close_fails_streams_and_accept(pair: Pair) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"x")
    peer = await server.accept_stream()
    assert await peer.read() == b"x"
    waiting = asyncio.create_task(server.accept_stream())
    reading = asyncio.create_task(peer.read())
    await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(YamuxError) as info:
        await waiting
    assert info.value.reason is Reason.SESSION_CLOSED
    with pytest.raises(YamuxError):
        await reading
    with pytest.raises(YamuxError):
        await client.open_stream()
    await asyncio.wait_for(server.wait_closed(), 5)


async def test_each_frame_is_one_write(channels: Any) -> None:
    a, b = channels(seed=3)
    a.record = True
    client = YamuxSession(a, Role.CLIENT)
    server = YamuxSession(b, Role.SERVER)
    stream = await client.open_stream()
    stream.write(b"z" * 300_000)
    await stream.close()
    peer = await server.accept_stream()
    assert len(b"".join([c async for c in peer])) == 300_000
    await client.ping(timeout=5)
    for write in a.writes:
        length = int.from_bytes(write[8:12], "big")
        body = len(write) - 12
        assert body == (length if write[1] == 0 else 0)
    await client.close()
    await server.close()


async def test_half_close_timeout_resets(make_pair: Any) -> None:
    client, server = await make_pair(YamuxConfig(close_timeout=0.05))
    stream = await client.open_stream()
    stream.write(b"bye")
    await stream.close()
    peer = await server.accept_stream()
    assert await peer.readexactly(3) == b"bye"
    assert await peer.read() == b""
    for _ in range(200):
        if stream.state is StreamState.RESET:
            break
        await asyncio.sleep(0.01)
    assert stream.state is StreamState.RESET
    await server.ping(timeout=5)
    with pytest.raises(YamuxError) as info:
        peer.write(b"late")
    assert info.value.reason is Reason.STREAM_RESET


async def test_write_timeout_fails_session(channels: Any) -> None:
    a, b = channels(limit=1)
    client = YamuxSession(a, Role.CLIENT, YamuxConfig(write_timeout=0.05))
    stream = await client.open_stream()
    stream.write(b"blocked")
    await asyncio.wait_for(client.wait_closed(), 5)
    assert client.error is not None
    assert client.error.reason is Reason.WRITE_TIMEOUT
    with pytest.raises(YamuxError):
        await stream.drain()
    await b.close()


async def test_peer_eof_ends_session(channels: Any) -> None:
    a, b = channels()
    client = YamuxSession(a, Role.CLIENT)
    stream = await client.open_stream()
    await b.close()
    await asyncio.wait_for(client.wait_closed(), 5)
    assert client.error is not None
    assert client.error.reason is Reason.SESSION_CLOSED
    with pytest.raises(YamuxError):
        await stream.read()


async def test_protocol_error_flushes_go_away_then_closes(channels: Any) -> None:
    raw, end = channels()
    server = YamuxSession(end, Role.SERVER)
    await raw.write(bytes.fromhex("000100010000000100000000"))
    await raw.write(bytes.fromhex("000100010000000100000000"))
    received = b""
    while chunk := await asyncio.wait_for(raw.read(), 5):
        received += chunk
    assert received == bytes.fromhex(
        "000100020000000100000000" + "000300000000000000000001"
    )
    await server.wait_closed()
    assert server.error is not None
    assert server.error.reason is Reason.PROTOCOL_ERROR


async def test_go_style_split_writes_and_ping(channels: Any) -> None:
    raw, end = channels()
    server = YamuxSession(end, Role.SERVER)
    await raw.write(bytes.fromhex("000100010000000300000000"))
    await raw.write(bytes.fromhex("000000000000000300000005"))
    await raw.write(b"hello")
    await raw.write(bytes.fromhex("000200010000000000000007"))
    stream = await server.accept_stream()
    assert stream.id == 3
    assert await stream.readexactly(5) == b"hello"
    expected = bytes.fromhex("000100020000000300000000" + "000200020000000000000007")
    received = b""
    while len(received) < len(expected):
        received += await asyncio.wait_for(raw.read(), 5)
    assert received == expected
    await server.close()


async def test_reset_before_accept_is_skipped(make_pair: Any) -> None:
    client, server = await make_pair(server_config=YamuxConfig(accept_backlog=1))
    for _ in range(5):
        doomed = await client.open_stream()
        doomed.reset()
    await client.ping(timeout=5)
    await server.ping(timeout=5)
    assert not server._accept_queue
    kept = await client.open_stream()
    kept.write(b"k")
    accepted = await asyncio.wait_for(server.accept_stream(), 5)
    assert accepted.id == kept.id


async def test_normal_close_sends_no_go_away_and_no_ping(channels: Any) -> None:
    a, b = channels()
    a.record = True
    client = YamuxSession(a, Role.CLIENT)
    server = YamuxSession(b, Role.SERVER)
    stream = await client.open_stream()
    stream.write(b"x")
    peer = await server.accept_stream()
    assert await peer.read() == b"x"
    await asyncio.sleep(0.05)
    await client.close()
    await asyncio.wait_for(server.wait_closed(), 5)
    assert a.writes
    assert all(write[1] in (0, 1) for write in a.writes)


async def test_opt_in_keepalive_pings_and_detects_a_dead_peer(channels: Any) -> None:
    a, b = channels()
    a.record = True
    config = YamuxConfig(keepalive_interval=0.02, write_timeout=5.0)
    client = YamuxSession(a, Role.CLIENT, config)
    server = YamuxSession(b, Role.SERVER)
    async with asyncio.timeout(5):
        while sum(w[1] == 2 and w[3] == 1 for w in a.writes) < 3:
            await asyncio.sleep(0.01)
    assert not client.closed
    await client.close()
    await server.close()

    mute_a, mute_b = channels()
    quick = YamuxConfig(keepalive_interval=0.02, write_timeout=0.1)
    mute = YamuxSession(mute_a, Role.CLIENT, quick)
    await asyncio.wait_for(mute.wait_closed(), 5)
    assert mute.error is not None
    assert mute.error.reason is Reason.KEEPALIVE_TIMEOUT
    with pytest.raises(ValueError):
        YamuxSession(mute_b, Role.SERVER, YamuxConfig(keepalive_interval=0))
