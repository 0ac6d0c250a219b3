"""The WebSocket steps every attempt shares: dial, attach, raw frames.

The dial settings are the ones reference endpoints use (Origin header, no
WebSocket pings, no compression, 1 MiB messages). The probe frame has the
shape of an FSEC ping record so that the tunnel marks a raw channel as
encrypted (tunnel.md §6.9) and does not close it at the end of the init
window; the tunnel only sniffs the header and never decrypts it.
"""

from __future__ import annotations

import struct

import aiohttp

from flowersec_endpoint.attach import attach_message, new_endpoint_instance_id
from flowersec_endpoint.grants import ChannelInitGrant

MAX_MESSAGE_BYTES = 1024 * 1024
# aiohttp refuses a message whose size equals ``max_msg_size``, so the limit
# handed to it is one more than the largest message the protocol allows.
AIOHTTP_MAX_MSG_SIZE = MAX_MESSAGE_BYTES + 1
RECORD_HEADER = struct.Struct(">4sBBQI")
PROBE_TAG_BYTES = 16


def new_http_session() -> aiohttp.ClientSession:
    """One HTTP session per worker process.

    The connector's pool limit would queue the tool's own dials behind each
    other, so it is lifted.
    """
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    return aiohttp.ClientSession(connector=connector)


async def dial(
    session: aiohttp.ClientSession, url: str, origin: str
) -> aiohttp.ClientWebSocketResponse:
    """Open one WebSocket the way the reference endpoints do."""
    return await session.ws_connect(
        url,
        origin=origin,
        autoping=True,
        heartbeat=None,
        compress=0,
        max_msg_size=AIOHTTP_MAX_MSG_SIZE,
    )


async def send_attach(
    ws: aiohttp.ClientWebSocketResponse, grant: ChannelInitGrant
) -> None:
    """Send the grant's attach text message with a fresh endpoint instance id."""
    await ws.send_str(
        attach_message(
            channel_id=grant.channel_id,
            role=grant.role,
            token=grant.token,
            endpoint_instance_id=new_endpoint_instance_id(),
        )
    )


def probe_frame(seq: int) -> bytes:
    """A 34-byte message shaped like an FSEC ping record (zero "tag")."""
    header = RECORD_HEADER.pack(b"FSEC", 1, 1, seq, PROBE_TAG_BYTES)
    return header + bytes(PROBE_TAG_BYTES)


def data_frame(size: int, seq: int) -> bytes:
    """A ``size``-byte message with a valid FSEC header for throughput runs.

    The tunnel forwards it unread; only the header is meaningful.
    """
    body = max(0, size - RECORD_HEADER.size)
    return RECORD_HEADER.pack(b"FSEC", 1, 0, seq, body) + bytes(body)


class UnexpectedMessage(RuntimeError):
    """The peer sent something other than one binary message."""


async def receive_binary(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    """The next binary message; a close or any other kind raises."""
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.BINARY:
        data: bytes = msg.data
        return data
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
        reason = msg.extra or ""
        raise UnexpectedMessage(f"closed by the tunnel: {ws.close_code} {reason}")
    raise UnexpectedMessage(f"unexpected {msg.type.name} message")
