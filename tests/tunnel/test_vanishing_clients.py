"""Clients that vanish mid-upgrade: counted, released, never a traceback."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

from flowersec_tunnel.app import create_app
from flowersec_tunnel.config import TunnelConfig
from flowersec_tunnel.runtime import TunnelRuntime

ORIGIN = "https://app.example.com"


def vanishing(seen: list[str]) -> Middleware:
    """Drop the client's TCP connection before the route writes its 101."""

    @web.middleware
    async def vanish(request: web.Request, handler: Handler) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        seen.append(request.path)
        return await handler(request)

    return vanish


async def test_client_gone_before_101_is_an_upgrade_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = TunnelConfig(
        aud="aud", iss="iss", allow_origin=(ORIGIN,), issuer_keys_file="unused"
    )
    rt = TunnelRuntime(config, {})
    rt.metrics.enable()
    app = create_app(rt)
    seen: list[str] = []
    app.middlewares.append(vanishing(seen))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                await session.ws_connect(
                    server.make_url("/ws"), headers={"Origin": ORIGIN}
                )
    finally:
        await server.close()
    assert rt.hub.conns == 0
    assert not rt.sockets
    text = (rt.metrics.render() or b"").decode()
    upgrade = 'flowersec_tunnel_attach_total{reason="upgrade_error",result="fail"}'
    assert seen
    assert f"{upgrade} {float(len(seen))}" in text.splitlines()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
