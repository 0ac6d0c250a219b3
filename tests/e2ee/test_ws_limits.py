"""WebSocket message limits of the dialled and served sockets (e2ee.md §9.3).

A record frame of exactly ``max_record_bytes`` and a handshake frame of
``10 + max_handshake_payload`` bytes are legal, so the WebSocket under the
channel must carry messages of those sizes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from flowersec_endpoint.connecting import connect_direct
from flowersec_endpoint.demo.service import demo_server
from flowersec_endpoint.encoding import b64u_encode
from flowersec_endpoint.grants import DirectConnectInfo
from flowersec_endpoint.serve import DirectChannel, DirectSettings, direct_handler
from flowersec_endpoint.transport import websocket_message_limit

ORIGIN = "http://127.0.0.1"
Start = Callable[[DirectSettings], Awaitable[DirectConnectInfo]]


@pytest.fixture
async def start_direct() -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def start(settings: DirectSettings) -> DirectConnectInfo:
        psk = secrets.token_bytes(32)
        init_exp = int(time.time()) + 120
        app = web.Application()
        handler = direct_handler(
            demo_server(),
            channel=DirectChannel("chan-limits", psk, init_exp),
            allowed_origins=["127.0.0.1"],
            settings=settings,
        )
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return DirectConnectInfo(
            ws_url=f"ws://{host}:{port}/ws",
            channel_id="chan-limits",
            e2ee_psk_b64u=b64u_encode(psk),
            channel_init_expire_at_unix_s=init_exp,
            default_suite=1,
        )

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("records", "payload", "limit"),
    [
        (1 << 20, 8192, (1 << 20) + 1),
        (100, 8192, 8202 + 1),
        (2048, 100, 2048 + 1),
        (0, 8192, 0),
        (4096, 0, 0),
    ],
)
def test_websocket_message_limit(records: int, payload: int, limit: int) -> None:
    assert websocket_message_limit(records, payload) == limit


@pytest.mark.parametrize("max_record_bytes", [2048, 100])
async def test_full_size_records_pass_both_sockets(
    start_direct: Start, max_record_bytes: int
) -> None:
    """Yamux frames split into records of exactly the limit, both ways."""
    settings = DirectSettings(handshake_timeout=5, max_record_bytes=max_record_bytes)
    info = await start_direct(settings)
    async with await connect_direct(
        info, origin=ORIGIN, max_record_bytes=max_record_bytes
    ) as client:
        stream = await client.open_stream("echo")
        data = secrets.token_bytes(20_000)
        stream.write(data)
        await stream.drain()
        got = await stream.readexactly(len(data))
        assert got == data
        assert client.secure.records.send_seq > len(data) // (max_record_bytes - 34)
        await stream.close()
