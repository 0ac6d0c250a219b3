"""A deadline for each connection's first request (tunnel.md §4.5).

The reference gives a new connection 5 s to send its request headers.
aiohttp has no such timer: its keep-alive timer, armed when a connection
opens, cuts one that never completes a request only after 60 s. So the
listeners sweep their connections and close any that still has no complete
request some time after it was first seen. Requests after the first on a
kept-alive connection stay bounded by the keep-alive timer alone.

Whether a request was read comes from aiohttp's per-connection message
count (an internal); :func:`check_support` fails at start if it is gone.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

HEADER_TIMEOUT = 5.0


def check_support() -> None:
    """Fail at start if aiohttp no longer counts requests per connection."""
    if "_request_count" not in web.RequestHandler.__slots__:
        raise RuntimeError("unsupported aiohttp version for the header deadline")


class FirstRequestDeadline:
    """Remembers when each request-less connection was first seen."""

    __slots__ = ("_seen", "timeout")

    def __init__(self, timeout: float = HEADER_TIMEOUT) -> None:
        self.timeout = timeout
        self._seen: dict[web.RequestHandler, float] = {}

    def sweep(self, connections: Iterable[web.RequestHandler], now: float) -> int:
        """Close connections without a request after ``timeout``; return how many.

        ``now`` is monotonic. A connection is timed from the first sweep
        that sees it, so the cut comes up to one sweep interval late.
        """
        seen: dict[web.RequestHandler, float] = {}
        cut = 0
        for handler in connections:
            if handler._request_count:
                continue
            since = self._seen.get(handler, now)
            if now - since > self.timeout:
                handler.force_close()
                cut += 1
            else:
                seen[handler] = since
        self._seen = seen
        return cut
