"""Fixtures for the operations tests: deploy files, a keyset, a daemon.

The daemon is started the way the image and the systemd unit start it: the
installed ``flowersec-tunnel`` console script, configured only through the
environment those files set, always listening on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_tunnel.issuer import GrantPair, mint_grant_pair, random_id
from flowersec_tunnel.keys import IssuerKey, write_keyset

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TUNNEL = VENV_BIN / "flowersec-tunnel"
AUD = "flowersec-tunnel:ops-test"
ISS = "issuer-ops-test"
ORIGIN = "https://app.example.com"


def join_continuations(text: str) -> list[str]:
    """Logical lines of a Dockerfile or unit: comments out, ``\\`` joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


@dataclass
class DockerStage:
    """What one build stage declares, as far as the tests need it."""

    image: str
    env: dict[str, str] = field(default_factory=dict)
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, instruction: str) -> str:
        values = [v for k, v in self.instructions if k == instruction]
        assert values, f"no {instruction} in stage {self.image}"
        return values[-1]


def parse_dockerfile(path: Path) -> list[DockerStage]:
    """Split a Dockerfile into stages with their ENV values and instructions."""
    stages: list[DockerStage] = []
    args: dict[str, str] = {}
    for line in join_continuations(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            image = rest.split()[0]
            for name, value in args.items():
                image = image.replace("${" + name + "}", value)
            stages.append(DockerStage(image=image))
            continue
        assert stages, f"instruction before FROM: {line}"
        stage = stages[-1]
        stage.instructions.append((keyword, rest))
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                stage.env[name] = value
    return stages


def parse_unit(path: Path) -> list[tuple[str, str, str]]:
    """A systemd unit or drop-in as (section, key, value) in file order."""
    entries = []
    section = ""
    for line in join_continuations(path.read_text()):
        if line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a key=value line: {line}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an EnvironmentFile / ``--env-file``: KEY=VALUE lines, # comments."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.isidentifier(), f"{path}: bad line {raw!r}"
        env[key] = value
    return env


def base_env() -> dict[str, str]:
    """The test process environment minus any FSEC_TUNNEL_* or systemd keys."""
    drop = ("FSEC_", "NOTIFY_SOCKET", "WATCHDOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass
class Keyset:
    """An issuer key and the tunnel keyset file holding its public half."""

    key: IssuerKey
    path: Path

    def mint(
        self,
        ws_url: str,
        *,
        aud: str = AUD,
        iss: str = ISS,
        key: IssuerKey | None = None,
    ) -> GrantPair:
        """A grant pair for a fresh channel, as a controlplane would mint it."""
        return mint_grant_pair(
            key or self.key,
            tunnel_url=ws_url,
            audience=aud,
            issuer=iss,
            channel_id=random_id(),
        )


def attach_message(grant: ChannelInitGrant) -> str:
    """The attach JSON a reference endpoint sends for its grant."""
    return json.dumps(
        {
            "v": 1,
            "channel_id": grant.channel_id,
            "role": grant.role,
            "token": grant.token,
            "endpoint_instance_id": random_id(),
        }
    )


@dataclass
class Attacher:
    """Opens WebSockets to a daemon and attaches them with grants."""

    session: aiohttp.ClientSession

    async def attach(self, grant: ChannelInitGrant) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(grant.tunnel_url, headers={"Origin": ORIGIN})
        await ws.send_str(attach_message(grant))
        self.tokens.append(grant.token)
        return ws

    async def pair(self, pair: GrantPair) -> None:
        """Attach both roles and prove they are spliced: a message crosses."""
        client = await self.attach(pair.client)
        server = await self.attach(pair.server)
        await client.send_bytes(b"ping through the tunnel")
        message = await server.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        assert message.data == b"ping through the tunnel"
        self.paired.extend([client, server])

    paired: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


@pytest.fixture
async def attacher() -> AsyncIterator[Attacher]:
    async with aiohttp.ClientSession() as session:
        yield Attacher(session)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A bound datagram socket playing systemd's NOTIFY_SOCKET."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
def yaml() -> ModuleType:
    """PyYAML, or a skip where it is not installed (not a project dependency)."""
    return pytest.importorskip("yaml")


@pytest.fixture
def dockerfile() -> list[DockerStage]:
    """The repository's Dockerfile, parsed into its stages."""
    return parse_dockerfile(REPO / "Dockerfile")


@pytest.fixture
def unit_parser() -> Callable[[Path], list[tuple[str, str, str]]]:
    return parse_unit


@pytest.fixture
def env_file_parser() -> Callable[[Path], dict[str, str]]:
    return read_env_file


@pytest.fixture
def keyset(tmp_path: Path) -> Keyset:
    key = IssuerKey.generate("k1")
    path = tmp_path / "issuer_keys.json"
    write_keyset(path, {key.kid: key.public_key})
    return Keyset(key=key, path=path)


class Daemon:
    """A running ``flowersec-tunnel`` process and its ready line."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr
        self.ready: dict[str, Any] = {}

    async def read_ready(self, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line.endswith(b"\n"), f"no ready line; stderr: {self.stderr()}"
        self.ready = json.loads(line)
        return self.ready

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 20) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def wait_for_log(self, text: str, timeout: float = 10) -> None:
        """Poll stderr until ``text`` appears (log lines are flushed per event)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.stderr():
            assert loop.time() < deadline, f"{text!r} not logged: {self.stderr()}"
            await asyncio.sleep(0.05)


StartDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start daemons with a given environment; kill leftovers at teardown."""
    started: list[Daemon] = []

    async def start(
        env: Mapping[str, str], argv: Sequence[str] = (str(TUNNEL),)
    ) -> Daemon:
        stderr = tmp_path / f"daemon-{len(started)}.stderr"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        daemon = Daemon(proc, stderr)
        started.append(daemon)
        await daemon.read_ready()
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.returncode is None:
            daemon.proc.kill()
            await daemon.proc.wait()


def write_self_signed(cert: Path, key: Path, name: str) -> None:
    """Write a throwaway certificate and key for ``name`` (PEM)."""
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def self_signed() -> Callable[[Path, Path, str], None]:
    return write_self_signed
