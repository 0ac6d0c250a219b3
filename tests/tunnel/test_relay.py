"""Pairing and the splice: order, boundaries, buffering, teardown."""

from __future__ import annotations

import aiohttp

from .conftest import Harness, closed_with, wait_for


async def test_client_first_pairing_relays_both_ways(tun: Harness) -> None:
    client, server = await tun.pair()
    await client.send_bytes(b"hello")
    assert (await server.receive_bytes()) == b"hello"
    await server.send_bytes(b"world")
    assert (await client.receive_bytes()) == b"world"
