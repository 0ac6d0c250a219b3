"""Lifetime of one established connection, shared by both roles.

A connection is a WebSocket carrying a secure channel carrying a Yamux
session. This base class owns the teardown order, the keepalive task and
the one thing the reference lacks: :meth:`Connection.wait_closed`, which
resolves as soon as any layer ends, so an application learns that its
peer or the tunnel went away without having to make a call first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from flowersec_endpoint.e2ee.channel import SecureChannel
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.stack import Stream, open_kind_stream
from flowersec_endpoint.yamux.session import YamuxSession

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


class Connection:
    """Secure channel + Yamux session + keepalive, closed as one unit."""

    def __init__(
        self,
        *,
        path: Path,
        endpoint_instance_id: str | None,
        secure: SecureChannel,
        mux: YamuxSession,
        close_socket: Closer,
        keepalive_interval: float,
    ) -> None:
        self.path = path
        self.endpoint_instance_id = endpoint_instance_id
        self.secure = secure
        self.mux = mux
        self._close_socket = close_socket
        self._extra_closers: list[Closer] = []
        self._done: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._closing = False
        self._tasks = [asyncio.create_task(self._watch())]
        if keepalive_interval > 0:
            self._tasks.append(asyncio.create_task(self._keepalive(keepalive_interval)))

    @property
    def closed(self) -> bool:
        """True once the connection has ended or is closing."""
        return self._closing

    async def open_stream(self, kind: str) -> Stream:
        """Open a Yamux stream and write its StreamHello of ``kind``."""
        if not kind:
            raise FlowersecError(
                self.path,
                Stage.VALIDATE,
                Code.MISSING_STREAM_KIND,
                "stream kind is empty",
            )
        if self._closing:
            raise FlowersecError(
                self.path, Stage.YAMUX, Code.OPEN_STREAM_FAILED, "connection is closed"
            )
        return await open_kind_stream(self.path, self.mux, kind)

    async def ping(self) -> None:
        """Send one encrypted ping record (keeps the tunnel's idle timer quiet)."""
        if self._closing:
            raise FlowersecError(
                self.path, Stage.SECURE, Code.PING_FAILED, "connection is closed"
            )
        try:
            await self.secure.ping()
        except Exception as exc:
            raise FlowersecError(
                self.path, Stage.SECURE, Code.PING_FAILED, "ping failed", exc
            ) from exc

    async def close(self) -> None:
        """Close every layer, top down; idempotent."""
        await self._shutdown(None)

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection ends; return why (``None`` after close())."""
        return await asyncio.shield(self._done)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _on_close(self, closer: Closer) -> None:
        """Run ``closer`` first when the connection shuts down."""
        self._extra_closers.append(closer)

    async def _watch(self) -> None:
        secure_end: asyncio.Future[BaseException | None] = asyncio.ensure_future(
            self.secure.wait_closed()
        )
        mux_end: asyncio.Future[None] = asyncio.ensure_future(self.mux.wait_closed())
        ends: set[asyncio.Future[Any]] = {secure_end, mux_end}
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            reason: BaseException | None = None
            if secure_end.done():
                reason = secure_end.result()
            if reason is None:
                reason = self.mux.error
        finally:
            for end in ends:
                end.cancel()
        await self._shutdown(reason or ConnectionError("connection closed by peer"))

    async def _keepalive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.secure.ping()
            except Exception as exc:
                log.debug("keepalive_failed path=%s error=%r", self.path, exc)
                failure = FlowersecError(
                    self.path,
                    Stage.SECURE,
                    Code.PING_FAILED,
                    "keepalive ping failed",
                    exc,
                )
                await self._shutdown(failure)
                return

    async def _shutdown(self, reason: BaseException | None) -> None:
        if self._closing:
            await asyncio.shield(self._done)
            return
        self._closing = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        closers = [*self._extra_closers, self.mux.close, self.secure.close]
        for closer in [*closers, self._close_socket]:
            try:
                await closer()
            except Exception as exc:
                log.debug("close_step_failed path=%s error=%r", self.path, exc)
        if not self._done.done():
            self._done.set_result(reason)
