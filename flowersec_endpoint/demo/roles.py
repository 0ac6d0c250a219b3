"""The demo's subcommands: each runs one endpoint role until it is done.

Grants are single-use, so ``server`` serves one session and exits when the
client leaves; ``direct-server`` keeps serving until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from typing import Any, TextIO

from aiohttp import web

from flowersec_endpoint.connecting import connect, connect_direct
from flowersec_endpoint.demo.service import demo_server, run_exchange
from flowersec_endpoint.e2ee.constants import FEATURE_REKEY
from flowersec_endpoint.encoding import DecodeError, b64u_encode, loads_object
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import (
    MAX_JSON_BYTES,
    DirectConnectInfo,
    decode_direct_connect_info_json,
    decode_grant_server_json,
)
from flowersec_endpoint.serve import DirectChannel, DirectSettings, direct_handler
from flowersec_endpoint.serve import serve_tunnel as serve_tunnel_session

DIRECT_HANDSHAKE_TIMEOUT = 30.0


def read_json_input(
    name: str, stdin: TextIO | None = None, *, path: Path = Path.AUTO
) -> dict[str, Any]:
    """Read one JSON object from a file, or from stdin when ``name`` is '-'.

    From stdin, lines are read only until they form a complete JSON value,
    so ``flowersec-demo direct-server | flowersec-demo direct-client --info
    -`` works while the server keeps running. Empty or malformed input, or
    a value that is not an object, is ``<path>/validate/invalid_input``
    naming ``name``; a file that cannot be read raises ``OSError``.
    """
    if name != "-":
        with open(name, encoding="utf-8") as handle:
            text = handle.read(MAX_JSON_BYTES + 1)
    else:
        source = stdin or sys.stdin
        text = ""
        while True:
            line = source.readline()
            text += line
            if not line or _complete(text):
                break
    try:
        if len(text) > MAX_JSON_BYTES:
            raise DecodeError("input too large")
        return loads_object(text)
    except DecodeError as exc:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.INVALID_INPUT, f"{name}: {exc}", exc
        ) from exc


def _complete(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)


async def run_client(args: argparse.Namespace) -> int:
    """``client``: the demo exchange through the tunnel."""
    obj = read_json_input(args.grant, path=Path.TUNNEL)
    async with await connect(obj, origin=args.origin) as client:
        _print_lines(await run_exchange(client))
    return 0


async def run_direct_client(args: argparse.Namespace) -> int:
    """``direct-client``: the demo exchange straight to a direct server."""
    obj = read_json_input(args.info, path=Path.DIRECT)
    info = decode_direct_connect_info_json(json.dumps(obj))
    async with await connect_direct(info, origin=args.origin) as client:
        _print_lines(await run_exchange(client))
    return 0


async def run_server(args: argparse.Namespace) -> int:
    """``server``: attach as role server and serve one demo session."""
    obj = read_json_input(args.grant, path=Path.TUNNEL)
    grant = decode_grant_server_json(json.dumps(obj))
    await serve_tunnel_session(
        grant,
        demo_server(),
        origin=args.origin,
        handshake_timeout=args.handshake_timeout,
    )
    return 0


async def run_direct_server(args: argparse.Namespace) -> int:
    """``direct-server``: print the connect info line, then serve until stopped."""
    host, _, port_text = args.listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {args.listen!r}")
    psk = secrets.token_bytes(32)
    channel = DirectChannel(
        channel_id=args.channel_id or b64u_encode(secrets.token_bytes(24)),
        psk=psk,
        init_expire_at_unix_s=int(time.time()) + args.init_exp_seconds,
        suite=1,
    )
    app = web.Application()
    app.router.add_get(
        args.ws_path,
        direct_handler(
            demo_server(),
            channel=channel,
            allowed_origins=args.allow_origin,
            settings=DirectSettings(
                handshake_timeout=DIRECT_HANDSHAKE_TIMEOUT,
                server_features=FEATURE_REKEY,
            ),
        ),
    )
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port_text))
    await site.start()
    try:
        bound_host, bound_port = _bound(runner)
        info = DirectConnectInfo(
            ws_url=f"ws://{bound_host}:{bound_port}{args.ws_path}",
            channel_id=channel.channel_id,
            e2ee_psk_b64u=b64u_encode(psk),
            channel_init_expire_at_unix_s=channel.init_expire_at_unix_s,
            default_suite=channel.suite,
        )
        sys.stdout.write(info.to_json().decode("utf-8") + "\n")
        sys.stdout.flush()
        await _until_signalled()
    finally:
        await runner.cleanup()
    return 0


def _bound(runner: web.AppRunner) -> tuple[str, int]:
    if not runner.addresses:
        raise OSError("listener has no socket")
    host, port = runner.addresses[0][:2]
    return (f"[{host}]" if ":" in host else host), port


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
