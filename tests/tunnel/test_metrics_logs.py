"""Metric series and log events: names, labels, one count per end, no secrets."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import structlog

from flowersec_tunnel.logs import configure

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel


def sample(tun: Harness, line_start: str) -> float:
    text = (tun.server.runtime.metrics.render() or b"").decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_series_for_a_channel_life(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(metrics_listen="127.0.0.1:0")
    client, server = await tun.pair("chan-m")
    assert sample(tun, "flowersec_tunnel_connections") == 2
    assert sample(tun, "flowersec_tunnel_channels") == 1
    ok = 'flowersec_tunnel_attach_total{reason="ok",result="ok"}'
    assert sample(tun, ok) == 2
    assert sample(tun, "flowersec_tunnel_pair_latency_seconds_count") == 1
    record = b"FSEC\x01\x00" + bytes(8) + (3).to_bytes(4, "big") + b"abc"
    await client.send_bytes(record)
    assert await server.receive_bytes() == record
    assert sample(tun, "flowersec_tunnel_encrypted_total") == 1
    newcomer = await tun.attach("chan-m", 1)
    await tun.closed_with(client)
    replaced = 'flowersec_tunnel_close_total{reason="replaced"}'
    await tun.wait_for(lambda: sample(tun, replaced) == 1)
    assert sample(tun, 'flowersec_tunnel_replace_total{result="ok"}') == 1
    await newcomer.close()
    await tun.wait_for(lambda: not tun.server.runtime.hub.channels)
    peer_closed = 'flowersec_tunnel_close_total{reason="peer_closed"}'
    await tun.wait_for(lambda: sample(tun, peer_closed) == 1)
    await tun.wait_for(lambda: sample(tun, "flowersec_tunnel_connections") == 0)
    assert sample(tun, "flowersec_tunnel_channels") == 0


async def test_metrics_listener_serves_only_metrics(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(metrics_listen="127.0.0.1:0")
    base = f"http://{tun.server.metrics_listen}"
    async with tun.session.get(base + "/metrics") as resp:
        assert resp.status == 200
        assert "flowersec_tunnel_attach_total" in await resp.text()
    async with tun.session.get(base + "/other") as resp:
        assert resp.status == 404
    tun.server.runtime.metrics.disable()
    async with tun.session.get(base + "/metrics") as resp:
        assert resp.status == 404
    upgrade = 'flowersec_tunnel_attach_total{reason="upgrade_error",result="fail"}'
    tun.server.runtime.metrics.enable()
    async with tun.session.get(tun.ws_url.replace("ws://", "http://")) as resp:
        assert resp.status == 400
    assert sample(tun, upgrade) == 1


async def test_logs_are_json_and_never_hold_tokens(tun: Harness) -> None:
    stream = io.StringIO()
    configure("json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    try:
        token = tun.token("chan-log", 1)
        client = await tun.attach("chan-log", 1, token=token)
        replay = await tun.attach("chan-log", 1, token=token)
        await tun.closed_with(replay)
        server = await tun.attach("chan-log", 2)
        await tun.wait_for(lambda: tun.is_paired("chan-log"))
        await client.send_bytes(b"12345")
        await server.receive_bytes()
        await client.close()
        await tun.closed_with(server)
        await tun.wait_for(lambda: "channel_ended" in stream.getvalue())
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    names = [e["event"] for e in events]
    assert names.count("attach_accepted") == 2
    assert "attach_rejected" in names
    ended = next(e for e in events if e["event"] == "channel_ended")
    assert ended["reason"] == "peer_closed"
    assert ended["client_bytes_in"] == 5
    assert ended["channel_id"] == "chan-log"
    assert "client_token_id" in ended and "duration_s" in ended
    assert token not in stream.getvalue()
    assert token.split(".")[1] not in stream.getvalue()
