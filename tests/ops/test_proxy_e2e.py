"""The nginx and Caddy examples in front of a real daemon.

Each runs only where its server is installed. The example files are used
as written except for what cannot be on a test machine: ports become free
loopback ports, nginx gets throwaway certificates, and Caddy issues its own
from its internal CA instead of asking a public one, with its admin API
and HTTP redirects off.
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
CADDY_EXAMPLE = REPO / "deploy" / "proxy" / "Caddyfile"
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


@pytest.fixture(params=["nginx", "caddy"])
async def proxy(
    request: pytest.FixtureRequest,
    daemon: Any,
    tmp_path: Path,
    self_signed: Callable[[Path, Path, str], None],
) -> AsyncIterator[str]:
    """Run one example in front of ``daemon``; yield the proxy's base URL."""
    tool = shutil.which(request.param)
    if tool is None:
        pytest.skip(f"{request.param} is not installed")
    tunnel_port = daemon.ready["listen"].rsplit(":", 1)[1]
    port = _free_port()
    if request.param == "nginx":
        argv = _nginx(tool, tmp_path, port, tunnel_port, self_signed)
        env = None
    else:
        argv = _caddy(tool, tmp_path, port, tunnel_port)
        home = str(tmp_path)
        env = {"HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_listening(port)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def _nginx(
    tool: str,
    tmp_path: Path,
    port: int,
    tunnel_port: str,
    self_signed: Callable[[Path, Path, str], None],
) -> list[str]:
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
    return [tool, "-p", str(tmp_path), "-c", str(tmp_path / "main.conf")]


def _caddy(tool: str, tmp_path: Path, port: int, tunnel_port: str) -> list[str]:
    site = CADDY_EXAMPLE.read_text()
    test_globals = (
        "{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n"
        f"\thttp_port {_free_port()}\n\thttps_port {port}\n\tservers {{"
    )
    site = site.replace("{\n\tservers {", test_globals, 1)
    for host in ("tunnel-0.example.com", "tunnel-1.example.com"):
        site = site.replace(f"{host} {{", f"{host}:{port} {{\n\tbind 127.0.0.1")
    site = site.replace("\ttls {\n", "\ttls internal {\n")
    site = site.replace("127.0.0.1:8080", f"127.0.0.1:{tunnel_port}")
    path = tmp_path / "Caddyfile"
    path.write_text(site)
    return [tool, "run", "--adapter", "caddyfile", "--config", str(path)]


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


async def test_channel_through_proxy(proxy: str, keyset: Any) -> None:
    headers = {"Host": SHARD_HOST, "Origin": ORIGIN}
    tls = {"ssl": False, "server_hostname": SHARD_HOST}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy}/healthz", headers=headers, **tls) as r:
            assert (r.status, await r.text()) == (200, "ok")

        pair = keyset.mint(
            "wss://tunnel-0.example.com/ws",
            aud="flowersec-tunnel:ops-test",
            iss="issuer-ops-test",
        )
        sockets = []
        for grant in (pair.client, pair.server):
            ws = await session.ws_connect(f"{proxy}/ws", headers=headers, **tls)
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
            await session.ws_connect(f"{proxy}/ws", headers=refused, **tls)
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
