"""StreamHello bytes, validation and the read limit (mux-rpc.md §3)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.rpc import RpcFramingError
from flowersec_endpoint.streamhello import (
    HelloAcceptor,
    StreamHelloError,
    decode_hello,
    encode_hello,
    open_hello_stream,
    read_hello,
)
from flowersec_endpoint.yamux import YamuxError


def test_exact_bytes() -> None:
    assert encode_hello("rpc") == bytes.fromhex("00000014") + b'{"kind":"rpc","v":1}'
    assert encode_hello("echo") == bytes.fromhex("00000015") + b'{"kind":"echo","v":1}'
    with pytest.raises(ValueError):
        encode_hello("")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b'{"kind":"rpc"}',
        b'{"kind":"rpc","v":2}',
        b'{"kind":"","v":1}',
        b'{"v":1}',
        b'{"kind":5,"v":1}',
        b'{"kind":"rpc","v":true}',
        b'{"kind":"rpc","v":1.0}',
    ],
)
def test_bad_hellos(payload: bytes) -> None:
    with pytest.raises(StreamHelloError):
        decode_hello(payload)


def test_unknown_keys_ignored() -> None:
    assert decode_hello(b'{"v":1,"kind":"echo","extra":[1]}') == "echo"


@given(st.binary(max_size=64))
def test_decode_only_documented_error(payload: bytes) -> None:
    with contextlib.suppress(StreamHelloError):
        assert decode_hello(payload)


async def test_read_hello_stops_at_frame_end(pair: Any) -> None:
    client, server = pair
    stream = await client.open_stream()
    stream.write(encode_hello("rpc") + b"rest")
    peer = await server.accept_stream()
    assert await read_hello(peer) == "rpc"
    assert await peer.readexactly(4) == b"rest"


async def test_read_hello_limit_and_eof(pair: Any) -> None:
    client, server = pair
    big = await client.open_stream()
    big.write(b"\x00\x00\x20\x01")
    short = await client.open_stream()
    short.write(b"\x00\x00\x00\x10{")
    await short.close()
    exact = await client.open_stream()
    exact.write(encode_hello("k" * (8192 - 19)))
    with pytest.raises(StreamHelloError):
        await read_hello(await server.accept_stream())
    with pytest.raises(StreamHelloError):
        await read_hello(await server.accept_stream())
    kind = await asyncio.wait_for(read_hello(await server.accept_stream()), 5)
    assert len(kind) == 8192 - 19


async def test_acceptor_silent_stream_does_not_block(pair: Any) -> None:
    client, server = pair
    errors: list[BaseException] = []
    acceptor = HelloAcceptor(server, hello_timeout=1.0, on_error=errors.append)
    silent = await client.open_stream()
    bad = await client.open_stream()
    bad.write(b"\x00\x00\x00\x02{}")
    good = await open_hello_stream(client, "echo")
    kind, stream = await acceptor.accept()
    assert silent._core.error is None
    assert kind == "echo"
    assert stream.id == good.id
    good.write(b"data")
    assert await stream.readexactly(4) == b"data"
    with pytest.raises(YamuxError):
        await asyncio.wait_for(silent.read(), 5)
    assert len(errors) == 2
    assert any(isinstance(e, TimeoutError) for e in errors)
    assert any(isinstance(e, StreamHelloError) for e in errors)
    with pytest.raises(ValueError):
        await open_hello_stream(client, "")
    await client.close()
    with pytest.raises(YamuxError):
        await asyncio.wait_for(acceptor.accept(), 5)
    await acceptor.close()


async def test_acceptor_iterates_kinds(pair: Any) -> None:
    client, server = pair
    acceptor = HelloAcceptor(server)
    for kind in ("rpc", "echo", "files"):
        await open_hello_stream(client, kind)
    kinds = []
    async for kind, _ in acceptor:
        kinds.append(kind)
        if len(kinds) == 3:
            break
    assert sorted(kinds) == ["echo", "files", "rpc"]
    await acceptor.close()


async def test_acceptor_holds_at_most_max_pending_streams(pair: Any) -> None:
    client, server = pair
    acceptor = HelloAcceptor(server, max_pending=1)
    await open_hello_stream(client, "a")
    await open_hello_stream(client, "b")
    await asyncio.sleep(0.05)
    assert len(server._accept_queue) == 1
    first, _ = await acceptor.accept()
    second, _ = await asyncio.wait_for(acceptor.accept(), 5)
    assert (first, second) == ("a", "b")
    await acceptor.close()


def test_hello_above_8_kib_is_refused_locally() -> None:
    assert len(encode_hello("k" * 8175)) == 4 + 8192
    with pytest.raises(RpcFramingError):
        encode_hello("k" * 8176)
