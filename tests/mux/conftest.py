"""In-memory byte channels and session pairs shared by the mux tests."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from flowersec_endpoint.yamux import Role, YamuxConfig, YamuxSession, YamuxStream


class Pipe:
    """One direction: a bounded queue of chunks (writers wait when full)."""

    def __init__(self, limit: int) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.limit = limit
        self.closed = False
        self.changed = asyncio.Event()

    async def wait(self) -> None:
        self.changed.clear()
        await self.changed.wait()


class MemoryChannel:
    """A ByteChannel end; with ``rng`` it re-splits chunks at random points.

    The random variant merges every queued chunk and returns a random-length
    prefix, so reads both split frames and merge several into one chunk.
    """

    def __init__(
        self, inbound: Pipe, outbound: Pipe, rng: random.Random | None = None
    ) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self.rng = rng
        self.writes: list[bytes] = []
        self.record = False

    async def read(self) -> bytes:
        pipe = self.inbound
        while not pipe.chunks:
            if pipe.closed:
                return b""
            await pipe.wait()
        if self.rng is None:
            chunk = pipe.chunks.popleft()
        else:
            merged = b"".join(pipe.chunks)
            pipe.chunks.clear()
            cut = self.rng.randint(1, len(merged))
            chunk, rest = merged[:cut], merged[cut:]
            if rest:
                pipe.chunks.append(rest)
        pipe.size -= len(chunk)
        pipe.changed.set()
        return chunk

    async def write(self, data: bytes) -> None:
        pipe = self.outbound
        while pipe.size >= pipe.limit and not pipe.closed:
            await pipe.wait()
        if pipe.closed:
            raise ConnectionResetError("channel closed")
        if self.record:
            self.writes.append(data)
        pipe.chunks.append(data)
        pipe.size += len(data)
        pipe.changed.set()

    async def close(self) -> None:
        for pipe in (self.inbound, self.outbound):
            pipe.closed = True
            pipe.changed.set()


def channel_pair(
    limit: int = 1 << 20, seed: int | None = None
) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected channel ends; ``seed`` enables random re-chunking."""
    a_to_b, b_to_a = Pipe(limit), Pipe(limit)
    rng_a = random.Random(seed) if seed is not None else None
    rng_b = random.Random(seed + 1) if seed is not None else None
    return MemoryChannel(b_to_a, a_to_b, rng_a), MemoryChannel(a_to_b, b_to_a, rng_b)


SessionPair = tuple[YamuxSession, YamuxSession]
PairFactory = Callable[..., Awaitable[SessionPair]]


@pytest.fixture
async def make_pair() -> AsyncIterator[PairFactory]:
    """Build client/server sessions over memory channels; closed at teardown."""
    made: list[YamuxSession] = []

    async def factory(
        config: YamuxConfig | None = None,
        server_config: YamuxConfig | None = None,
        *,
        seed: int | None = None,
        limit: int = 1 << 20,
    ) -> SessionPair:
        a, b = channel_pair(limit, seed)
        client = YamuxSession(a, Role.CLIENT, config)
        server = YamuxSession(b, Role.SERVER, server_config or config)
        made.extend((client, server))
        return client, server

    yield factory
    for session in made:
        await session.close()


@pytest.fixture
async def pair(make_pair: PairFactory) -> SessionPair:
    """A default client/server session pair."""
    return await make_pair()


ChannelFactory = Callable[..., tuple[MemoryChannel, MemoryChannel]]


@pytest.fixture
def channels() -> ChannelFactory:
    """The raw channel-pair factory, for tests that speak Yamux by hand."""
    return channel_pair


@pytest.fixture
async def stream_pair(pair: SessionPair) -> tuple[YamuxStream, YamuxStream]:
    """An opened client stream and the server's accepted end of it."""
    client, server = pair
    stream = await client.open_stream()
    stream.write(b"\0")
    peer = await server.accept_stream()
    assert await peer.readexactly(1) == b"\0"
    return stream, peer
