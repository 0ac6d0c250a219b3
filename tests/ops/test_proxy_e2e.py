"""The nginx example in front of a real daemon: TLS, upgrade, Origin.

Runs only where nginx is installed. The example file is used as written
except for what cannot be on a test machine: its ports become free
loopback ports and its certificate paths point at throwaway certificates.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]
NGINX_EXAMPLE = REPO / "deploy" / "proxy" / "nginx.conf"
ORIGIN = "https://app.example.com"
SHARD_HOST = "tunnel-0.example.com"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def daemon(keyset: Any, start_daemon: Any) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSEC_")} | {
        "FSEC_TUNNEL_LISTEN": "127.0.0.1:0",
        "FSEC_TUNNEL_ISSUER_KEYS_FILE": str(keyset.path),
        "FSEC_TUNNEL_AUD": "flowersec-tunnel:ops-test",
        "FSEC_TUNNEL_ISS": "issuer-ops-test",
        "FSEC_TUNNEL_ALLOW_ORIGIN": ORIGIN,
    }
    return await start_daemon(env)


@pytest.fixture
async def nginx(
    daemon: Any, tmp_path: Path, self_signed: Callable[[Path, Path, str], None]
) -> AsyncIterator[str]:
    """Run the example site in front of ``daemon``; yield the proxy's URL."""
    tool = shutil.which("nginx")
    if tool is None:
        pytest.skip("nginx is not installed")
    tunnel_port = daemon.ready["listen"].rsplit(":", 1)[1]
    port = _free_port()
    site = NGINX_EXAMPLE.read_text()
    site = site.replace("    listen [::]:443 ssl;\n", "")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = site.replace("127.0.0.1:8080;", f"127.0.0.1:{tunnel_port};")
    site = site.replace("/etc/nginx/tls", str(tmp_path))
    for host in ("tunnel-0.example.com", "tunnel-1.example.com"):
        self_signed(tmp_path / f"{host}.crt", tmp_path / f"{host}.key", host)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "main.conf").write_text(
        "daemon off;\nmaster_process off;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        tool, "-p", str(tmp_path), "-c", str(tmp_path / "main.conf")
    )
    try:
        await _wait_listening(port)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def _wait_listening(port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert loop.time() < deadline, "nginx did not start"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_channel_through_nginx(nginx: str, keyset: Any) -> None:
    headers = {"Host": SHARD_HOST, "Origin": ORIGIN}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{nginx}/healthz", headers=headers, ssl=False) as r:
            assert (r.status, await r.text()) == (200, "ok")

        pair = keyset.mint(
            "wss://tunnel-0.example.com/ws",
            aud="flowersec-tunnel:ops-test",
            iss="issuer-ops-test",
        )
        sockets = []
        for grant in (pair.client, pair.server):
            ws = await session.ws_connect(f"{nginx}/ws", headers=headers, ssl=False)
            await ws.send_str(_attach(grant))
            sockets.append(ws)
        client, server = sockets
        await client.send_bytes(b"\x00" * 70000)
        message = await server.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.BINARY
        assert message.data == b"\x00" * 70000
        for ws in sockets:
            await ws.close()

        refused = {"Host": SHARD_HOST, "Origin": "https://evil.example.net"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"{nginx}/ws", headers=refused, ssl=False)
        assert info.value.status == 403


def _attach(grant: Any) -> str:
    return json.dumps(
        {
            "v": 1,
            "channel_id": grant.channel_id,
            "role": grant.role,
            "token": grant.token,
            "endpoint_instance_id": "A" * 32,
        }
    )
