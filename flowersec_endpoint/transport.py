"""Message transports: one binary WebSocket message per E2EE frame.

The E2EE layer needs only "send one message, receive the next one, close",
so it runs on :class:`MessageTransport`. :class:`WebSocketTransport` adapts an
aiohttp WebSocket (client or server side); :func:`memory_pair` links two
in-process endpoints for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Protocol, cast, runtime_checkable

import aiohttp
from aiohttp import web

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003

# Seen only with autoping off; never E2EE frames, so skipped as the peers do.
_CONTROL = frozenset((aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG))

_HANDSHAKE_HEADER_LEN = 10

AnyWebSocket = aiohttp.ClientWebSocketResponse | web.WebSocketResponse

# The close code a failure chose for a socket, before its close is under way.
_chosen_close: weakref.WeakKeyDictionary[AnyWebSocket, tuple[int, str]] = (
    weakref.WeakKeyDictionary()
)


def choose_close(ws: AnyWebSocket, code: int, reason: str = "") -> None:
    """Fix the code of the socket's close now, whoever ends up closing it.

    A failure starts its close (1002) in the background so the error is
    raised at once; a caller that then closes the socket itself must not
    get a generic 1000 on the wire first. The first choice wins.
    """
    _chosen_close.setdefault(ws, (code, reason))


async def close_websocket(
    ws: AnyWebSocket, code: int = CLOSE_NORMAL, reason: str = ""
) -> None:
    """Close ``ws`` with ``code``, or with the code chosen by a failure."""
    code, reason = _chosen_close.get(ws, (code, reason))
    await ws.close(code=code, message=reason.encode("utf-8"))


def websocket_message_limit(max_record_bytes: int, max_handshake_payload: int) -> int:
    """aiohttp ``max_msg_size`` for a socket carrying E2EE frames (0: none).

    The largest legal message is a record of ``max_record_bytes`` or a
    handshake frame of 10 + ``max_handshake_payload`` bytes (e2ee.md §3,
    §9.3); either limit at 0 means unlimited. aiohttp refuses a message
    whose size reaches its limit, hence the extra byte.
    """
    if max_record_bytes <= 0 or max_handshake_payload <= 0:
        return 0
    return max(max_record_bytes, _HANDSHAKE_HEADER_LEN + max_handshake_payload) + 1


class TransportError(Exception):
    """The transport can no longer carry E2EE frames."""


class TransportClosed(TransportError):
    """The connection is closed; ``code``/``reason`` come from the close frame.

    ``code`` is ``None`` when the connection ended without a close frame (an
    abnormal closure). The connect layer maps tunnel reason texts such as
    ``invalid_token`` to attach errors from ``reason``.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"transport closed (code={code}, reason={reason!r})")
        self.code = code
        self.reason = reason


class UnexpectedMessage(TransportError):
    """A non-binary data message arrived where only binary ones are allowed."""


class MessageTransport(Protocol):
    """A bidirectional, ordered, message-preserving connection."""

    async def send(self, data: bytes | bytearray) -> None:
        """Send ``data`` as one binary message; the caller will not reuse it."""

    async def recv(self) -> bytes:
        """Return the next binary message; raise :class:`TransportError`."""

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the connection; idempotent."""


@runtime_checkable
class ChoosesClose(Protocol):
    """A transport whose close code can be fixed before the close runs."""

    def choose_close(self, code: int, reason: str = "") -> None:
        """Make ``code`` the one every later :meth:`close` call sends."""


class WebSocketTransport:
    """An aiohttp WebSocket (client or server side) as a message transport.

    Use it once the attach text (tunnel path) has been sent: from then on a
    text message is a protocol error: :meth:`recv` raises
    :class:`UnexpectedMessage` and the caller closes the socket (1002).
    WebSocket pings and pongs are answered by aiohttp and never surface.
    Only one task may call :meth:`recv` at a time (an aiohttp rule).
    """

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse
    ) -> None:
        self._ws = ws
        self._closed: TransportClosed | None = None

    @property
    def websocket(self) -> aiohttp.ClientWebSocketResponse | web.WebSocketResponse:
        """The wrapped socket."""
        return self._ws

    async def send_text(self, text: str) -> None:
        """Send one text message (the tunnel attach, before any E2EE frame)."""
        try:
            await self._ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise self._closed_error() from exc

    async def send(self, data: bytes | bytearray) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            # aiohttp takes any bytes-like object (it checks bytes, bytearray
            # and memoryview) although its stub says bytes; no copy needed.
            await self._ws.send_bytes(cast(bytes, data))
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise self._closed_error() from exc

    async def recv(self) -> bytes:
        if self._closed is not None:
            raise self._closed
        msg = await self._ws.receive()
        while msg.type in _CONTROL:
            msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type is aiohttp.WSMsgType.TEXT:
            # The caller closes the socket; waiting here for the peer's close
            # echo would delay the error by up to the close timeout.
            self._closed = TransportClosed(CLOSE_UNSUPPORTED_DATA, "")
            raise UnexpectedMessage("text message on a binary-only transport")
        if msg.type is aiohttp.WSMsgType.CLOSE:
            self._closed = TransportClosed(msg.data, msg.extra or "")
            raise self._closed
        if msg.type is aiohttp.WSMsgType.ERROR:
            self._closed = TransportClosed(self._ws.close_code, "")
            raise self._closed from msg.data
        # CLOSING/CLOSED without a close frame: the connection just ended.
        # aiohttp reports that as code 1000, which must not pass for a clean
        # close, so the code is left unknown.
        raise self._closed_error()

    def choose_close(self, code: int, reason: str = "") -> None:
        """Fix the close code now (see :func:`choose_close`)."""
        choose_close(self._ws, code, reason)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        code, reason = _chosen_close.get(self._ws, (code, reason))
        if self._closed is None:
            self._closed = TransportClosed(code, reason)
        if not self._ws.closed:
            await close_websocket(self._ws, code, reason)

    def _closed_error(self) -> TransportClosed:
        if self._closed is None:
            self._closed = TransportClosed(None, "")
        return self._closed


class MemoryTransport:
    """One end of an in-process message pipe; see :func:`memory_pair`.

    Each direction queues at most ``max_queued`` messages; a sender waits
    when the peer's queue is full, as TCP backpressure would make it.
    """

    def __init__(self, max_queued: int) -> None:
        self._inbox: deque[bytes] = deque()
        self._max_queued = max_queued
        self._changed = asyncio.Event()
        self._closed: TransportClosed | None = None
        self._chosen: tuple[int, str] | None = None
        self._peer: MemoryTransport = self

    async def send(self, data: bytes | bytearray) -> None:
        peer = self._peer
        while True:
            if self._closed is not None:
                raise self._closed
            if len(peer._inbox) < self._max_queued:
                break
            peer._changed.clear()
            await peer._changed.wait()
        peer._inbox.append(bytes(data))
        peer._changed.set()

    async def recv(self) -> bytes:
        while True:
            if self._inbox:
                data = self._inbox.popleft()
                self._changed.set()
                return data
            if self._closed is not None:
                raise self._closed
            self._changed.clear()
            await self._changed.wait()

    def choose_close(self, code: int, reason: str = "") -> None:
        """Make ``code`` the one every later :meth:`close` sends."""
        if self._chosen is None:
            self._chosen = (code, reason)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed is not None:
            return
        code, reason = self._chosen or (code, reason)
        self._closed = TransportClosed(code, reason)
        self._inbox.clear()
        self._changed.set()
        peer = self._peer
        if peer._closed is None:
            peer._closed = TransportClosed(code, reason)
        peer._changed.set()


def memory_pair(max_queued: int = 64) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports (messages sent on one arrive on the
    other, in order; closing either closes both, peer sees code and reason)."""
    if max_queued <= 0:
        raise ValueError("max_queued must be positive")
    a, b = MemoryTransport(max_queued), MemoryTransport(max_queued)
    a._peer, b._peer = b, a
    return a, b
