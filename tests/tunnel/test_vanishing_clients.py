"""Clients that vanish mid-upgrade: counted, released, never a traceback."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from flowersec_tunnel.app import create_app
from flowersec_tunnel.config import TunnelConfig
from flowersec_tunnel.runtime import TunnelRuntime

ORIGIN = "https://app.example.com"


async def lost_write(self: web.StreamResponse) -> None:
    """What aiohttp raises when the client reset before the 101 went out."""
    raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")


async def test_client_gone_before_101_is_an_upgrade_error(
    aiohttp_server: AiohttpServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = TunnelConfig(
        aud="aud", iss="iss", allow_origin=(ORIGIN,), issuer_keys_file="unused"
    )
    rt = TunnelRuntime(config, {})
    rt.metrics.enable()
    monkeypatch.setattr(web.WebSocketResponse, "_write_headers", lost_write)
    server = await aiohttp_server(create_app(rt), host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(server.make_url("/ws"), headers={"Origin": ORIGIN})
        await server.close()
    assert rt.hub.conns == 0
    assert not rt.sockets
    text = (rt.metrics.render() or b"").decode()
    upgrade = 'flowersec_tunnel_attach_total{reason="upgrade_error",result="fail"} 1.0'
    assert upgrade in text.splitlines()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
