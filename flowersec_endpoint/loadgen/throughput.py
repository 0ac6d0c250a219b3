"""Throughput mode: N channels each push M MiB through the tunnel.

What flows is raw binary WebSocket messages right after the attach (no
E2EE handshake, no encryption), each with an FSEC record header so the
tunnel treats the channel as encrypted; the tunnel only sniffs headers, so
this measures the tunnel's forwarding path and nothing of the endpoints'
crypto. Senders (client role) and receivers (server role) run in two
separate processes so that neither end shares a core with the other. A
channel's rate is its bytes divided by the time from its first send to its
last byte received; both ends use the system-wide monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO

import aiohttp

from flowersec_endpoint.attach import ROLE_SERVER
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.loadgen.attempt import describe
from flowersec_endpoint.loadgen.config import LoadConfig
from flowersec_endpoint.loadgen.minting import minter_for
from flowersec_endpoint.loadgen.procinfo import ProcessTrack
from flowersec_endpoint.loadgen.report import environment
from flowersec_endpoint.loadgen.run import RunFailed
from flowersec_endpoint.loadgen.runtime import run_on_uvloop
from flowersec_endpoint.loadgen.wire import (
    data_frame,
    dial,
    new_http_session,
    probe_frame,
    receive_binary,
    send_attach,
)
from flowersec_tunnel.app import keep_large_buffers_on_heap

MIB = 1024 * 1024
MB = 1_000_000
START_TIMEOUT = 60.0
TRANSPORT = "raw binary WebSocket messages after attach (FSEC header, not encrypted)"


def receiver_process(
    grants: list[ChannelInitGrant], config: LoadConfig, total: int, conn: Connection
) -> None:
    """Process entry point of the receiving (server-role) ends."""
    keep_large_buffers_on_heap()
    try:
        run_on_uvloop(_receiver(grants, config, total, conn))
    except BaseException as exc:
        conn.send(("error", "receiver", describe(exc)))
        raise SystemExit(1) from exc


def sender_process(
    grants: list[ChannelInitGrant], config: LoadConfig, total: int, conn: Connection
) -> None:
    """Process entry point of the sending (client-role) ends."""
    keep_large_buffers_on_heap()
    try:
        run_on_uvloop(_sender(grants, config, total, conn))
    except BaseException as exc:
        conn.send(("error", "sender", describe(exc)))
        raise SystemExit(1) from exc


async def _attach_all(
    http: aiohttp.ClientSession, grants: list[ChannelInitGrant], origin: str
) -> list[aiohttp.ClientWebSocketResponse]:
    """Attach every end; receivers announce themselves with one probe.

    A sender pushes only after its receiver's probe has arrived, i.e. once
    the tunnel has admitted and paired it, so no bulk data races the
    attach.
    """
    sockets = []
    for grant in grants:
        ws = await dial(http, grant.tunnel_url, origin)
        await send_attach(ws, grant)
        if grant.role == ROLE_SERVER:
            await ws.send_bytes(probe_frame(1))
        else:
            await receive_binary(ws)
        sockets.append(ws)
    return sockets


async def _receiver(
    grants: list[ChannelInitGrant], config: LoadConfig, total: int, conn: Connection
) -> None:
    received = [0] * len(grants)

    async def drain(i: int, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        first = last = 0.0
        try:
            while received[i] < total:
                async with asyncio.timeout(config.conn_timeout):
                    msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    raise ConnectionError(f"got {msg.type.name} after {received[i]} B")
                last = time.monotonic()
                first = first or last
                received[i] += len(msg.data)
        except Exception as exc:
            return {
                "bytes": received[i],
                "first": first,
                "last": last,
                "error": describe(exc),
            }
        return {"bytes": received[i], "first": first, "last": last, "error": ""}

    async def progress() -> None:
        while True:
            await asyncio.sleep(config.report_interval)
            conn.send(("progress", "receiver", sum(received)))

    async with new_http_session() as http:
        sockets = await _attach_all(http, grants, config.origin)
        conn.send(("ready", "receiver"))
        reporter = asyncio.create_task(progress())
        results = await asyncio.gather(*(drain(i, ws) for i, ws in enumerate(sockets)))
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        conn.send(("received", "receiver", results))
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def _sender(
    grants: list[ChannelInitGrant], config: LoadConfig, total: int, conn: Connection
) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _expect, conn, "go")
    frame = data_frame(config.record_size, 0)

    async def push(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        start = time.monotonic()
        sent = 0
        try:
            while sent < total:
                size = min(len(frame), total - sent)
                await ws.send_bytes(frame if size == len(frame) else frame[:size])
                sent += size
        except Exception as exc:
            return {"start": start, "sent": sent, "error": describe(exc)}
        return {"start": start, "sent": sent, "error": ""}

    async with new_http_session() as http:
        sockets = await _attach_all(http, grants, config.origin)
        results = await asyncio.gather(*(push(ws) for ws in sockets))
        conn.send(("sent", "sender", results))
        await loop.run_in_executor(None, _expect, conn, "release")
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _expect(conn: Connection, word: str) -> None:
    with contextlib.suppress(EOFError, OSError):
        while conn.recv() != (word,):
            pass


def run_throughput(
    config: LoadConfig, tunnel_pid: int | None, progress: TextIO = sys.stderr
) -> dict[str, Any]:
    """Run throughput mode and return its report."""
    total = math.ceil(config.size_mib * MIB)
    minter = minter_for(config)
    pairs = [minter.mint(f"{config.channel_prefix}{i}") for i in range(config.channels)]
    tunnel = ProcessTrack(tunnel_pid) if tunnel_pid else None
    if tunnel is not None:
        tunnel.sample()
    context = multiprocessing.get_context("spawn")
    conns: dict[str, Connection] = {}
    processes = []
    for name, target, grants in (
        ("receiver", receiver_process, [p.server for p in pairs]),
        ("sender", sender_process, [p.client for p in pairs]),
    ):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=target, args=(grants, config, total, theirs), name=name
        )
        process.start()
        theirs.close()
        conns[name] = ours
        processes.append(process)
    try:
        messages = _supervise(config, conns, tunnel, progress, total)
    except BaseException:
        for process in processes:
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(START_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    if tunnel is not None:
        tunnel.sample()
    return _report(config, total, messages["sent"], messages["received"], tunnel)


def _supervise(
    config: LoadConfig,
    conns: dict[str, Connection],
    tunnel: ProcessTrack | None,
    out: TextIO,
    total: int,
) -> dict[str, Any]:
    got: dict[str, Any] = {}
    started = time.time()
    next_report = started + config.report_interval
    received = 0
    open_conns = list(conns.values())
    while "received" not in got or "sent" not in got:
        if not open_conns:
            raise RunFailed("throughput workers ended without results")
        for ready in wait(open_conns, timeout=max(0.0, next_report - time.time())):
            assert isinstance(ready, Connection)
            try:
                kind, who, *rest = ready.recv()
            except EOFError:
                open_conns.remove(ready)
                continue
            if kind == "error":
                raise RunFailed(f"{who} failed: {rest[0]}")
            if kind == "ready":
                conns["sender"].send(("go",))
            elif kind == "progress":
                received = rest[0]
            else:
                got[kind] = rest[0]
        if time.time() >= next_report:
            rss = tunnel.sample() if tunnel else None
            line = (
                f"[{time.time() - started:7.1f}s] received "
                f"{received / MIB:.0f}/{total * config.channels / MIB:.0f} MiB"
            )
            if rss is not None:
                line += f" tunnel_rss {rss / MIB:.1f} MiB"
            print(line, file=out, flush=True)
            next_report = time.time() + config.report_interval
    conns["sender"].send(("release",))
    return got


def _report(
    config: LoadConfig,
    total: int,
    sent: list[dict[str, Any]],
    received: list[dict[str, Any]],
    tunnel: ProcessTrack | None,
) -> dict[str, Any]:
    channels = []
    for index, (s, r) in enumerate(zip(sent, received, strict=True)):
        seconds = r["last"] - s["start"] if r["last"] else 0.0
        ok = not s["error"] and not r["error"] and r["bytes"] >= total
        channels.append(
            {
                "channel": index,
                "ok": ok,
                "bytes": r["bytes"],
                "seconds": seconds,
                "mb_per_sec": r["bytes"] / seconds / MB if seconds > 0 else 0.0,
                "mib_per_sec": r["bytes"] / seconds / MIB if seconds > 0 else 0.0,
                "error": s["error"] or r["error"],
            }
        )
    good = [c for c in channels if c["ok"]]
    begin = min((s["start"] for s in sent), default=0.0)
    end = max((r["last"] for r in received), default=0.0)
    moved = sum(r["bytes"] for r in received)
    span = end - begin if end > begin else 0.0
    rates = [c["mb_per_sec"] for c in good]
    return {
        "config": config.report_dict(),
        "summary": {
            "transport": TRANSPORT,
            "channels": config.channels,
            "success": len(good),
            "failure": len(channels) - len(good),
            "bytes_per_channel": total,
            "record_size": config.record_size,
            "total_bytes": moved,
            "duration_seconds": span,
            "total_mb_per_sec": moved / span / MB if span else 0.0,
            "total_mib_per_sec": moved / span / MIB if span else 0.0,
            "per_channel_mb_per_sec": {
                "min": min(rates, default=0.0),
                "mean": math.fsum(rates) / len(rates) if rates else 0.0,
                "max": max(rates, default=0.0),
            },
        },
        "channels": channels,
        "resources": {"tunnel": tunnel.report()} if tunnel else {},
        "env": environment(2),
    }
