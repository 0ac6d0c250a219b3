"""Rules that need a live tunnel: every token row, burned tokens, idleness.

tunnel.md §1.4 (each failed check is 1008 ``invalid_token``), §5.4 and §7
(a token is consumed before channel admission), §6.3 (a refused
replacement is counted), §4.4 and §6.8 (pings are answered but are not
activity, and the tunnel never pings).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import structlog

from flowersec_endpoint.encoding import b64u_encode, dumps_compact
from flowersec_tunnel.logs import configure

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel


def raw_fst2(tun: Harness, claims: dict[str, Any]) -> str:
    """Sign ``claims`` as given, without the issuer-side checks."""
    body = b64u_encode(dumps_compact({"kid": tun.key.kid, **claims}))
    signed = f"FST2.{body}"
    return f"{signed}.{b64u_encode(tun.key.sign(signed.encode('ascii')))}"


def claims(channel_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    obj: dict[str, Any] = {
        "aud": "flowersec-tunnel:test",
        "iss": "issuer-test",
        "channel_id": channel_id,
        "role": 1,
        "token_id": f"tok-{time.monotonic_ns()}",
        "init_exp": now + 120,
        "idle_timeout_seconds": 60,
        "iat": now,
        "exp": now + 60,
    }
    obj.update(changes)
    return obj


def counter(tun: Harness, series: str) -> float:
    text = (tun.server.runtime.metrics.render() or b"").decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_token_rows_not_covered_elsewhere(tun: Harness) -> None:
    """Base64, JSON, idle timeout and exp-after-init failures (rows 2-4, 12)."""
    now = int(time.time())
    zero_sig = b64u_encode(bytes(64))
    tokens = [
        "FST2.e30=." + zero_sig,
        "FST2.e30." + zero_sig[:-2] + "+/",
        "FST2." + b64u_encode(b"{") + "." + zero_sig,
        "FST2." + b64u_encode(b'{"role":"1"}') + "." + zero_sig,
        raw_fst2(tun, claims("chan-t", idle_timeout_seconds=0)),
        raw_fst2(tun, claims("chan-t", idle_timeout_seconds=-5)),
        raw_fst2(tun, claims("chan-t", init_exp=now + 30, exp=now + 31)),
    ]
    for token in tokens:
        ws = await tun.ws()
        await ws.send_str(tun.attach_message("chan-t", 1, token))
        assert await tun.closed_with(ws) == (1008, "invalid_token"), token
    good = raw_fst2(tun, claims("chan-t", init_exp=now + 30, exp=now + 30))
    ws = await tun.attach("chan-t", 1, token=good)
    await tun.wait_for(lambda: "chan-t" in tun.server.runtime.hub.channels)
    await ws.close()


async def test_token_is_burned_when_admission_fails(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(max_channels=1)
    now = int(time.time())
    waiting = await tun.attach("chan-b", 1, init_exp=now + 100)
    mismatched = tun.token("chan-b", 2, init_exp=now + 101)
    full = tun.token("chan-other", 1)
    for token, cid, role in ((mismatched, "chan-b", 2), (full, "chan-other", 1)):
        ws = await tun.ws()
        await ws.send_str(tun.attach_message(cid, role, token))
        assert await tun.closed_with(ws) == (1011, "attach_failed")
        ws = await tun.ws()
        await ws.send_str(tun.attach_message(cid, role, token))
        assert await tun.closed_with(ws) == (1008, "token_replay")
    assert not waiting.closed
    await waiting.close()


async def test_refused_replacement_burns_the_token_and_is_counted(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(metrics_listen="127.0.0.1:0")
    holder = await tun.attach("chan-rl", 1)
    await tun.wait_for(lambda: "chan-rl" in tun.server.runtime.hub.channels)
    for _ in range(5):
        newcomer = await tun.attach("chan-rl", 1)
        assert await tun.closed_with(holder) == (1001, "replaced")
        holder = newcomer
    token = tun.token("chan-rl", 1)
    for expected in ((1013, "replace_rate_limited"), (1008, "token_replay")):
        ws = await tun.ws()
        await ws.send_str(tun.attach_message("chan-rl", 1, token))
        assert await tun.closed_with(ws) == expected
    assert counter(tun, 'flowersec_tunnel_replace_total{result="ok"}') == 5
    assert counter(tun, 'flowersec_tunnel_replace_total{result="rate_limited"}') == 1
    limited = (
        'flowersec_tunnel_attach_total{reason="replace_rate_limited",result="fail"}'
    )
    assert counter(tun, limited) == 1
    assert not holder.closed
    await holder.close()


async def test_pings_are_answered_but_are_not_activity(tun: Harness) -> None:
    watcher = await tun.session.ws_connect(
        tun.ws_url, headers={"Origin": "https://app.example.com"}, autoping=False
    )
    client, server = await tun.pair(idle=1)

    async def keep_pinging() -> None:
        try:
            while True:
                await client.ping(b"alive?")
                await asyncio.sleep(0.2)
        except ConnectionError:
            return

    pinger = asyncio.create_task(keep_pinging())
    # Were pings activity, the channel would outlive closed_with's wait.
    assert await tun.closed_with(server) == (1001, "idle_timeout")
    pinger.cancel()
    await watcher.ping(b"abc")
    msg = await watcher.receive(timeout=2)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"abc")
    with pytest.raises(TimeoutError):
        await watcher.receive(timeout=1.0)
    await watcher.close()


async def test_every_attach_outcome_is_one_log_event(tun: Harness) -> None:
    """Upgrade errors too: they are attach outcomes in the metrics (§9.5)."""
    stream = io.StringIO()
    configure("json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    try:
        async with tun.session.get(tun.ws_url.replace("ws://", "http://")) as resp:
            assert resp.status == 400
        ws = await tun.ws()
        await ws.send_bytes(b"not an attach")
        assert await tun.closed_with(ws) == (1002, "expected_attach")
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    outcomes = [
        (e["reason"], e.get("status"))
        for e in events
        if e["event"] == "attach_rejected"
    ]
    assert outcomes == [("upgrade_error", 400), ("expected_attach", None)]
