"""A peer's close frame is echoed once, same code, empty reason (tunnel.md §4.4).

Raw frames on a plain socket, because client libraries never send a close
frame without a status code and hide what exactly comes back.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import Harness

UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: https://app.example.com\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


def masked(opcode: int, payload: bytes) -> bytes:
    """One final client frame (payload under 126 bytes is enough here)."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", len(payload))
    return head + mask + body


async def close_reply(tun: Harness, close_payload: bytes, *, attach: bool) -> bytes:
    """Upgrade, optionally attach, send a close frame; return all bytes back."""
    host, port = tun.server.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(UPGRADE.encode())
    await reader.readuntil(b"\r\n\r\n")
    if attach:
        text = tun.attach_message("chan-echo", 1, tun.token("chan-echo", 1))
        writer.write(masked(0x1, text.encode()))
        await tun.wait_for(lambda: "chan-echo" in tun.server.runtime.hub.channels)
    writer.write(masked(0x8, close_payload))
    reply = await asyncio.wait_for(reader.read(), 3)
    writer.close()
    return reply


@pytest.mark.parametrize("attach", [False, True])
async def test_empty_close_is_echoed_empty(tun: Harness, attach: bool) -> None:
    assert await close_reply(tun, b"", attach=attach) == b"\x88\x00"


@pytest.mark.parametrize("attach", [False, True])
async def test_close_code_is_echoed_without_reason(tun: Harness, attach: bool) -> None:
    reply = await close_reply(tun, struct.pack(">H", 4001) + b"bye", attach=attach)
    assert reply == b"\x88\x02" + struct.pack(">H", 4001)
