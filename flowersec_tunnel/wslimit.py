"""A WebSocket message-size limit that can be raised after the attach.

The tunnel must refuse attach messages over 8 KiB (1009, like the reference)
and accept records up to 1 MiB once admitted (tunnel.md §4.4). aiohttp fixes
the limit when the response is prepared, and its compiled frame parser does
not let it change, so right after the upgrade (before any frame has been
read) the connection gets aiohttp's pure-Python reader and queue, whose
limit is a plain attribute. The Python parser costs a few microseconds per
message more than the compiled one; the 8 KiB bound is what keeps
half-open connections cheap.

This touches aiohttp internals (``WebSocketResponse._reader``/``_parser`` and
the request protocol's payload parser); :func:`check_support` runs at start
so an incompatible aiohttp fails loudly instead of mis-parsing.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp._websocket import reader_py

QUEUE_LIMIT = 2**16
"""Bytes of parsed messages held before aiohttp pauses reading the socket."""


class MessageLimit:
    """Handle on one connection's frame parser limit."""

    __slots__ = ("_parser",)

    def __init__(self, parser: reader_py.WebSocketReader) -> None:
        self._parser = parser

    @property
    def value(self) -> int:
        return self._parser._max_msg_size

    def raise_to(self, limit: int) -> None:
        """Allow whole messages up to ``limit`` bytes from now on."""
        self._parser._max_msg_size = limit
        self._parser._max_fragments = max(1024, limit // 256)


def check_support() -> None:
    """Fail at start if aiohttp's internals no longer fit :func:`install`."""
    probe = reader_py.WebSocketReader.__init__
    names = probe.__code__.co_varnames
    if "max_msg_size" not in names or not hasattr(web.WebSocketResponse, "_parser"):
        raise RuntimeError("unsupported aiohttp version for message limits")


def install(
    ws: web.WebSocketResponse, request: web.BaseRequest, limit: int
) -> MessageLimit:
    """Give a just-prepared ``ws`` a parser whose limit starts at ``limit``.

    Must run right after ``prepare()`` with no await in between, before any
    frame arrived; bytes a client pipelined behind its upgrade request are
    not carried over (the reference drops such connections).
    """
    loop = asyncio.get_running_loop()
    protocol = request.protocol
    queue = reader_py.WebSocketDataQueue(protocol, QUEUE_LIMIT, loop=loop)
    parser = reader_py.WebSocketReader(queue, limit, compress=False, decode_text=True)
    ws._reader = queue
    ws._parser = parser
    protocol._payload_parser = parser
    return MessageLimit(parser)
