"""Message-size limits: 8 KiB for the attach, 1 MiB after it (tunnel.md §4.4).

The reference reads frames lazily and raises its limit once the attach is
admitted. aiohttp parses eagerly (a client's first handshake frame, sent
right behind the attach, is parsed before the tunnel has looked at the
attach) and fixes one limit when the response is prepared, with a compiled
parser that cannot change it. So right after the upgrade the connection
gets aiohttp's pure-Python reader and queue, subclassed so that the first
data message is held to the attach limit and every later one to the
record limit. An attach over 8 KiB thus gets 1009 as in the reference, and
a connection that never attaches holds at most 8 KiB of partial message.
The Python parser costs about two microseconds per message more than the
compiled one. The same step releases what aiohttp keeps for the socket's
life but a WebSocket no longer uses (:func:`install`; docs/BENCHMARKS.md).

This touches aiohttp internals (``WebSocketResponse._reader``/``_parser`` and
the request protocol's payload parser); :func:`check_support` runs at start
so an incompatible aiohttp fails loudly instead of mis-parsing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web, web_protocol
from aiohttp._websocket import reader_py

QUEUE_LIMIT = 2**16
"""Bytes of parsed messages held before aiohttp pauses reading the socket."""

_DATA = frozenset({WSMsgType.TEXT, WSMsgType.BINARY})
_COMPACT_AFTER = 64


class _Fifo:
    """The message queue's buffer: a list read from a moving head.

    aiohttp's deque costs about 700 bytes even when empty (one 64-slot
    block), and an idle connection's queue is empty; an empty list costs
    56. Popping stays O(1) however many small frames one read delivered.
    """

    __slots__ = ("_head", "_items", "append")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0
        self.append = self._items.append

    def __len__(self) -> int:
        return len(self._items) - self._head

    def popleft(self) -> Any:
        items, head = self._items, self._head
        item = items[head]
        items[head] = None
        head += 1
        if head == len(items):
            items.clear()
            head = 0
        elif head > _COMPACT_AFTER and 2 * head > len(items):
            del items[:head]
            head = 0
        self._head = head
        return item


class _FirstMessageQueue(reader_py.WebSocketDataQueue):
    """aiohttp's message queue on a :class:`_Fifo`, noting when the first
    data message went in."""

    seen_data = 0

    def __init__(
        self, protocol: Any, limit: int, *, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(protocol, limit, loop=loop)
        fifo = _Fifo()
        self._buffer = fifo  # type: ignore[assignment]
        self._get_buffer = fifo.popleft
        self._put_buffer = fifo.append

    def feed_data(self, data: Any, size: int) -> None:
        if not self.seen_data and data[0] in _DATA:
            self.seen_data = 1
        super().feed_data(data, size)


class _TwoStageReader(reader_py.WebSocketReader):
    """aiohttp's frame parser with one limit for the first data message
    and another for the rest.

    aiohttp refuses a message whose size reaches its limit, so the limits
    are stored plus one: a message of exactly the limit passes.
    """

    def __init__(self, queue: _FirstMessageQueue, first: int, rest: int) -> None:
        self._limits = (first + 1, rest + 1)
        super().__init__(queue, rest + 1, compress=False, decode_text=True)
        self._queue = queue

    @property
    def _max_msg_size(self) -> int:
        return self._limits[self._queue.seen_data]

    @_max_msg_size.setter
    def _max_msg_size(self, value: int) -> None:
        """Ignore the base class's fixed limit; :attr:`_limits` rules."""


def check_support() -> None:
    """Fail at start if aiohttp's internals no longer fit :func:`install`.

    The code-less close echo of ``runtime`` relies on the same internals.
    """
    names = reader_py.WebSocketReader.__init__.__code__.co_varnames
    needed = ("_parser", "_writer", "_set_closed")
    slots = ("_messages", "_parser", "_payload_parser")
    if (
        "max_msg_size" not in names
        or not all(hasattr(web.WebSocketResponse, name) for name in needed)
        or not all(hasattr(web_protocol.RequestHandler, name) for name in slots)
    ):
        raise RuntimeError("unsupported aiohttp version for message limits")


def install(
    ws: web.WebSocketResponse, request: web.BaseRequest, first: int, rest: int
) -> None:
    """Give a just-prepared ``ws`` the two-stage parser.

    Must run right after ``prepare()``, before any frame arrived; bytes a
    client pipelined behind its upgrade request are not carried over (the
    reference drops such connections). The HTTP parser and request queue,
    idle from now on but kept by aiohttp until the socket closes, are
    dropped or shrunk, and so are the 101 response's sent headers and the
    request's cached properties and route match (with the list-based
    queue, about 3.8 KB of RSS per connection).
    """
    loop = asyncio.get_running_loop()
    protocol = request.protocol
    queue = _FirstMessageQueue(protocol, QUEUE_LIMIT, loop=loop)
    parser = _TwoStageReader(queue, first, rest)
    ws._reader = queue
    ws._parser = parser
    protocol._payload_parser = parser
    protocol._parser = None
    protocol._messages = _Fifo()  # type: ignore[assignment]
    ws._headers = type(ws.headers)()
    request._cache.clear()
    if isinstance(request, web.Request):
        request._match_info = None
