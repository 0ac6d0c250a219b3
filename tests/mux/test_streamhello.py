"""StreamHello bytes, validation and the read limit (mux-rpc.md §3)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.streamhello import (
    StreamHelloError,
    decode_hello,
    encode_hello,
    read_hello,
)


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
