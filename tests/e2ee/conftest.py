"""Shared fixtures for the E2EE tests: vectors, scripted randomness, peers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
PSK = bytes(range(0x10, 0x30))


class ScriptedRandom:
    """Returns pre-set byte strings in order; fails loudly when misused."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = self._chunks.pop(0)
        assert len(chunk) == n, f"asked for {n} bytes, scripted {len(chunk)}"
        return chunk


@pytest.fixture
def e2ee_vectors() -> dict[str, Any]:
    path = VECTORS / "e2ee_vectors.json"
    if not path.is_file():
        pytest.skip(f"official vectors not found at {path}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def scripted() -> Callable[[Iterable[bytes]], ScriptedRandom]:
    return ScriptedRandom


@pytest.fixture
def psk() -> bytes:
    return PSK


CHANNEL_ID = "chan_test"
INIT_EXP = 4_000_000_000


@pytest.fixture
def channel_id() -> str:
    return CHANNEL_ID


@pytest.fixture
def pair_up() -> Callable[..., Any]:
    """Run both handshakes concurrently over two transports; return channels."""
    import asyncio

    from flowersec_endpoint.e2ee.channel import client_handshake, server_handshake

    async def run(
        client_tr: Any,
        server_tr: Any,
        *,
        suite: int = 1,
        client_psk: bytes = PSK,
        server_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        server_args: dict[str, Any] = {
            "psk": PSK,
            "channel_id": CHANNEL_ID,
            "init_exp": INIT_EXP,
            "suite": suite,
        } | (server_kwargs or {})
        client_args: dict[str, Any] = {
            "psk": client_psk,
            "channel_id": CHANNEL_ID,
            "suite": suite,
        } | (client_kwargs or {})
        server = asyncio.ensure_future(server_handshake(server_tr, **server_args))
        client = asyncio.ensure_future(client_handshake(client_tr, **client_args))
        results = await asyncio.gather(client, server, return_exceptions=True)
        return results[0], results[1]

    return run
