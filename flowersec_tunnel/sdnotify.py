"""The systemd notification protocol (sd_notify), spoken without a library.

Under ``Type=notify`` systemd waits for ``READY=1`` before it treats the
unit as started, so dependants and ``systemctl start`` only return once the
listeners are really bound. The protocol is one datagram of ``KEY=VALUE``
lines to the socket named by ``NOTIFY_SOCKET``; when that variable is unset
(a plain shell, a container) every call here does nothing.

Only filesystem paths and abstract (``@``-prefixed) socket names are
understood; any other ``NOTIFY_SOCKET`` form (such as ``vsock:``) turns
notifications off with a warning instead of failing the start.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from .logs import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """What the service manager asked for, read from the environment."""

    address: str | bytes | None
    """Where datagrams go: a path, an abstract name (bytes), or None (off)."""

    watchdog_interval: float | None
    """Seconds between ``WATCHDOG=1`` pings (half the timeout), or None."""


def parse_address(value: str) -> str | bytes | None:
    """Turn ``NOTIFY_SOCKET`` into a socket address, or None if unusable.

    ``@name`` is the Linux abstract namespace, written with a leading NUL
    byte on the wire; other values must be absolute paths.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def parse_watchdog(usec: str, pid: str, own_pid: int) -> float | None:
    """Return the ping interval for ``WATCHDOG_USEC``/``WATCHDOG_PID``.

    The watchdog applies to this process only when ``WATCHDOG_PID`` is
    unset or names it (a manager may set it for a different main process).
    Pinging at half the timeout leaves a whole half as margin for a busy
    event loop. An empty, malformed or non-positive value means no watchdog.
    """
    if not usec.isascii() or not usec.isdecimal() or int(usec) <= 0:
        return None
    if pid and (not pid.isascii() or not pid.isdecimal() or int(pid) != own_pid):
        return None
    return int(usec) / 2_000_000


def settings_from_env(
    env: Mapping[str, str], own_pid: int | None = None
) -> NotifySettings:
    """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
    pid = os.getpid() if own_pid is None else own_pid
    raw = env.get("NOTIFY_SOCKET", "")
    address = parse_address(raw) if raw else None
    if raw and address is None:
        _log.warning("sd_notify_unsupported_socket", notify_socket=raw)
    interval = None
    if address is not None:
        interval = parse_watchdog(
            env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", ""), pid
        )
    return NotifySettings(address=address, watchdog_interval=interval)


def encode(fields: Mapping[str, str]) -> bytes:
    """Serialise assignments as the newline-separated datagram body."""
    lines = []
    for key, value in fields.items():
        if not key or "=" in key or "\n" in key or "\n" in value:
            raise ValueError(f"bad sd_notify field {key!r}")
        lines.append(f"{key}={value}")
    return "\n".join(lines).encode()


class Notifier:
    """Sends lifecycle states to the service manager, if there is one.

    Each message uses a short-lived socket, as libsystemd does, so nothing
    needs closing. Sends never block the event loop (``MSG_DONTWAIT``); a
    send that fails is logged as a warning and reported as False, because a
    daemon that serves traffic should not die for a missing supervisor.
    """

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Build from the process environment (or a given mapping)."""
        return cls(settings_from_env(os.environ if env is None else env))

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._settings.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings, None when no watchdog is armed."""
        return self._settings.watchdog_interval

    def send(self, **fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True if it went out."""
        address = self._settings.address
        if address is None:
            return False
        data = encode(fields)
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        try:
            with socket.socket(socket.AF_UNIX, kind) as sock:
                sock.sendto(data, socket.MSG_DONTWAIT, address)
        except OSError as exc:
            _log.warning("sd_notify_failed", fields=sorted(fields), error=str(exc))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tell the manager the listeners are bound and serving."""
        if status:
            return self.send(READY="1", STATUS=status)
        return self.send(READY="1")

    def stopping(self) -> bool:
        """Tell the manager a graceful drain has begun."""
        return self.send(STOPPING="1", STATUS="draining")

    def watchdog(self) -> bool:
        """Prove liveness to the manager's watchdog."""
        return self.send(WATCHDOG="1")

    async def run_watchdog(self) -> None:
        """Ping the watchdog until cancelled; returns at once if none is armed.

        The pings come from the event loop itself, so a wedged loop stops
        them and systemd restarts the daemon.
        """
        interval = self._settings.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)


class SystemdHooks:
    """Daemon lifecycle callbacks that report to systemd, inert without it.

    The environment is read when the listeners are up, not at import, so
    in-process tests and embedders are unaffected unless they set
    ``NOTIFY_SOCKET`` themselves. The watchdog task keeps running through
    the drain (which is bounded well below any sensible ``WatchdogSec``)
    and ends with the event loop.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env
        self._notifier: Notifier | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def ready(self, server: object) -> None:
        """Listeners bound, ready line printed: send READY=1, arm the watchdog."""
        notifier = Notifier.from_env(self._env)
        self._notifier = notifier
        if not notifier.enabled:
            return
        notifier.ready(status="serving")
        if notifier.watchdog_interval is not None:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.create_task(notifier.run_watchdog())

    def draining(self) -> None:
        """Shutdown drain started: send STOPPING=1."""
        if self._notifier is not None:
            self._notifier.stopping()
