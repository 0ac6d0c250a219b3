"""asyncio layer over :class:`SessionCore`: one reader task, one writer task.

The writer task is the only caller of ``ByteChannel.write`` and hands it one
complete frame per call (mux-rpc.md §1.4). Timers (open, half-close, write)
live here because the core has no clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from flowersec_endpoint.yamux.core import (
    DEFAULT_ACCEPT_BACKLOG,
    DEFAULT_MAX_FRAME_DATA,
    Event,
    GoAwayReceived,
    PingAcked,
    Role,
    SessionCore,
    StreamAcked,
    StreamCore,
    StreamOpened,
    StreamState,
)
from flowersec_endpoint.yamux.errors import Reason, YamuxError
from flowersec_endpoint.yamux.frame import GoAwayCode

_log = logging.getLogger(__name__)


class ByteChannel(Protocol):
    """An ordered, reliable byte channel (the E2EE secure channel)."""

    async def read(self) -> bytes:
        """Return the next chunk, ``b""`` at clean EOF; raise on failure."""
        ...

    async def write(self, data: bytes) -> None:
        """Write ``data`` atomically with respect to other writes."""
        ...

    async def close(self) -> None:
        """Close the channel."""
        ...


@dataclass(frozen=True, slots=True)
class YamuxConfig:
    """Session settings; the defaults are hashicorp v0.1.2's (mux-rpc.md §2.11).

    ``None`` disables a timeout. ``write_buffer_limit`` is the number of
    queued-but-unframed bytes per stream above which ``drain`` waits.
    ``keepalive_interval`` is off by default, as in every Flowersec
    reference configuration (mux-rpc.md §2.8, §2.11); set, it sends a PING
    that often and ends the session (``keepalive_timeout``) when a reply
    takes longer than ``write_timeout``, hashicorp's rule.
    """

    accept_backlog: int = DEFAULT_ACCEPT_BACKLOG
    max_unacked_streams: int = 256
    max_frame_data: int = DEFAULT_MAX_FRAME_DATA
    open_timeout: float | None = 75.0
    close_timeout: float | None = 300.0
    write_timeout: float | None = 10.0
    write_buffer_limit: int = 64 * 1024
    keepalive_interval: float | None = None


class YamuxSession:
    """A running Yamux session over a :class:`ByteChannel`.

    Must be created inside a running event loop; it starts its reader and
    writer tasks at once. Closing the session closes the channel.
    """

    def __init__(
        self, channel: ByteChannel, role: Role, config: YamuxConfig | None = None
    ) -> None:
        self.config = config or YamuxConfig()
        self._loop = asyncio.get_running_loop()
        self._channel = channel
        self._core = SessionCore(
            role,
            accept_backlog=self.config.accept_backlog,
            max_frame_data=self.config.max_frame_data,
        )
        self._streams: dict[int, YamuxStream] = {}
        self._accept_queue: deque[YamuxStream] = deque()
        self._accept_ready = asyncio.Event()
        self._acked = asyncio.Event()
        self._writer_wake = asyncio.Event()
        self._pings: dict[int, asyncio.Future[None]] = {}
        interval = self.config.keepalive_interval
        if interval is not None and interval <= 0:
            raise ValueError("keepalive_interval must be positive or None")
        self._keepalive: asyncio.Task[None] | None = None
        self._reader = self._loop.create_task(self._read_loop())
        self._writer = self._loop.create_task(self._write_loop())
        if interval is not None:
            self._keepalive = self._loop.create_task(self._keepalive_loop(interval))

    @property
    def role(self) -> Role:
        """This side's Yamux role."""
        return self._core.role

    @property
    def closed(self) -> bool:
        """True once the session ended."""
        return self._core.closed

    @property
    def error(self) -> YamuxError | None:
        """Why the session ended (``session_closed`` after a local close)."""
        return self._core.error

    @property
    def stream_count(self) -> int:
        """Streams not yet fully closed or reset."""
        return self._core.stream_count

    async def open_stream(self) -> YamuxStream:
        """Open an outbound stream; usable at once, before the peer's ACK.

        Waits while ``max_unacked_streams`` opens are still un-ACKed. Raises
        :class:`YamuxError` if the session is closed or the peer sent GO_AWAY.
        """
        while self._core.unacked_streams >= self.config.max_unacked_streams:
            if self._core.error is not None:
                raise self._core.error
            self._acked.clear()
            await self._acked.wait()
        stream = YamuxStream(self, self._core.open_stream())
        self._streams[stream.id] = stream
        if self.config.open_timeout is not None:
            stream._open_timer = self._loop.call_later(
                self.config.open_timeout, self._open_timed_out, stream
            )
        self._kick()
        return stream

    async def accept_stream(self) -> YamuxStream:
        """Wait for the next inbound stream (already ACKed).

        Streams the peer reset while they waited are skipped.
        """
        while not self._accept_queue:
            if self._core.error is not None:
                raise self._core.error
            self._accept_ready.clear()
            await self._accept_ready.wait()
        stream = self._accept_queue.popleft()
        stream._queued = False
        self._core.accepted(stream._core)
        return stream

    async def ping(self, timeout: float | None = None) -> float:
        """Send a Yamux PING and return the round-trip time in seconds."""
        opaque = self._core.ping()
        done = self._loop.create_future()
        self._pings[opaque] = done
        started = self._loop.time()
        self._kick()
        try:
            async with asyncio.timeout(timeout):
                await done
        finally:
            self._pings.pop(opaque, None)
        return self._loop.time() - started

    def go_away(self) -> None:
        """Send GO_AWAY(0): the peer stops opening streams; ours continue."""
        self._core.go_away(GoAwayCode.NORMAL)
        self._kick()

    async def close(self) -> None:
        """Close the session and the channel (no GO_AWAY, like the reference).

        Bytes still queued on streams are dropped; close streams and drain
        them first when they must arrive.
        """
        self._terminate(YamuxError(Reason.SESSION_CLOSED, "closed locally"))
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until both tasks ended and the channel is closed.

        Shielded: cancelling a waiter must not cancel the session's tasks.
        """
        await asyncio.shield(
            asyncio.gather(self._reader, self._writer, return_exceptions=True)
        )

    async def __aenter__(self) -> YamuxSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _kick(self) -> None:
        if self._core.has_output() or self._core.closed:
            self._writer_wake.set()

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._channel.read()
                if not data:
                    self._terminate(YamuxError(Reason.SESSION_CLOSED, "peer closed"))
                    return
                self._dispatch(self._core.receive_data(data))
                self._kick()
        except YamuxError as exc:
            self._terminate(exc)
        except Exception as exc:
            error = YamuxError(Reason.TRANSPORT_FAILED, f"read failed: {exc!r}")
            error.__cause__ = exc
            self._terminate(error)

    async def _write_loop(self) -> None:
        try:
            while True:
                item = self._core.next_frame()
                if item is None:
                    if self._core.closed:
                        return
                    self._writer_wake.clear()
                    await self._writer_wake.wait()
                    continue
                frame, stream_id = item
                if stream_id:
                    self._wake(stream_id)
                async with asyncio.timeout(self.config.write_timeout):
                    await self._channel.write(frame)
        except TimeoutError as exc:
            error = YamuxError(Reason.WRITE_TIMEOUT, "frame not written in time")
            error.__cause__ = exc
            self._terminate(error)
        except Exception as exc:
            error = YamuxError(Reason.TRANSPORT_FAILED, f"write failed: {exc!r}")
            error.__cause__ = exc
            self._terminate(error)
        finally:
            await self._close_channel()

    async def _close_channel(self) -> None:
        try:
            await self._channel.close()
        except Exception:
            _log.warning("yamux channel close failed", exc_info=True)

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, StreamOpened):
                core = self._core.get_stream(event.stream_id)
                if core is None:
                    continue
                stream = YamuxStream(self, core)
                self._streams[stream.id] = stream
                stream._queued = True
                self._accept_queue.append(stream)
                self._accept_ready.set()
            elif isinstance(event, PingAcked):
                waiter = self._pings.get(event.opaque)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, GoAwayReceived):
                self._acked.set()
            else:
                if isinstance(event, StreamAcked):
                    self._acked.set()
                self._wake(event.stream_id)

    def _wake(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream._changed.set()
        if stream._core.acked:
            stream._cancel_timers(close=False)
        if self._core.get_stream(stream_id) is None:
            del self._streams[stream_id]
            stream._cancel_timers(close=True)
            if stream._queued:
                # Reset before anyone accepted it: drop it, keeping the queue
                # within the backlog however often the peer opens and resets.
                stream._queued = False
                self._accept_queue.remove(stream)

    async def _keepalive_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.ping(timeout=self.config.write_timeout)
            except TimeoutError:
                self._terminate(
                    YamuxError(Reason.KEEPALIVE_TIMEOUT, "no PING reply in time")
                )
                return
            except YamuxError:
                return

    def _open_timed_out(self, stream: YamuxStream) -> None:
        if not stream._core.acked and not self._core.closed:
            self._terminate(YamuxError(Reason.OPEN_TIMEOUT, f"stream {stream.id}"))

    def _close_timed_out(self, stream: YamuxStream) -> None:
        if stream._core.state is StreamState.LOCAL_CLOSE:
            stream.reset()

    def _terminate(self, error: YamuxError) -> None:
        if not self._core.closed:
            self._core.close(error)
        for stream in self._streams.values():
            stream._changed.set()
            stream._cancel_timers(close=True)
        self._streams.clear()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(self._core.error or error)
        self._accept_ready.set()
        self._acked.set()
        self._kick()
        current = asyncio.current_task()
        if current is not self._reader:
            self._reader.cancel()
        if self._keepalive is not None and current is not self._keepalive:
            self._keepalive.cancel()


class YamuxStream:
    """One bidirectional byte stream of a :class:`YamuxSession`."""

    def __init__(self, session: YamuxSession, core: StreamCore) -> None:
        self._session = session
        self._core = core
        self._changed = asyncio.Event()
        self._open_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._queued = False

    @property
    def id(self) -> int:
        """The Yamux stream id (odd: opened by the client role)."""
        return self._core.id

    @property
    def state(self) -> StreamState:
        """The wire state of the stream."""
        return self._core.state

    async def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (all buffered if ``n < 0``), ``b""`` at EOF.

        Raises :class:`YamuxError` (``stream_reset``, ``session_closed``...)
        when the stream failed before the peer finished sending.
        """
        if n == 0:
            return b""
        while True:
            data = self._core.read(n if n > 0 else self._core.readable)
            if data:
                self._session._kick()
                return data
            if self._core.at_eof:
                return b""
            self._changed.clear()
            await self._changed.wait()

    async def readexactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes; ``IncompleteReadError`` on early EOF."""
        parts = bytearray()
        while len(parts) < n:
            chunk = await self.read(n - len(parts))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(parts), n)
            parts += chunk
        return bytes(parts)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending; pair with :meth:`drain` for backpressure.

        Raises :class:`YamuxError` after ``close``, a reset or session end.
        """
        self._core.write(bytes(data))
        self._session._kick()

    async def drain(self) -> None:
        """Wait until the queued bytes fall to the configured buffer limit.

        Bytes leave the queue only as the peer grants window credit, which
        is how the receiver's flow control slows this writer down.
        """
        limit = self._session.config.write_buffer_limit
        while self._core.pending_send > limit and self._core.error is None:
            self._changed.clear()
            await self._changed.wait()
        if self._core.error is not None:
            raise self._core.error

    async def close(self) -> None:
        """Half-close: queue FIN after the queued bytes; reads continue.

        Idempotent and does not wait for the peer (``drain`` first to wait
        for credit). If the peer never closes its side, the stream is reset
        after the session's ``close_timeout``.
        """
        if self._closing:
            return
        self._closing = True
        self._core.close()
        self._session._kick()
        timeout = self._session.config.close_timeout
        if timeout is not None and self._core.error is None:
            self._close_timer = self._session._loop.call_later(
                timeout, self._session._close_timed_out, self
            )

    def _cancel_timers(self, *, close: bool) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        if close and self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def reset(self) -> None:
        """Abort the stream with RST."""
        self._core.reset()
        self._changed.set()
        self._session._kick()
        self._session._wake(self.id)

    def __aiter__(self) -> YamuxStream:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    async def __aenter__(self) -> YamuxStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.reset()
        else:
            await self.close()
