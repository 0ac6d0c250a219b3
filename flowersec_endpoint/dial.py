"""Opening the WebSocket and sending the attach, with api.md's error codes.

Both roles dial the same way (Origin header, connect timeout, no WebSocket
pings, no compression, 1 MiB messages), so the connecting client and the
serving endpoint's tunnel attach share this code.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.observer import Result, emit
from flowersec_endpoint.options import Options
from flowersec_endpoint.transport import close_websocket, websocket_message_limit

CLOSE_TIMEOUT = 2.0
"""Seconds a close waits for the peer's close frame before dropping TCP.

aiohttp's default is 10 s. A failed connect closes its socket before it
raises, so against a peer that never answers the close the error would
come 10 s late, past the caller's own timeouts. 2 s is the tunnel's own
close-frame deadline (tunnel.md §4.4).
"""


class Dialed:
    """An open WebSocket plus the HTTP session that owns it (if we made one).

    ``started`` is when the dial began (``time.monotonic()``): the connect
    timeout covers the dial and the attach together.
    """

    __slots__ = ("_own_session", "session", "started", "ws")

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        session: aiohttp.ClientSession,
        own_session: bool,
        started: float,
    ) -> None:
        self.ws = ws
        self.session = session
        self._own_session = own_session
        self.started = started

    async def close(self) -> None:
        """Close the socket, then the session if it was created for it.

        A failure that already chose the close code (1002) keeps it.
        """
        try:
            await close_websocket(self.ws)
        finally:
            if self._own_session:
                await self.session.close()


async def dial(path: Path, url: str, origin: str, options: Options) -> Dialed:
    """Open the WebSocket within the connect timeout (api.md §2.1 step 10).

    The resolved Origin overrides any ``Origin`` in the extra headers.
    """
    headers = {k: v for k, v in options.headers.items() if k.lower() != "origin"}
    headers["Origin"] = origin
    own = options.http_session is None
    session = options.http_session or aiohttp.ClientSession()
    started = time.monotonic()

    def report(result: Result, reason: str | None) -> None:
        elapsed = time.monotonic() - started
        emit(options.observer, "on_connect", path, result, reason, elapsed)

    try:
        async with asyncio.timeout(options.connect_timeout):
            ws = await session.ws_connect(
                url,
                headers=headers,
                autoping=True,
                heartbeat=None,
                compress=0,
                max_msg_size=websocket_message_limit(
                    options.max_record_bytes, options.max_handshake_payload
                ),
                ssl=True if options.ssl is None else options.ssl,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
            )
    except TimeoutError as exc:
        report("fail", "timeout")
        await _close_own(session, own)
        raise FlowersecError(
            path, Stage.CONNECT, Code.TIMEOUT, "websocket connect timed out", exc
        ) from exc
    except asyncio.CancelledError:
        report("fail", "canceled")
        await _close_own(session, own)
        raise
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        report("fail", "websocket_error")
        await _close_own(session, own)
        raise FlowersecError(
            path, Stage.CONNECT, Code.DIAL_FAILED, f"websocket dial failed: {exc}", exc
        ) from exc
    report("ok", None)
    return Dialed(ws, session, own, started)


async def _close_own(session: aiohttp.ClientSession, own: bool) -> None:
    if own:
        await session.close()


async def send_attach(
    dialed: Dialed, message: str, path: Path, options: Options
) -> None:
    """Send the attach as one text message (api.md §2.1 step 11).

    It gets what the dial left of the connect timeout. The message carries
    the bearer token, so errors never quote it.
    """
    observer = options.observer
    timeout = options.connect_timeout
    if timeout is not None:
        timeout = max(timeout - (time.monotonic() - dialed.started), 0.0)
    try:
        async with asyncio.timeout(timeout):
            await dialed.ws.send_str(message)
    except TimeoutError as exc:
        emit(observer, "on_attach", "fail", "timeout")
        raise FlowersecError(
            path, Stage.ATTACH, Code.TIMEOUT, "sending the attach timed out", exc
        ) from exc
    except (aiohttp.ClientError, OSError, ConnectionError, RuntimeError) as exc:
        emit(observer, "on_attach", "fail", "send_failed")
        raise FlowersecError(
            path, Stage.ATTACH, Code.ATTACH_FAILED, "sending the attach failed", exc
        ) from exc
    emit(observer, "on_attach", "ok", None)
