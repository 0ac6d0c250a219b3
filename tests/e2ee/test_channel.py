"""Client ↔ server over the in-memory transport: data, rekey, keepalive, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from flowersec_endpoint.e2ee import peek_init
from flowersec_endpoint.e2ee.channel import (
    SecureChannel,
    client_handshake,
    default_keepalive_interval,
    server_handshake,
)
from flowersec_endpoint.e2ee.constants import RecordFlags
from flowersec_endpoint.e2ee.errors import RecordFailure, SecureChannelError
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.transport import MemoryTransport, TransportClosed, memory_pair

PairUp = Callable[..., Any]


class Tap:
    """A transport wrapper that lets a test rewrite outgoing frames."""

    def __init__(self, inner: MemoryTransport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []
        self.mangle: Callable[[bytes], list[bytes]] | None = None

    async def send(self, data: bytes | bytearray) -> None:
        data = bytes(data)
        self.sent.append(data)
        frames = self.mangle(data) if self.mangle else [data]
        for frame in frames:
            await self.inner.send(frame)

    async def recv(self) -> bytes:
        return await self.inner.recv()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.inner.close(code, reason)


async def _established(
    pair_up: PairUp, suite: int = 1, **kw: Any
) -> tuple[SecureChannel, SecureChannel, Tap, Tap]:
    a, b = memory_pair()
    ta, tb = Tap(a), Tap(b)
    client, server = await pair_up(ta, tb, suite=suite, **kw)
    assert isinstance(client, SecureChannel), client
    assert isinstance(server, SecureChannel), server
    return client, server, ta, tb


@pytest.mark.parametrize("suite", [1, 2])
async def test_data_both_ways_and_rekey(pair_up: PairUp, suite: int) -> None:
    client, server, _, _ = await _established(pair_up, suite)
    await client.write(b"hello")
    assert await server.read() == b"hello"
    await server.write(b"world")
    assert await client.read() == b"world"
    for _ in range(2):
        await client.rekey()
        await server.rekey()
        await client.write(b"after client rekey")
        await server.write(b"after server rekey")
        assert await server.read() == b"after client rekey"
        assert await client.read() == b"after server rekey"
    await client.ping()
    await client.write(b"x")
    assert await server.read() == b"x"
    assert client.records.send_seq == server.records.recv_seq
    await client.close()
    assert await server.read() == b""
    assert await server.wait_closed() is None
    assert await client.wait_closed() is None


async def test_chunking_at_record_limit(pair_up: PairUp) -> None:
    limit = 1024
    client, server, tap, _ = await _established(
        pair_up,
        client_kwargs={"max_record_bytes": limit},
        server_kwargs={"max_record_bytes": limit},
    )
    data = bytes(range(256)) * 20
    sent_before = len(tap.sent)
    await client.write(data)
    frames = tap.sent[sent_before:]
    assert all(len(f) <= limit for f in frames)
    assert len(frames) == -(-len(data) // (limit - 34))
    got = b""
    while len(got) < len(data):
        got += await server.read()
    assert got == data
    await client.write(b"")
    assert len(tap.sent) == sent_before + len(frames)


async def test_concurrent_writes_do_not_interleave(pair_up: PairUp) -> None:
    limit = 256
    client, server, _, _ = await _established(
        pair_up,
        client_kwargs={"max_record_bytes": limit},
        server_kwargs={"max_record_bytes": limit},
    )
    blobs = [bytes([i]) * 1000 for i in range(5)]

    async def reader() -> bytes:
        got = b""
        while len(got) < 5000:
            got += await server.read()
        return got

    task = asyncio.ensure_future(reader())
    await asyncio.gather(*(client.write(b) for b in blobs))
    got = await task
    runs = [got[i : i + 1000] for i in range(0, 5000, 1000)]
    assert sorted(runs) == sorted(blobs)


async def test_keepalive_pings_flow(pair_up: PairUp) -> None:
    client, server, tap, _ = await _established(
        pair_up, client_kwargs={"keepalive_interval": 0.02}
    )
    read = asyncio.ensure_future(server.read())
    while len(tap.sent) < 2 + 3:
        await asyncio.sleep(0.01)
    assert not read.done()
    assert client.records.send_seq >= 4
    await client.write(b"still here")
    assert await read == b"still here"
    await client.close()


def _flip_last(frame: bytes) -> list[bytes]:
    return [frame[:-1] + bytes([frame[-1] ^ 1])]


async def _assert_both_fail(
    sender: SecureChannel, receiver: SecureChannel, reason: RecordFailure
) -> None:
    with pytest.raises(SecureChannelError) as info:
        await receiver.read()
    assert info.value.stage is Stage.SECURE
    assert info.value.code is Code.NOT_CONNECTED
    assert info.value.reason is reason
    assert await receiver.wait_closed() is info.value
    # The peer sees the transport closed abnormally, and ends too.
    with pytest.raises(SecureChannelError) as peer:
        await sender.read()
    assert peer.value.reason is RecordFailure.TRANSPORT_CLOSED
    assert isinstance(peer.value.cause, TransportClosed)
    assert peer.value.cause.code == 1002
    with pytest.raises(SecureChannelError):
        await sender.write(b"more")
    with pytest.raises(FlowersecError) as ping:
        await receiver.ping()
    assert ping.value.code is Code.PING_FAILED


async def test_tampered_record(pair_up: PairUp) -> None:
    client, server, tap, _ = await _established(pair_up)
    tap.mangle = _flip_last
    await client.write(b"secret")
    await _assert_both_fail(client, server, RecordFailure.DECRYPT_FAILED)


async def test_replayed_record(pair_up: PairUp) -> None:
    client, server, tap, _ = await _established(pair_up)
    tap.mangle = lambda f: [f, f]
    await client.write(b"once")
    assert await server.read() == b"once"
    await _assert_both_fail(client, server, RecordFailure.BAD_SEQ)


async def test_reordered_records(pair_up: PairUp) -> None:
    client, server, tap, _ = await _established(pair_up)
    held: list[bytes] = []

    def swap(frame: bytes) -> list[bytes]:
        if not held:
            held.append(frame)
            return []
        return [frame, held.pop()]

    tap.mangle = swap
    await client.write(b"first")
    await client.write(b"second")
    await _assert_both_fail(client, server, RecordFailure.BAD_SEQ)


@pytest.mark.parametrize("cut", [1, 16, 30])
async def test_truncated_record(pair_up: PairUp, cut: int) -> None:
    client, server, tap, _ = await _established(pair_up)
    tap.mangle = lambda f: [f[:-cut]]
    await client.write(b"truncated payload")
    await _assert_both_fail(client, server, RecordFailure.INVALID_LENGTH)


async def test_oversize_record(pair_up: PairUp) -> None:
    client, server, _, _ = await _established(
        pair_up, server_kwargs={"max_record_bytes": 100}
    )
    await client.write(b"x" * 200)
    await _assert_both_fail(client, server, RecordFailure.RECORD_TOO_LARGE)


async def test_wrong_psk(pair_up: PairUp) -> None:
    a, b = memory_pair()
    client, server = await pair_up(a, b, client_psk=bytes(32))
    assert isinstance(server, FlowersecError)
    assert (server.stage, server.code) == (Stage.HANDSHAKE, Code.AUTH_TAG_MISMATCH)
    assert isinstance(client, FlowersecError)
    assert (client.stage, client.code) == (Stage.HANDSHAKE, Code.HANDSHAKE_FAILED)
    assert isinstance(client.cause, TransportClosed)


async def test_suite_mismatch(pair_up: PairUp) -> None:
    a, b = memory_pair()
    client, server = await pair_up(a, b, client_kwargs={"suite": 2})
    assert isinstance(server, FlowersecError)
    assert server.code is Code.HANDSHAKE_FAILED
    assert isinstance(client, FlowersecError)
    assert client.code is Code.HANDSHAKE_FAILED


async def test_clock_skew_checks(pair_up: PairUp) -> None:
    a, b = memory_pair()
    _, server = await pair_up(a, b, client_kwargs={"clock": lambda: 1_700_000_000.0})
    assert isinstance(server, FlowersecError)
    assert server.code is Code.TIMESTAMP_OUT_OF_SKEW
    a, b = memory_pair()
    _, server = await pair_up(
        a,
        b,
        server_kwargs={"init_exp": 1_700_000_000, "clock": lambda: 1_700_000_040.0},
        client_kwargs={"clock": lambda: 1_700_000_040.0},
    )
    assert isinstance(server, FlowersecError)
    assert server.code is Code.TIMESTAMP_AFTER_INIT_EXP


async def test_handshake_timeout_both_sides() -> None:
    a, b = memory_pair()
    with pytest.raises(FlowersecError) as info:
        await client_handshake(
            a, psk=bytes(32), channel_id="c", handshake_timeout=0.05, path=Path.TUNNEL
        )
    assert (info.value.path, info.value.stage, info.value.code) == (
        Path.TUNNEL,
        Stage.HANDSHAKE,
        Code.TIMEOUT,
    )
    with pytest.raises(TransportClosed):
        await b.recv()
        await b.recv()


async def test_tunnel_close_reason_surfaces() -> None:
    a, b = memory_pair()
    task = asyncio.ensure_future(
        client_handshake(a, psk=bytes(32), channel_id="c", path=Path.TUNNEL)
    )
    await b.recv()
    await b.close(1008, "invalid_token")
    with pytest.raises(FlowersecError) as info:
        await task
    assert info.value.code is Code.HANDSHAKE_FAILED
    assert isinstance(info.value.cause, TransportClosed)
    assert info.value.cause.reason == "invalid_token"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"psk": bytes(31)}, Code.INVALID_PSK),
        ({"psk": "not*b64"}, Code.INVALID_PSK),
        ({"suite": 3}, Code.INVALID_SUITE),
        ({"channel_id": ""}, Code.MISSING_CHANNEL_ID),
        ({"channel_id": "\ud800"}, Code.INVALID_INPUT),
        ({"channel_id": "x" * 65536}, Code.INVALID_INPUT),
        ({"handshake_timeout": -1}, Code.INVALID_OPTION),
        ({"client_features": 2**32}, Code.INVALID_OPTION),
        ({"max_record_bytes": 34}, Code.INVALID_OPTION),
        ({"max_handshake_payload": -1}, Code.INVALID_OPTION),
    ],
)
async def test_client_validation_before_io(kwargs: dict[str, Any], code: Code) -> None:
    a, b = memory_pair()
    args: dict[str, Any] = {"psk": bytes(32), "channel_id": "c"} | kwargs
    with pytest.raises(FlowersecError) as info:
        await client_handshake(a, **args)
    assert (info.value.stage, info.value.code) == (Stage.VALIDATE, code)
    b._inbox.append(b"probe")
    assert len(b._inbox) == 1


async def test_server_handshake_timeout() -> None:
    _, b = memory_pair()
    with pytest.raises(FlowersecError) as info:
        await server_handshake(
            b, psk=bytes(32), channel_id="c", init_exp=1, handshake_timeout=0.05
        )
    assert (info.value.stage, info.value.code) == (Stage.HANDSHAKE, Code.TIMEOUT)


async def test_cancelled_handshake_closes_transport() -> None:
    a, b = memory_pair()
    task = asyncio.ensure_future(client_handshake(a, psk=bytes(32), channel_id="c"))
    await b.recv()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TransportClosed) as info:
        await b.recv()
    assert info.value.code == 1000


async def test_keepalive_failure_ends_channel(pair_up: PairUp) -> None:
    client, _, _, server_tap = await _established(
        pair_up, client_kwargs={"keepalive_interval": 0.01}
    )
    await server_tap.inner.close(1011, "")
    err = await asyncio.wait_for(client.wait_closed(), 5)
    assert isinstance(err, SecureChannelError)
    assert (err.stage, err.code) == (Stage.SECURE, Code.PING_FAILED)
    with pytest.raises(FlowersecError) as info:
        await client.ping()
    assert info.value.code is Code.PING_FAILED


async def test_local_close_ends_pending_read(pair_up: PairUp) -> None:
    client, server, _, _ = await _established(pair_up)
    pending = asyncio.ensure_future(client.read())
    await asyncio.sleep(0)
    await client.close()
    assert await pending == b""
    assert await client.read() == b""
    with pytest.raises(SecureChannelError) as info:
        await client.write(b"late")
    assert info.value.reason is RecordFailure.CLOSED
    await client.close()
    assert await server.read() == b""


async def test_empty_app_record_is_skipped(pair_up: PairUp) -> None:
    client, server, tap, _ = await _established(pair_up)
    await tap.send(client.records.seal(RecordFlags.APP, b""))
    await client.write(b"after empty")
    assert await server.read() == b"after empty"


async def test_memory_pair_delivers_before_close() -> None:
    a, b = memory_pair(max_queued=2)
    await a.send(b"1")
    await a.send(b"2")
    blocked = asyncio.ensure_future(a.send(b"3"))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert await b.recv() == b"1"
    await blocked
    await a.close(4000, "bye")
    assert [await b.recv(), await b.recv()] == [b"2", b"3"]
    with pytest.raises(TransportClosed) as info:
        await b.recv()
    assert (info.value.code, info.value.reason) == (4000, "bye")
    with pytest.raises(TransportClosed):
        await b.send(b"x")


@pytest.mark.parametrize(
    ("idle", "interval"), [(60, 30.0), (1, 0.5), (0.5, 0.5), (0, 0.0), (-5, 0.0)]
)
def test_default_keepalive_interval(idle: float, interval: float) -> None:
    assert default_keepalive_interval(idle) == interval


async def test_resolving_server_with_first_message() -> None:
    """A server that reads the init itself, picks the PSK, then hands it on."""
    a, b = memory_pair()
    client_task = asyncio.ensure_future(
        client_handshake(a, psk=bytes(range(32)), channel_id="picked", suite=2)
    )
    first = await b.recv()
    init = peek_init(first)
    server = await server_handshake(
        b,
        psk=bytes(range(32)),
        channel_id=init.channel_id,
        suite=init.suite,
        init_exp=4_000_000_000,
        first_message=first,
    )
    client = await client_task
    await server.write(b"resolved")
    assert await client.read() == b"resolved"


async def test_write_accepts_buffers(pair_up: PairUp) -> None:
    client, server, _, _ = await _established(pair_up)
    await client.write(bytearray(b"ab"))
    await client.write(memoryview(b"xcdx")[1:3])
    assert await server.read() == b"ab"
    assert await server.read() == b"cd"


@pytest.mark.parametrize("action", ["write", "ping", "rekey"])
async def test_spent_sequence_space_ends_the_channel(
    pair_up: PairUp, action: str
) -> None:
    """e2ee.md §15.10: the last seq is 2**64 - 1; the channel closes, never wraps."""
    client, server, _, _ = await _established(pair_up)
    last = 2**64 - 1
    client.records.send_seq = server.records.recv_seq = last
    await client.write(b"last")
    assert await server.read() == b"last"
    code = Code.PING_FAILED if action == "ping" else Code.NOT_CONNECTED
    with pytest.raises(SecureChannelError) as info:
        if action == "write":
            await client.write(b"one too many")
        elif action == "ping":
            await client.ping()
        else:
            await client.rekey()
    assert (info.value.code, info.value.reason) == (code, RecordFailure.SEQ_EXHAUSTED)
    assert await client.wait_closed() is info.value
    with pytest.raises(SecureChannelError) as peer:
        await server.read()
    assert peer.value.reason is RecordFailure.TRANSPORT_CLOSED
