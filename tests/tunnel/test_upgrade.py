"""Upgrade checks of tunnel.md §4.2, in order, on raw HTTP requests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel

GOOD = {
    "Host": "x",
    "Connection": "keep-alive, Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Origin": "https://app.example.com",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def raw_request(
    tun: Harness, headers: dict[str, str | None], method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"{method} /ws?x=1 HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items() if v is not None]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    status_line, *header_lines = head.decode().split("\r\n")
    fields = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    body = b""
    if status != 101 and "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    writer.close()
    return status, fields, body


def variant(**changes: str | None) -> dict[str, str | None]:
    headers: dict[str, str | None] = dict(GOOD)
    headers.update({k.replace("_", "-"): v for k, v in changes.items()})
    return headers


@pytest.mark.parametrize(
    ("headers", "method", "status"),
    [
        (variant(Connection="keep-alive"), "GET", 400),
        (variant(Upgrade="h2c"), "GET", 400),
        (variant(Upgrade="h2c"), "POST", 400),
        (variant(), "POST", 405),
        (variant(Origin="https://evil.example"), "POST", 405),
        (variant(Sec_WebSocket_Version="8"), "GET", 400),
        (variant(Sec_WebSocket_Version="8", Origin="https://evil"), "GET", 400),
        (variant(Origin="https://evil.example"), "GET", 403),
        (variant(Origin=None), "GET", 403),
        (variant(Origin="https://evil", Sec_WebSocket_Key="short"), "GET", 403),
        (variant(Sec_WebSocket_Key="c2hvcnQ="), "GET", 400),
        (variant(Sec_WebSocket_Key=None), "GET", 400),
    ],
)
async def test_upgrade_check_order(
    tun: Harness, headers: dict[str, str | None], method: str, status: int
) -> None:
    got, fields, body = await raw_request(tun, headers, method)
    assert got == status
    assert fields["sec-websocket-version"] == "13"
    assert fields["content-type"] == "text/plain; charset=utf-8"
    phrases = {400: b"Bad Request\n", 403: b"Forbidden\n", 405: b"Method Not Allowed\n"}
    assert body == phrases[status]


async def test_successful_upgrade_headers(tun: Harness) -> None:
    status, fields, _ = await raw_request(
        tun,
        variant(
            Sec_WebSocket_Extensions="permessage-deflate", Sec_WebSocket_Protocol="chat"
        ),
    )
    assert status == 101
    assert fields["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert "sec-websocket-extensions" not in fields
    assert "sec-websocket-protocol" not in fields


async def test_allow_no_origin(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(allow_no_origin=True)
    status, _, _ = await raw_request(tun, variant(Origin=None))
    assert status == 101


async def test_custom_ws_path(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(ws_path="/tunnel")
    async with tun.session.get(tun.url + "/ws") as resp:
        assert resp.status == 404
    ws = await tun.ws()
    await ws.close()
