"""HTTP surface of the tunnel: the WebSocket route, ``/healthz`` and 404s.

The upgrade checks of tunnel.md §4.2 run here, in the reference's order and
with its exact status codes, before aiohttp sees the request: aiohttp's
own checks use a different order and body text, and it has no Origin
policy. The metrics listener is a second, separate application.
"""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus

from aiohttp import hdrs, web

from . import session
from .metrics import Metrics
from .runtime import TunnelRuntime

RUNTIME_KEY = web.AppKey("runtime", TunnelRuntime)
METRICS_KEY = web.AppKey("metrics", Metrics)
_TEXT = "text/plain"


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


def create_app(rt: TunnelRuntime) -> web.Application:
    """The main listener's application."""
    app = web.Application()
    app[RUNTIME_KEY] = rt
    app.router.add_route("*", "/{path:.*}", _dispatch)
    return app


async def _metrics(request: web.Request) -> web.StreamResponse:
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
