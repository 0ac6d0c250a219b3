"""HTTP-phase limits of tunnel.md §4.5.

A new connection has a deadline for its first request's headers; after a
request, the keep-alive timer bounds the idle time. Both are shortened here
to keep the tests fast.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from flowersec_tunnel import server

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("sent", [b"", b"GET /ws HTTP/1.1\r\nHost: x\r\n"])
async def test_first_request_headers_have_a_deadline(
    start_tunnel: StartTunnel, sent: bytes
) -> None:
    tun = await start_tunnel(header_timeout=0.3)
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(sent)

    async def trickle() -> None:
        while sent:
            writer.write(b"X-Trickle: 1\r\n")
            await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    try:
        try:
            rest = await asyncio.wait_for(reader.read(), 3)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    finally:
        task.cancel()
        writer.close()


async def test_deadline_spares_kept_alive_and_upgraded_connections(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(header_timeout=0.2)
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(HEALTHZ)
    assert await reader.readuntil(b"ok") != b""
    client, srv = await tun.pair()
    await asyncio.sleep(0.6)
    writer.write(HEALTHZ)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    await client.send_bytes(b"still paired")
    assert await srv.receive_bytes() == b"still paired"


async def test_idle_kept_alive_connection_is_cut_by_the_keepalive_timer(
    start_tunnel: StartTunnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "KEEPALIVE_TIMEOUT", 0.3)
    tun = await start_tunnel()
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(HEALTHZ)
    await reader.readuntil(b"ok")
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
