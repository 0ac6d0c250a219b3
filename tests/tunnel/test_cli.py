"""``flowersec-tunnel`` as a real process: ready line, signals, TLS, exits."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flowersec_tunnel.keys import IssuerKey, write_keyset

AUD = "flowersec-tunnel:test"
ISS = "issuer-test"
ORIGIN = "https://app.example.com"


def _script() -> str:
    path = Path(sys.executable).with_name("flowersec-tunnel")
    if not path.exists():
        pytest.skip("flowersec-tunnel console script is not installed")
    return str(path)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FSEC_")}


class Proc:
    """A running daemon with its ready line and collected stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]):
        self.proc = proc
        self.ready = ready
        self.stderr = b""

    async def stderr_until(self, needle: bytes, timeout: float = 5.0) -> bytes:
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while needle not in self.stderr:
                chunk = await self.proc.stderr.read(4096)
                if not chunk:
                    break
                self.stderr += chunk
        return self.stderr

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


Spawn = Callable[..., Any]


@pytest.fixture
def keyfile(tmp_path: Path) -> tuple[Path, IssuerKey]:
    key = IssuerKey.generate("k1")
    path = tmp_path / "keys.json"
    write_keyset(path, {key.kid: key.public_key})
    return path, key


@pytest.fixture
async def spawn(keyfile: tuple[Path, IssuerKey]) -> AsyncIterator[Spawn]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*extra: str, keys: Path | None = None) -> Proc:
        args = [
            _script(),
            "--issuer-keys-file",
            str(keys or keyfile[0]),
            "--aud",
            AUD,
            "--iss",
            ISS,
            "--allow-origin",
            ORIGIN,
            *extra,
        ]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line, "no ready line"
        return Proc(proc, json.loads(line))

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def mint(key: IssuerKey, channel_id: str, role: int) -> str:
    import secrets
    import time

    from flowersec_tunnel.tokens import TokenPayload, sign_token

    now = int(time.time())
    return sign_token(
        TokenPayload(
            kid="",
            aud=AUD,
            iss=ISS,
            channel_id=channel_id,
            role=role,
            token_id=secrets.token_urlsafe(16),
            init_exp=now + 120,
            idle_timeout_seconds=60,
            iat=now,
            exp=now + 60,
        ),
        key,
    )


def attach_text(channel_id: str, role: int, token: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "channel_id": channel_id,
            "role": role,
            "token": token,
            "endpoint_instance_id": "A" * 32,
        }
    )


async def attach_outcome(
    url: str, channel_id: str, role: int, token: str, **kwargs: Any
) -> tuple[int | None, str]:
    """Attach; return the close (code, reason), or (None, "") if still open."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"Origin": ORIGIN}, **kwargs) as ws,
    ):
        await ws.send_str(attach_text(channel_id, role, token))
        try:
            msg = await ws.receive(timeout=0.5)
        except TimeoutError:
            return None, ""
        return msg.data, msg.extra or ""


async def test_ready_line_and_healthz(spawn: Spawn) -> None:
    proc = await spawn("--advertise-host", "tunnel.example.com")
    ready = proc.ready
    host, port = ready["listen"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert list(ready) == [
        "version",
        "commit",
        "date",
        "listen",
        "ws_path",
        "advertise_host",
        "ws_url",
        "http_url",
        "healthz_url",
    ]
    assert ready["ws_url"] == f"ws://tunnel.example.com:{port}/ws"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{ready['listen']}/healthz") as resp,
    ):
        assert await resp.read() == b"ok"
    proc.signal(signal.SIGINT)
    assert await proc.wait() == 0


async def test_sighup_reload_good_and_bad(
    spawn: Spawn, keyfile: tuple[Path, IssuerKey]
) -> None:
    path, old = keyfile
    proc = await spawn()
    url = proc.ready["ws_url"]
    assert await attach_outcome(url, "c1", 1, mint(old, "c1", 1)) == (None, "")
    new = IssuerKey.generate("k2")
    write_keyset(path, {new.kid: new.public_key}, overwrite=True)
    proc.signal(signal.SIGHUP)
    await proc.stderr_until(b"reloaded issuer keyset")
    assert await attach_outcome(url, "c2", 1, mint(old, "c2", 1)) == (
        1008,
        "invalid_token",
    )
    assert await attach_outcome(url, "c3", 1, mint(new, "c3", 1)) == (None, "")
    path.write_text("{not json")
    proc.signal(signal.SIGHUP)
    err = await proc.stderr_until(b"reload keys failed")
    assert b"reload keys failed" in err
    assert await attach_outcome(url, "c4", 1, mint(new, "c4", 1)) == (None, "")
    proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_sigterm_drains_with_1001(
    spawn: Spawn, keyfile: tuple[Path, IssuerKey]
) -> None:
    proc = await spawn()
    url = proc.ready["ws_url"]
    key = keyfile[1]
    async with aiohttp.ClientSession() as session:
        waiting = await session.ws_connect(url, headers={"Origin": ORIGIN})
        await waiting.send_str(attach_text("d1", 1, mint(key, "d1", 1)))
        bare = await session.ws_connect(url, headers={"Origin": ORIGIN})
        await asyncio.sleep(0.2)
        proc.signal(signal.SIGTERM)
        for ws in (waiting, bare):
            msg = await ws.receive(timeout=5)
            assert (msg.data, msg.extra) == (1001, "shutdown")
    assert await proc.wait() == 0


async def test_metrics_toggle_with_signals(
    spawn: Spawn, keyfile: tuple[Path, IssuerKey]
) -> None:
    proc = await spawn("--metrics-listen", "127.0.0.1:0")
    metrics_url = proc.ready["metrics_url"]
    url = proc.ready["ws_url"]
    assert await attach_outcome(url, "m1", 1, "bad") == (1008, "invalid_token")
    async with aiohttp.ClientSession() as session:
        async with session.get(metrics_url) as resp:
            text = await resp.text()
        assert resp.status == 200
        for name in (
            "flowersec_tunnel_connections ",
            "flowersec_tunnel_channels ",
            'flowersec_tunnel_attach_total{reason="invalid_token",result="fail"} 1.0',
            "# TYPE flowersec_tunnel_replace_total counter",
            "# TYPE flowersec_tunnel_close_total counter",
            "flowersec_tunnel_pair_latency_seconds_bucket",
            "flowersec_tunnel_encrypted_total 0.0",
        ):
            assert name in text
        assert "_created" not in text
        assert "python_gc" not in text
        proc.signal(signal.SIGUSR2)
        await proc.stderr_until(b"metrics disabled")
        async with session.get(metrics_url) as resp:
            assert resp.status == 404
        proc.signal(signal.SIGUSR1)
        await proc.stderr_until(b"metrics enabled")
        async with session.get(metrics_url) as resp:
            text = await resp.text()
        assert "invalid_token" not in text
    proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_sigusr1_without_metrics_listener(spawn: Spawn) -> None:
    proc = await spawn()
    proc.signal(signal.SIGUSR1)
    await proc.stderr_until(b"metrics server disabled (missing --metrics-listen)")
    proc.signal(signal.SIGUSR2)
    proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls(
    spawn: Spawn, tmp_path: Path, keyfile: tuple[Path, IssuerKey]
) -> None:
    cert, key = _self_signed(tmp_path)
    proc = await spawn(
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--metrics-listen",
        "127.0.0.1:0",
    )
    assert proc.ready["ws_url"].startswith("wss://")
    assert proc.ready["metrics_url"].startswith("https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    async with (
        aiohttp.ClientSession() as session,
        session.get(proc.ready["healthz_url"], ssl=ctx) as resp,
    ):
        assert await resp.read() == b"ok"
    outcome = await attach_outcome(
        proc.ready["ws_url"], "t1", 1, mint(keyfile[1], "t1", 1), ssl=ctx
    )
    assert outcome == (None, "")
    proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0


def _run(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_script(), *args], capture_output=True, timeout=timeout, env=_env()
    )


def test_exit_codes(tmp_path: Path, keyfile: tuple[Path, IssuerKey]) -> None:
    missing = _run("--allow-origin", "x")
    assert missing.returncode == 2
    assert missing.stderr.startswith(b"missing --issuer-keys-file, --aud, or --iss")
    assert b"Usage of flowersec-tunnel" in missing.stderr
    assert _run("--help").returncode == 0
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.count(b"\n") == 1
    common = ["--aud", "a", "--iss", "i", "--allow-origin", "x"]
    bad_keys = tmp_path / "bad.json"
    bad_keys.write_text('{"keys": []}')
    result = _run("--issuer-keys-file", str(bad_keys), *common)
    assert result.returncode == 1 and result.stdout == b""
    good = str(keyfile[0])
    bad_cert = tmp_path / "c.pem"
    bad_cert.write_text("nope")
    result = _run(
        "--issuer-keys-file",
        good,
        *common,
        "--tls-cert-file",
        str(bad_cert),
        "--tls-key-file",
        str(bad_cert),
    )
    assert result.returncode == 1 and result.stdout == b""
    result = _run(
        "--issuer-keys-file", good, *common, "--max-write-queue-bytes", "1000"
    )
    assert result.returncode == 1
    result = _run("--issuer-keys-file", good, *common, "--listen", "nonsense")
    assert result.returncode == 1 and result.stdout == b""


async def test_dev_mode_hint_mints_a_working_pair() -> None:
    proc = await asyncio.create_subprocess_exec(
        _script(),
        "--dev",
        "--listen",
        "127.0.0.1:0",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        await asyncio.wait_for(proc.stderr.readline(), 5)
        hint = (await asyncio.wait_for(proc.stderr.readline(), 5)).decode().split()
        assert hint[0] == "flowersec-channelinit"
        assert hint[hint.index("--tunnel-url") + 1] == ready["ws_url"]
        tool = Path(sys.executable).with_name("flowersec-channelinit")
        minted = subprocess.run(
            [str(tool), *hint[1:]], capture_output=True, timeout=15, env=_env()
        )
        assert minted.returncode == 0, minted.stderr
        grants = json.loads(minted.stdout)
        async with aiohttp.ClientSession() as session:
            sockets = []
            for name in ("grant_client", "grant_server"):
                grant = grants[name]
                ws = await session.ws_connect(
                    grant["tunnel_url"], headers={"Origin": "http://localhost:5173"}
                )
                await ws.send_str(
                    attach_text(grant["channel_id"], grant["role"], grant["token"])
                )
                sockets.append(ws)
            await sockets[0].send_bytes(b"dev works")
            assert await sockets[1].receive_bytes(timeout=5) == b"dev works"
            for ws in sockets:
                await ws.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
