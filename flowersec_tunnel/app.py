"""HTTP surface of the tunnel: the WebSocket route, ``/healthz`` and 404s.

The upgrade checks of tunnel.md §4.2 run here, in the reference's order and
with its exact status codes, before aiohttp sees the request: aiohttp's
own checks use a different order and body text, and it has no Origin
policy. The metrics listener is a second, separate application.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import sys
from http import HTTPStatus

from aiohttp import hdrs, web

from . import session
from .metrics import Metrics
from .runtime import TunnelRuntime

RUNTIME_KEY = web.AppKey("runtime", TunnelRuntime)
METRICS_KEY = web.AppKey("metrics", Metrics)
_TEXT = "text/plain"

MAX_HEADER_BYTES = 32768
"""Request line plus headers (§4.5); also aiohttp's per-line limit."""
_HEADER_SLACK = 4096
"""Go reads headers through a buffer this much larger than its limit, so
requests up to the sum pass there; they pass here too."""


def headers_too_large(request: web.BaseRequest) -> bool:
    """True when the request line and headers exceed the §4.5 total.

    aiohttp bounds each header line and the number of lines (128), not
    their sum, so up to 4 MiB of headers would otherwise stay attached to
    a WebSocket for its whole life. They are still read into memory once,
    bounded by those per-line limits, before this check can run.
    """
    size = len(request.method) + len(request.raw_path) + 11
    for name, value in request.raw_headers:
        size += len(name) + len(value) + 4
    return size > MAX_HEADER_BYTES + _HEADER_SLACK


def _headers_refused() -> web.Response:
    """Go's answer to oversized headers; the connection is not reused."""
    return web.Response(
        status=431,
        text="431 Request Header Fields Too Large",
        content_type=_TEXT,
        charset="utf-8",
        headers={hdrs.CONNECTION: "close"},
    )


def _tokens(request: web.Request, name: str) -> set[str]:
    """Comma-separated tokens of every ``name`` header line, lower-cased."""
    joined = ",".join(request.headers.getall(name, ()))
    return {item.strip().lower() for item in joined.split(",")}


def _valid_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def upgrade_error(rt: TunnelRuntime, request: web.Request) -> int | None:
    """Status for a request the WebSocket route must refuse, else None."""
    if "upgrade" not in _tokens(request, hdrs.CONNECTION):
        return 400
    if "websocket" not in _tokens(request, hdrs.UPGRADE):
        return 400
    if request.method != hdrs.METH_GET:
        return 405
    if "13" not in _tokens(request, hdrs.SEC_WEBSOCKET_VERSION):
        return 400
    if not rt.origins.allows(request.headers.get(hdrs.ORIGIN)):
        return 403
    if not _valid_key(request.headers.get(hdrs.SEC_WEBSOCKET_KEY, "")):
        return 400
    return None


def _upgrade_refused(status: int) -> web.Response:
    return web.Response(
        status=status,
        text=HTTPStatus(status).phrase + "\n",
        content_type=_TEXT,
        charset="utf-8",
        headers={hdrs.SEC_WEBSOCKET_VERSION: "13"},
    )


def not_found() -> web.Response:
    """Go's 404 body, which some probes match on."""
    return web.Response(
        status=404, text="404 page not found\n", content_type=_TEXT, charset="utf-8"
    )


async def _dispatch(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME_KEY]
    if headers_too_large(request):
        return _headers_refused()
    path = request.path
    if path == rt.config.ws_path:
        status = upgrade_error(rt, request)
        if status is None:
            try:
                return await session.serve(rt, request)
            except web.HTTPException as exc:
                status = exc.status
        rt.metrics.attach("upgrade_error")
        rt.log.info("attach_rejected", reason="upgrade_error", status=status)
        return _upgrade_refused(status)
    if path == "/healthz":
        return web.Response(text="ok", content_type=_TEXT, charset="utf-8")
    return not_found()


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
LARGE_BUFFER_MMAP_THRESHOLD = 4 * 1024 * 1024
LARGE_BUFFER_TRIM_THRESHOLD = 32 * 1024 * 1024


def keep_large_buffers_on_heap() -> bool:
    """Stop glibc from mapping fresh pages for every 1 MiB message buffer.

    By default glibc serves each allocation of 128 KiB or more with new
    ``mmap`` pages (and, once its threshold adapts, trims the heap top after
    every burst), so every large WebSocket message costs page faults and
    zeroing in aiohttp's frame reader and writer. Serving up to 4 MiB from
    the heap and keeping up to 32 MiB of free heap top halves the relay's
    CPU per MiB (docs/BENCHMARKS.md). Process-wide; returns False where the
    C library is not glibc, which then keeps its defaults.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_MMAP_THRESHOLD)
        and mallopt(M_TRIM_THRESHOLD, LARGE_BUFFER_TRIM_THRESHOLD)
    )


def create_app(rt: TunnelRuntime) -> web.Application:
    """The main listener's application (relay-friendly allocator included)."""
    keep_large_buffers_on_heap()
    app = web.Application()
    app[RUNTIME_KEY] = rt
    app.router.add_route("*", "/{path:.*}", _dispatch)
    return app


async def _metrics(request: web.Request) -> web.StreamResponse:
    if headers_too_large(request):
        return _headers_refused()
    if request.path != "/metrics":
        return not_found()
    body = request.app[METRICS_KEY].render()
    if body is None:
        return not_found()
    return web.Response(
        body=body, headers={hdrs.CONTENT_TYPE: "text/plain; version=0.0.4"}
    )


def create_metrics_app(metrics: Metrics) -> web.Application:
    """The metrics listener's application: ``/metrics`` only."""
    app = web.Application()
    app[METRICS_KEY] = metrics
    app.router.add_route("*", "/{path:.*}", _metrics)
    return app
