"""HTTP-phase limits of tunnel.md §4.5 as far as aiohttp provides them.

A connection that never completes a request is cut by the keep-alive timer
(armed at connection start); the timer is shortened here to keep the test
fast.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from flowersec_tunnel import server

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel


@pytest.mark.parametrize("sent", [b"", b"GET /ws HTTP/1.1\r\nHost: x\r\n"])
async def test_incomplete_request_is_cut_by_the_keepalive_timer(
    start_tunnel: StartTunnel, monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    monkeypatch.setattr(server, "KEEPALIVE_TIMEOUT", 0.3)
    tun = await start_tunnel()
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(sent)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def raw_status(tun: Harness, request: bytes, port: int | None = None) -> bytes:
    host, main_port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, port or int(main_port))
    writer.write(request)
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return line


def padded(path: str, total: int) -> bytes:
    """A GET whose request line and headers take ``total`` bytes."""
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n"
    used = len(head) - 2 + len("X-Pad: \r\n")
    fill = total - used
    pads = []
    while fill > 0:
        size = min(fill, 30000)
        pads.append(f"X-Pad: {'p' * (size - len('X-Pad: ') - 2)}\r\n")
        fill -= size
    return (head + "".join(pads) + "\r\n").encode()


@pytest.mark.parametrize("path", ["/healthz", "/ws", "/metrics"])
async def test_headers_are_capped_in_total(
    start_tunnel: StartTunnel, path: str
) -> None:
    """32 KiB (plus Go's 4 KiB read slack) in total, not per line (§4.5)."""
    tun = await start_tunnel(metrics_listen="127.0.0.1:0")
    port = (
        int(tun.server.metrics_listen.rsplit(":", 1)[1]) if path == "/metrics" else None
    )
    ok = await raw_status(tun, padded(path, 32768), port)
    assert not ok.startswith(b"HTTP/1.1 431")
    refused = await raw_status(tun, padded(path, 3 * 30000), port)
    assert refused == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
