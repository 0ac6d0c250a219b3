"""Routes of the main listener (tunnel.md §4.1): any method on ``/healthz``,
query strings ignored for routing, WebSocket path matched exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import Harness


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
async def test_healthz_answers_any_method(tun: Harness, method: str) -> None:
    async with tun.session.request(method, tun.url + "/healthz?probe=1") as resp:
        assert resp.status == 200
        assert await resp.read() == b"ok"


async def test_ws_route_ignores_the_query(tun: Harness) -> None:
    ws = await tun.session.ws_connect(
        tun.ws_url + "?x=1", headers={"Origin": "https://app.example.com"}
    )
    await ws.send_str(tun.attach_message("chan-q", 1, tun.token("chan-q", 1)))
    await tun.wait_for(lambda: "chan-q" in tun.server.runtime.hub.channels)
    await ws.close()
