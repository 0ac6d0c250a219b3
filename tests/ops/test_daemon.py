"""The daemon started exactly as the image and the systemd unit start it.

Each test builds the process environment from the deploy files themselves
(the Dockerfile's ENV and ENTRYPOINT, the unit's Environment= lines and its
EnvironmentFile, which is config/tunnel.env.example), changing only what a
test must: loopback addresses with free ports instead of 0.0.0.0:8080, and
the keyset path of a temporary directory instead of /etc/flowersec.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowersec_tunnel.keys import IssuerKey, write_keyset

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "flowersec-tunnel.service"
ENV_EXAMPLE = REPO / "config" / "tunnel.env.example"
ORIGIN = "https://app.example.com"
# Tests bind loopback only; the deploy files' own addresses are asserted.
LOOPBACK_ANY_PORT = "127.0.0.1:0"


def _base_env() -> dict[str, str]:
    """This process's environment without FSEC_* or systemd variables."""
    drop = ("FSEC_", "NOTIFY_SOCKET", "WATCHDOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _image_env(final: Any, venv_bin: Path, keys: Path) -> dict[str, str]:
    """The image's environment, with this venv where the image has its own."""
    env = _base_env()
    for name, value in final.env.items():
        env[name] = value.replace("$PATH", env.get("PATH", ""))
    env["PATH"] = env["PATH"].replace("/opt/flowersec/bin", str(venv_bin))
    assert env["FSEC_TUNNEL_LISTEN"] == "0.0.0.0:8080"
    assert env["FSEC_TUNNEL_ISSUER_KEYS_FILE"] == "/etc/flowersec/issuer_keys.json"
    env["FSEC_TUNNEL_LISTEN"] = LOOPBACK_ANY_PORT
    env["FSEC_TUNNEL_ISSUER_KEYS_FILE"] = str(keys)
    # What `docker run -e` must supply: the image has no default for these.
    env["FSEC_TUNNEL_AUD"] = "flowersec-tunnel:ops-test"
    env["FSEC_TUNNEL_ISS"] = "issuer-ops-test"
    env["FSEC_TUNNEL_ALLOW_ORIGIN"] = ORIGIN
    return env


async def test_image_command_line_serves_and_passes_its_healthcheck(
    dockerfile: list[Any], keyset: Any, start_daemon: Any, tmp_path: Path
) -> None:
    _, final = dockerfile
    venv_bin = Path(sys.executable).parent
    env = _image_env(final, venv_bin, keyset.path)
    entrypoint = json.loads(final.last("ENTRYPOINT"))
    program = shutil.which(entrypoint[0], path=env["PATH"])
    assert program is not None and Path(program).parent == venv_bin

    daemon = await start_daemon(env, [program, *entrypoint[1:]])
    ready = daemon.ready
    assert list(ready)[:5] == ["version", "commit", "date", "listen", "ws_path"]
    host, port = ready["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and ready["ws_url"].endswith(f":{port}/ws")
    async with (
        aiohttp.ClientSession() as session,
        session.get(ready["healthz_url"]) as response,
    ):
        assert response.status == 200
        assert await response.text() == "ok"

    check = json.loads(final.last("HEALTHCHECK").split(" CMD ", 1)[1])
    probe_env = {**env, "FSEC_TUNNEL_LISTEN": f"0.0.0.0:{port}"}
    assert await _run(check, probe_env) == 0

    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0
    assert await _run(check, probe_env) != 0


async def _run(argv: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


def _unit_env(
    service: list[tuple[str, str]],
    env_file: dict[str, str],
) -> dict[str, str]:
    """Environment= lines first, then the EnvironmentFile (which wins)."""
    env = _base_env()
    for key, value in service:
        if key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                env[name] = val
    env.update(env_file)
    return env


async def _datagrams(sock: socket.socket, want: bytes, timeout: float = 10) -> None:
    """Read notify datagrams until one equals ``want``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            if sock.recv(4096) == want:
                return
        except BlockingIOError:
            assert loop.time() < deadline, f"no {want!r} from the daemon"
            await asyncio.sleep(0.02)


async def test_systemd_unit_lifecycle(
    unit_parser: Callable[[Path], list[tuple[str, str, str]]],
    env_file_parser: Callable[[Path], dict[str, str]],
    keyset: Any,
    start_daemon: Any,
    attacher: Any,
    notify_socket: socket.socket,
    tmp_path: Path,
) -> None:
    service = [(k, v) for s, k, v in unit_parser(UNIT) if s == "Service"]
    settings = dict(service)
    assert settings["ExecStart"] == "/opt/flowersec/bin/flowersec-tunnel"
    env_file = env_file_parser(ENV_EXAMPLE)
    env = _unit_env(service, env_file)
    assert env["FSEC_TUNNEL_LISTEN"] == "127.0.0.1:8080"
    env["FSEC_TUNNEL_LISTEN"] = LOOPBACK_ANY_PORT
    env["FSEC_TUNNEL_METRICS_LISTEN"] = LOOPBACK_ANY_PORT
    env["FSEC_TUNNEL_ISSUER_KEYS_FILE"] = str(keyset.path)
    # systemd sets these; the unit's WatchdogSec (30 s) shortened to 0.2 s.
    env["NOTIFY_SOCKET"] = notify_socket.getsockname()
    env["WATCHDOG_USEC"] = "200000"
    aud, iss = env["FSEC_TUNNEL_AUD"], env["FSEC_TUNNEL_ISS"]
    assert ORIGIN in env["FSEC_TUNNEL_ALLOW_ORIGIN"].split(",")

    daemon = await start_daemon(env)
    ready = daemon.ready
    await _datagrams(notify_socket, b"READY=1\nSTATUS=serving")
    await _datagrams(notify_socket, b"WATCHDOG=1")
    ws_url = ready["ws_url"]
    await attacher.pair(keyset.mint(ws_url, aud=aud, iss=iss))

    # ExecReload, with $MAINPID as systemd substitutes it: a new keyset.
    reload = shlex.split(settings["ExecReload"].replace("$MAINPID", str(daemon.pid)))
    rotated = IssuerKey.generate("k2")
    write_keyset(keyset.path, {rotated.kid: rotated.public_key}, overwrite=True)
    subprocess.run(reload, check=True, timeout=10)
    await daemon.wait_for_log("reloaded issuer keyset")
    await attacher.pair(keyset.mint(ws_url, aud=aud, iss=iss, key=rotated))
    stale = await attacher.attach(keyset.mint(ws_url, aud=aud, iss=iss).client)
    closed = await stale.receive(timeout=10)
    assert (closed.type, closed.data, closed.extra) == (
        aiohttp.WSMsgType.CLOSE,
        1008,
        "invalid_token",
    )

    # A broken file is refused and the keys in force stay.
    keyset.path.write_text("{not json")
    subprocess.run(reload, check=True, timeout=10)
    await daemon.wait_for_log("reload keys failed")
    await attacher.pair(keyset.mint(ws_url, aud=aud, iss=iss, key=rotated))

    async with (
        aiohttp.ClientSession() as session,
        session.get(ready["metrics_url"]) as response,
    ):
        metrics = await response.text()
    attaches = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "flowersec_tunnel_attach_total"
    }
    assert attaches == {"ok": 6, "invalid_token": 1}

    # KillSignal: the drain closes every endpoint with 1001 and exits 0.
    assert settings["KillSignal"] == "SIGTERM"
    daemon.send(signal.SIGTERM)
    await _datagrams(notify_socket, b"STOPPING=1\nSTATUS=draining")
    for ws in attacher.paired:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert message.data == 1001
    stop_timeout = int(settings["TimeoutStopSec"].removesuffix("s"))
    assert await daemon.wait(timeout=stop_timeout) == 0
    logs = daemon.stderr()
    for line in logs.splitlines():
        event = json.loads(line)
        assert {"event", "level", "timestamp"} <= event.keys()
    assert "FST2." not in logs
    for token in attacher.tokens:
        assert token not in logs
        assert token.rsplit(".", 1)[-1] not in logs


MDWE_EXEC = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(3)
os.execv(sys.argv[1], sys.argv[1:])
"""


async def test_daemon_runs_without_writable_executable_memory(
    keyset: Any, start_daemon: Any, attacher: Any
) -> None:
    """The unit's MemoryDenyWriteExecute=yes, checked with the kernel's MDWE."""
    probe = subprocess.run(
        [sys.executable, "-c", MDWE_EXEC, "/bin/true"], check=False, timeout=30
    )
    if probe.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert probe.returncode == 0
    env = _base_env() | {
        "FSEC_TUNNEL_LISTEN": LOOPBACK_ANY_PORT,
        "FSEC_TUNNEL_ISSUER_KEYS_FILE": str(keyset.path),
        "FSEC_TUNNEL_AUD": "flowersec-tunnel:ops-test",
        "FSEC_TUNNEL_ISS": "issuer-ops-test",
        "FSEC_TUNNEL_ALLOW_ORIGIN": ORIGIN,
    }
    tunnel = str(Path(sys.executable).parent / "flowersec-tunnel")
    daemon = await start_daemon(env, [sys.executable, "-c", MDWE_EXEC, tunnel])
    assert "flowersec-tunnel" in Path(f"/proc/{daemon.pid}/cmdline").read_text()
    await attacher.pair(keyset.mint(daemon.ready["ws_url"]))
    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0
