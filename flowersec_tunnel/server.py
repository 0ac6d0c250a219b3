"""Listeners of one tunnel process: bind, describe, drain, stop.

Used by the CLI and, in-process, by tests and benchmarks. TLS files are
loaded before anything is bound, so a broken certificate fails the start
instead of surfacing after the ready line (tunnel.md §9.2 [weak]).

HTTP-phase limits (§4.5): a new connection has 5 s for its first request's
headers (``headerdeadline``); later requests on a kept-alive connection,
and idle ones, are cut by aiohttp's 60 s keep-alive timer. There is no
whole-request timeout (the tunnel takes no request bodies). While headers
arrive a connection holds at most 128 lines of 32 KiB each; their 32 KiB
total is checked once they are complete (``app``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import headerdeadline, wslimit
from .app import MAX_HEADER_BYTES, create_app, create_metrics_app
from .config import ConfigError, TunnelConfig
from .goflags import build_info
from .origin import split_host_port
from .replay import ReplayStore
from .runtime import TunnelRuntime

KEEPALIVE_TIMEOUT = 60.0
BACKLOG = 1024


def tls_context(config: TunnelConfig) -> ssl.SSLContext | None:
    """Server TLS context (TLS 1.2 minimum, HTTP/1.1 only), or None.

    Raises :class:`ConfigError` when the files cannot be loaded.
    """
    if not config.tls_cert_file:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"load TLS certificate and key: {exc}") from None
    return ctx


def parse_listen(address: str) -> tuple[str | None, int]:
    """Split a Go listen address (``host:port``).

    An empty host means every interface, an empty port a free one.
    """
    parts = split_host_port(address)
    if parts is None:
        raise ConfigError(f"invalid listen address {address!r}")
    host, port = parts
    if port and (not port.isdigit() or int(port) > 65535):
        raise ConfigError(f"invalid port in listen address {address!r}")
    return host or None, int(port or 0)


def listen_socket(host: str | None, port: int, backlog: int) -> socket.socket:
    """Bind one listening socket the way Go's ``net.Listen("tcp", …)`` does.

    No host means a dual-stack socket on ``::`` (plain ``0.0.0.0`` where
    IPv6 is missing); a name that resolves to several addresses binds the
    first IPv4 one, else the first. One socket means one port, so the
    ready line's port 0 answer holds for every client. Raises ``OSError``.
    """
    if not host:
        try:
            sock = _bound(socket.AF_INET6, ("::", port), dual_stack=True)
        except OSError:
            sock = _bound(socket.AF_INET, ("0.0.0.0", port), dual_stack=False)
    else:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = next(
            (info for info in infos if info[0] == socket.AF_INET), infos[0]
        )
        sock = _bound(family, address, dual_stack=False)
    try:
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _bound(family: int, address: Any, *, dual_stack: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, not dual_stack)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: brackets around IPv6 hosts."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TunnelServer:
    """The main listener (WebSocket, ``/healthz``) and the optional metrics one."""

    def __init__(
        self,
        config: TunnelConfig,
        keys: Mapping[str, bytes],
        *,
        replay: ReplayStore | None = None,
    ) -> None:
        self.config = config
        self.runtime = TunnelRuntime(config, keys, replay=replay)
        self._runners: list[web.AppRunner] = []
        self._sites: list[web.SockSite] = []
        self.listen = ""
        """Bound main address as ``host:port`` (set by :meth:`start`)."""
        self.metrics_listen = ""
        self._deadlines: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Validate, then bind metrics (if configured) and the main listener."""
        cfg = self.config
        cfg.validate()
        wslimit.check_support()
        headerdeadline.check_support()
        ctx = tls_context(cfg)
        if cfg.metrics_listen:
            self.runtime.metrics.enable()
            app = create_metrics_app(self.runtime.metrics)
            self.metrics_listen = await self._bind(app, cfg.metrics_listen, ctx)
        self.listen = await self._bind(create_app(self.runtime), cfg.listen, ctx)
        self.runtime.start()
        loop = asyncio.get_running_loop()
        self._deadlines = loop.create_task(self._header_deadlines())

    async def _header_deadlines(self) -> None:
        """Cut connections that send no complete request in time (§4.5)."""
        loop = asyncio.get_running_loop()
        deadline = headerdeadline.FirstRequestDeadline(self.config.header_timeout)
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            connections = [
                handler
                for runner in self._runners
                if runner.server is not None
                for handler in runner.server.connections
            ]
            deadline.sweep(connections, loop.time())

    async def _bind(
        self, app: web.Application, address: str, ctx: ssl.SSLContext | None
    ) -> str:
        host, port = parse_listen(address)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            max_field_size=MAX_HEADER_BYTES,
            max_line_size=MAX_HEADER_BYTES,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runners.append(runner)
        try:
            sock = listen_socket(host, port, BACKLOG)
        except OSError as exc:
            raise ConfigError(f"listen {address}: {exc.strerror or exc}") from None
        site = web.SockSite(runner, sock, ssl_context=ctx, backlog=BACKLOG)
        await site.start()
        self._sites.append(site)
        bound = runner.addresses[-1]
        return join_host_port(str(bound[0]), int(bound[1]))

    def ready_fields(self) -> dict[str, Any]:
        """The ready line object of §9.3, members in the reference order."""
        cfg = self.config
        info = build_info()
        tls = cfg.tls_cert_file != ""
        ws_scheme, http_scheme = ("wss", "https") if tls else ("ws", "http")
        fields: dict[str, Any] = {
            "version": info.version,
            "commit": info.commit,
            "date": info.date,
            "listen": self.listen,
            "ws_path": cfg.ws_path,
        }
        hostport = self.listen
        advertise = cfg.advertise_host.strip()
        metrics_host_port = self.metrics_listen
        if advertise:
            fields["advertise_host"] = cfg.advertise_host
            hostport = _advertised(advertise, self.listen)
            if self.metrics_listen:
                metrics_host_port = _advertised(
                    _host_only(advertise), self.metrics_listen
                )
        fields["ws_url"] = f"{ws_scheme}://{hostport}{cfg.ws_path}"
        fields["http_url"] = f"{http_scheme}://{hostport}"
        fields["healthz_url"] = f"{http_scheme}://{hostport}/healthz"
        if self.metrics_listen:
            fields["metrics_url"] = f"{http_scheme}://{metrics_host_port}/metrics"
        return fields

    async def stop_accepting(self) -> None:
        """Close the listening sockets; open connections stay."""
        for site in self._sites:
            await site.stop()
        self._sites.clear()

    async def shutdown(self) -> bool:
        """Drain (1001 to every endpoint, bounded) and release everything.

        Returns False when some connection outlived the drain timeout (it
        is then cut by the runner cleanup).
        """
        await self.stop_accepting()
        self.runtime.begin_drain()
        drained = await self.runtime.wait_drained(self.config.drain_timeout)
        await self.close()
        return drained

    async def close(self) -> None:
        """Stop everything without draining (used after a failed start)."""
        if self._deadlines is not None:
            self._deadlines.cancel()
            await asyncio.gather(self._deadlines, return_exceptions=True)
            self._deadlines = None
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        self._sites.clear()
        await self.runtime.stop()


def _host_only(advertise: str) -> str:
    """The host part of an advertise value, for the metrics URL."""
    authority = urlsplit(advertise).netloc if "://" in advertise else advertise
    parts = split_host_port(authority)
    return parts[0] if parts is not None else authority.strip("[]")


def _advertised(advertise: str, bound: str) -> str:
    """Apply §9.3's advertise-host rule against the bound ``host:port``."""
    if "://" in advertise:
        try:
            authority = urlsplit(advertise).netloc.rpartition("@")[2]
        except ValueError:
            raise ConfigError(f"invalid advertise host {advertise!r}") from None
        if not authority:
            raise ConfigError(f"invalid advertise host {advertise!r}")
    else:
        authority = advertise
    parts = split_host_port(authority)
    if parts is not None and parts[1]:
        return authority
    host = authority.strip("[]") if parts is None else parts[0]
    bound_parts = split_host_port(bound)
    port = bound_parts[1] if bound_parts is not None else ""
    return join_host_port(host, int(port)) if port.isdigit() else authority
