"""Start ``flowersec-tunnel`` as a child process (demo, load generator, tests).

The tunnel gets a keyset holding the caller's issuer public key and the
same audience, issuer and allowed Origin, so the grants the caller mints
are accepted. Its log goes to a file next to the keyset, keeping the
caller's own stderr for its output; both are removed when the tunnel
stops, and the log's tail is shown if it failed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flowersec_endpoint.encoding import DecodeError, b64u_encode, loads_object

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
LOG_TAIL_BYTES = 2000
DEFAULT_MAX_CONNS = 12000
DEFAULT_MAX_CHANNELS = 6000


class TunnelStartError(RuntimeError):
    """The tunnel exited or printed no usable ready line in time."""


@dataclass
class SpawnedTunnel:
    """A running tunnel child: its pid, URL and files."""

    process: subprocess.Popen[bytes]
    ws_url: str
    workdir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        """The tunnel's process id (for RSS sampling)."""
        return self.process.pid

    def stop(self) -> tuple[int, str]:
        """Stop the tunnel and remove its files; return status and log tail.

        SIGTERM first (graceful drain), SIGKILL if it lingers.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        tail = _tail(self.log_path)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode, tail


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace").strip()
    except OSError as exc:
        return f"(log unreadable: {exc})"


def tunnel_command() -> list[str]:
    """The console script of this installation, else the one on PATH."""
    local = Path(sys.executable).with_name("flowersec-tunnel")
    if local.exists():
        return [str(local)]
    found = shutil.which("flowersec-tunnel")
    if found is None:
        raise TunnelStartError("flowersec-tunnel is not installed")
    return [found]


def write_keyset(path: Path, kid: str, public_key: bytes) -> None:
    """Write a one-key keyset file in the tunnel's format (tunnel.md §2.2)."""
    body = {"keys": [{"kid": kid, "pubkey_b64u": b64u_encode(public_key)}]}
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")


def spawn_tunnel(
    *,
    kid: str,
    public_key: bytes,
    aud: str,
    iss: str,
    origin: str,
    channels: int,
    extra_args: list[str] | None = None,
) -> SpawnedTunnel:
    """Start the tunnel, wait for its ready line and return its ws_url.

    The connection and channel limits are raised above the defaults only when
    the run needs more (two connections per channel plus headroom), so that
    ordinary runs measure the default configuration as the reference does.
    """
    workdir = Path(tempfile.mkdtemp(prefix="flowersec-loadgen-"))
    keyset = workdir / "keyset.json"
    write_keyset(keyset, kid, public_key)
    log_path = workdir / "tunnel.log"
    args = [
        *tunnel_command(),
        "--listen",
        "127.0.0.1:0",
        "--issuer-keys-file",
        str(keyset),
        "--aud",
        aud,
        "--iss",
        iss,
        "--allow-origin",
        origin,
    ]
    if 2 * channels + 64 > DEFAULT_MAX_CONNS:
        args += ["--max-conns", str(2 * channels + 64)]
    if channels + 32 > DEFAULT_MAX_CHANNELS:
        args += ["--max-channels", str(channels + 32)]
    args += extra_args or []
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSEC_TUNNEL_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
        )
    try:
        ws_url = _read_ready_line(process, log_path)
    except BaseException:
        process.kill()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return SpawnedTunnel(process, ws_url, workdir, log_path)


def _read_ready_line(process: subprocess.Popen[bytes], log_path: Path) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    buffer = b""
    fd = process.stdout.fileno()
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TunnelStartError(f"no ready line within {READY_TIMEOUT:g} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            status = process.wait()
            raise TunnelStartError(
                f"tunnel exited with status {status}: {_tail(log_path)}"
            )
        buffer += chunk
    line = buffer.split(b"\n", 1)[0]
    try:
        ready = loads_object(line)
    except DecodeError as exc:
        raise TunnelStartError(f"unreadable ready line: {exc}") from exc
    ws_url = ready.get("ws_url")
    if not isinstance(ws_url, str) or not ws_url:
        raise TunnelStartError("ready line has no ws_url")
    return ws_url
