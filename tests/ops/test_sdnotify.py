"""sd_notify against a real datagram socket, and its environment parsers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_tunnel.sdnotify import (
    Notifier,
    SystemdHooks,
    encode,
    parse_address,
    parse_watchdog,
    settings_from_env,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's notify socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _messages(sock: socket.socket) -> list[dict[str, str]]:
    """Every datagram queued so far, each parsed into its assignments."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096)
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5)
    return out


def test_ready_and_stopping_reach_the_socket(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready(status="listening on 127.0.0.1:1")
    assert notifier.stopping()
    assert _messages(sock) == [
        {"READY": "1", "STATUS": "listening on 127.0.0.1:1"},
        {"STOPPING": "1", "STATUS": "draining"},
    ]


def test_abstract_socket() -> None:
    name = f"fsec-test-{os.getpid()}-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


async def test_watchdog_pings_at_half_the_timeout(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    env = {
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "40000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    notifier = Notifier.from_env(env)
    assert notifier.watchdog_interval == pytest.approx(0.02)
    task = asyncio.create_task(notifier.run_watchdog())
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, sock.recv, 4096)
    second = await loop.run_in_executor(None, sock.recv, 4096)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first == second == b"WATCHDOG=1"


async def test_watchdog_for_another_pid_is_ignored(
    receiver: tuple[socket.socket, str],
) -> None:
    _, path = receiver
    env = {
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "40000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    notifier = Notifier.from_env(env)
    assert notifier.watchdog_interval is None
    await notifier.run_watchdog()


def test_unset_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready()
    assert not notifier.stopping()


def test_missing_listener_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    assert notifier.enabled
    assert not notifier.ready()


def test_relative_or_foreign_socket_is_off() -> None:
    assert not Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert not Notifier.from_env({"NOTIFY_SOCKET": "relative/sock"}).enabled
    assert not Notifier.from_env({"NOTIFY_SOCKET": "@"}).enabled


def test_watchdog_values() -> None:
    assert parse_watchdog("30000000", "", 7) == 15.0
    assert parse_watchdog("30000000", "7", 7) == 15.0
    assert parse_watchdog("30000000", "8", 7) is None
    for bad in ["", "0", "-5", "1.5", " 10", "\uff11\uff10"]:
        assert parse_watchdog(bad, "", 7) is None


def test_encode_rejects_injection() -> None:
    assert encode({"READY": "1", "STATUS": "a=b"}) == b"READY=1\nSTATUS=a=b"
    for key, value in [("", "1"), ("A=B", "1"), ("A\nB", "1"), ("STATUS", "x\ny")]:
        with pytest.raises(ValueError):
            encode({key: value})


@given(st.text(max_size=40))
def test_parse_address_never_raises(value: str) -> None:
    address = parse_address(value)
    if isinstance(address, bytes):
        assert value.startswith("@")
        assert address[:1] == b"\0"
    elif isinstance(address, str):
        assert address == value and value.startswith("/")
    else:
        assert not value.startswith("/")


@given(st.text(max_size=12), st.text(max_size=12), st.integers(1, 2**22))
def test_parse_watchdog_never_raises(usec: str, pid: str, own: int) -> None:
    interval = parse_watchdog(usec, pid, own)
    assert interval is None or interval > 0


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_encode_round_trips_or_refuses(fields: dict[str, str]) -> None:
    try:
        data = encode(fields)
    except ValueError:
        return
    lines = data.decode().split("\n") if fields else []
    assert dict(line.split("=", 1) for line in lines) == fields


def test_settings_ignore_watchdog_without_socket() -> None:
    settings = settings_from_env({"WATCHDOG_USEC": "100"}, own_pid=1)
    assert settings.address is None
    assert settings.watchdog_interval is None


async def test_lifecycle_hooks_report_ready_watchdog_and_stopping(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    hooks = SystemdHooks({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})
    hooks.ready(object())
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, sock.recv, 4096)
    ping = await loop.run_in_executor(None, sock.recv, 4096)
    hooks.draining()
    assert first == b"READY=1\nSTATUS=serving"
    assert ping == b"WATCHDOG=1"
    later = b"WATCHDOG=1"
    while later == b"WATCHDOG=1":
        later = await loop.run_in_executor(None, sock.recv, 4096)
    assert later == b"STOPPING=1\nSTATUS=draining"
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()


def test_lifecycle_hooks_without_systemd_do_nothing() -> None:
    hooks = SystemdHooks({})
    hooks.ready(object())
    hooks.draining()
