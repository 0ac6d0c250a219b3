"""Listen addresses bind one socket, as Go's ``net.Listen`` (tunnel.md §9.1, §9.3).

With port 0 the ready line's port must be the one every client can reach,
so an empty host is one dual-stack socket rather than one per family.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from flowersec_tunnel.server import listen_socket

if TYPE_CHECKING:
    from .conftest import StartTunnel


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_empty_host_is_one_dual_stack_port(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(listen=":0")
    host, port = tun.server.listen.rsplit(":", 1)
    assert host == "[::]"
    for address in ("127.0.0.1", "[::1]"):
        async with tun.session.get(f"http://{address}:{port}/healthz") as resp:
            assert await resp.text() == "ok"


def test_a_name_binds_its_first_ipv4_address() -> None:
    sock = listen_socket("localhost", 0, 8)
    try:
        assert sock.family == socket.AF_INET
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
