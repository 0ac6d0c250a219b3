"""One upgraded WebSocket from attach to teardown (tunnel.md §5, §6).

Each connection is served by its aiohttp handler task and nothing else: the
task reads the attach, asks the hub for admission, then loops reading
binary messages and writing each one straight to the peer's socket.

The peer's socket buffer is its write queue: the high-water mark is the
write-queue budget (overshot by at most one message plus aiohttp's 64 KiB
drain interval). While a write waits for that buffer to drain this task
reads nothing more, so TCP backpressure reaches the sender; a write stuck
past the write timeout is ended by the cleanup loop. Per message the tunnel
adds nothing to aiohttp's own allocations but the write coroutine.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from . import wslimit
from .attach import (
    MAX_ATTACH_BYTES,
    AttachRejected,
    Reject,
    admit_token,
    parse_attach,
)
from .channels import (
    END_CODES,
    MAX_RECORD_BYTES,
    Admission,
    Admitted,
    ChannelEnded,
    End,
    Endpoint,
)
from .runtime import Connection, TunnelRuntime, close_socket
from .tokens import TokenPayload

_VALID_CLOSE = range(1000, 5000)


async def serve(rt: TunnelRuntime, request: web.Request) -> web.WebSocketResponse:
    """Upgrade ``request`` (already checked by the app) and run the session."""
    ws = web.WebSocketResponse(
        autoclose=False,
        autoping=True,
        compress=False,
        heartbeat=None,
        max_msg_size=MAX_ATTACH_BYTES,
        timeout=rt.config.close_timeout,
    )
    try:
        await ws.prepare(request)
    except ConnectionError:
        # The client went away before the 101 could be written: the app
        # counts an upgrade error and its answer is dropped with the socket.
        raise web.HTTPBadRequest() from None
    wslimit.install(ws, request, MAX_ATTACH_BYTES, MAX_RECORD_BYTES)
    transport = request.transport
    if transport is not None:
        transport.set_write_buffer_limits(high=rt.config.max_write_queue_bytes)
    if rt.draining:
        await close_socket(
            ws, transport, END_CODES[End.SHUTDOWN], End.SHUTDOWN.value, 1.0
        )
        return ws
    rt.sockets[ws] = transport
    try:
        if not rt.hub.acquire_conn():
            await _reject(
                rt, ws, transport, AttachRejected(Reject.TOO_MANY_CONNECTIONS)
            )
            return ws
        try:
            conn = await _attach(rt, ws, transport)
            if conn is not None:
                await _relay(rt, conn)
        finally:
            rt.hub.release_conn()
    finally:
        rt.sockets.pop(ws, None)
    return ws


async def _reject(
    rt: TunnelRuntime,
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
    exc: AttachRejected,
    *,
    send: bool = True,
    role: int = 0,
    channel_id: str = "",
    token_id: str = "",
) -> None:
    rt.metrics.attach(exc.reason.value)
    rt.log.info(
        "attach_rejected",
        reason=exc.reason.value,
        detail=exc.detail,
        role=role,
        channel_id=channel_id,
        token_id=token_id,
    )
    if send and not rt.draining:
        await close_socket(
            ws, transport, exc.code, exc.reason.value, rt.config.close_timeout
        )


async def _read_attach(
    rt: TunnelRuntime,
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
) -> str | bytes | AttachRejected:
    """Read the first data message; a rejection if it is not a text one.

    A rejection from a closed socket (the peer's close, already echoed, or
    aiohttp's own 1009/1002/1007) has ``sent`` set: no second close frame.
    """
    expected = Reject.EXPECTED_ATTACH
    try:
        async with asyncio.timeout(rt.config.attach_timeout):
            msg = await ws.receive()
    except TimeoutError:
        return AttachRejected(expected, "attach timeout")
    if msg.type is WSMsgType.TEXT:
        data: str | bytes = msg.data
        return data
    if msg.type is WSMsgType.BINARY:
        return AttachRejected(expected, "binary first message")
    if msg.type is WSMsgType.CLOSE:
        await close_socket(
            ws, transport, _echo_code(msg.data), "", rt.config.close_timeout
        )
        closed = AttachRejected(expected, "peer closed")
    elif msg.type is WSMsgType.ERROR and _too_big(msg.data):
        closed = AttachRejected(expected, "attach too large")
    elif msg.type is WSMsgType.ERROR:
        code = getattr(msg.data, "code", "")
        closed = AttachRejected(expected, f"websocket protocol error {code}")
    else:
        closed = AttachRejected(expected, "connection lost")
    closed.sent = True
    return closed


def _echo_code(code: object) -> int | None:
    """The code to echo for a peer's close frame (§4.4).

    None when the peer's frame had no status code (aiohttp reports 0): the
    echo is then an empty close frame too.
    """
    if code == 0:
        return None
    return code if isinstance(code, int) and code in _VALID_CLOSE else 1000


async def _attach(
    rt: TunnelRuntime,
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
) -> Connection | None:
    """Admission steps 3 to 11 of §5.4; None after a rejection."""
    first = await _read_attach(rt, ws, transport)
    if isinstance(first, AttachRejected):
        await _reject(rt, ws, transport, first, send=not first.sent)
        return None
    now = time.time()
    role, channel_id, token_id = 0, "", ""
    try:
        attach = parse_attach(first)
        role, channel_id = attach.role, attach.channel_id
        claims: TokenPayload = admit_token(
            attach,
            lambda token: rt.verify(token, now),
            rt.replay,
            skew_seconds=rt.config.skew_seconds,
            now=now,
        )
        token_id = claims.token_id
        conn = Connection(ws, transport, role, attach.endpoint_instance_id, token_id)
        admitted = _admit(rt, conn, claims)
    except AttachRejected as exc:
        await _reject(
            rt,
            ws,
            transport,
            exc,
            role=role,
            channel_id=channel_id,
            token_id=token_id or exc.token_id,
        )
        return None
    if admitted.kind is Admission.PAIRED and not await _flush(rt, conn, admitted):
        return None
    rt.metrics.attach("ok")
    rt.log.info(
        "attach_accepted",
        admission=admitted.kind.value,
        role=role,
        channel_id=channel_id,
        token_id=token_id,
    )
    return conn


def _admit(rt: TunnelRuntime, conn: Connection, claims: TokenPayload) -> Admitted:
    loop_now = asyncio.get_running_loop().time()
    try:
        admitted = rt.hub.admit(
            conn,
            claims.channel_id,
            claims.init_exp,
            claims.idle_timeout_seconds,
            loop_now,
        )
    except AttachRejected as exc:
        if exc.reason is Reject.REPLACE_RATE_LIMITED:
            rt.metrics.replace("rate_limited")
        raise
    if admitted.kind is Admission.REPLACED:
        rt.metrics.replace("ok")
        rt.record_end(admitted.evicted[0].channel, admitted.evicted, End.REPLACED)
        rt.close_endpoints(admitted.evicted, End.REPLACED)
    if admitted.pair_latency is not None:
        rt.metrics.pair_latency(admitted.pair_latency)
    return admitted


async def _flush(rt: TunnelRuntime, conn: Connection, admitted: Admitted) -> bool:
    """Write what the waiting peer sent before we arrived (§6.5).

    The peer's reader keeps buffering while the channel is flushing, so
    order holds; the hub flips the channel to paired when nothing is left.
    A failed write ends the channel and the newcomer gets ``attach_failed``.
    """
    ch = admitted.channel
    peer = ch.slots[3 - conn.role]
    assert peer is not None
    while batch := rt.hub.take_pending(ch, peer):
        for data in batch:
            try:
                await _send(conn, data)
            except ConnectionError:
                _end(rt, conn, End.WRITE_ERROR)
                await _reject(
                    rt,
                    conn.ws,
                    conn.transport,
                    AttachRejected(Reject.ATTACH_FAILED, "flush failed"),
                    role=conn.role,
                    channel_id=ch.channel_id,
                    token_id=conn.token_id,
                )
                return False
    return True


async def _send(dst: Connection, data: bytes) -> None:
    """Write one binary message; ``write_since`` lets the sweep time it out."""
    dst.write_since = asyncio.get_running_loop().time()
    try:
        await dst.ws.send_bytes(data)
    finally:
        dst.write_since = 0.0


async def _relay(rt: TunnelRuntime, conn: Connection) -> None:
    """Forward binary messages from ``conn`` to its peer until one side ends."""
    ws = conn.ws
    hub = rt.hub
    clock = asyncio.get_running_loop().time
    reason: End
    torn_down = False
    while True:
        msg = await ws.receive()
        if conn.end_reason is not None:
            reason, torn_down = conn.end_reason, True
            break
        kind = msg.type
        if kind is WSMsgType.BINARY:
            data: bytes = msg.data
            try:
                peer = hub.route(conn, data, clock())
            except ChannelEnded as exc:
                reason = exc.reason
                break
            if peer is None:
                continue
            try:
                await _send(cast(Connection, peer), data)
            except ConnectionError:
                ended = conn.end_reason or peer.end_reason
                if ended is not None:
                    reason, torn_down = ended, True
                    break
                reason = End.WRITE_ERROR
                break
            continue
        if kind is WSMsgType.TEXT:
            reason = End.NON_BINARY_FRAME
        elif kind is WSMsgType.CLOSE:
            await close_socket(
                ws, conn.transport, _echo_code(msg.data), "", rt.config.close_timeout
            )
            reason = End.PEER_CLOSED
        elif kind is WSMsgType.ERROR and _too_big(msg.data):
            reason = End.RECORD_TOO_LARGE
        else:
            reason = End.PEER_CLOSED
        break
    if not torn_down:
        _end(rt, conn, reason)
    # Closed here even when another endpoint's teardown already started a
    # background close: once this handler returns aiohttp may drop the
    # socket, and the close frame must not lose that race.
    await close_socket(
        ws, conn.transport, END_CODES[reason], reason.value, rt.config.close_timeout
    )


def _too_big(error: object) -> bool:
    return isinstance(error, WebSocketError) and error.code == 1009


def _end(rt: TunnelRuntime, conn: Endpoint, reason: End) -> None:
    """Tear down after ``conn`` failed; close the other endpoints in background.

    The failing endpoint itself is closed by the caller, which owns it.
    """
    closed = rt.hub.end(conn, reason)
    if closed:
        rt.record_end(conn.channel, closed, reason)
        rt.close_endpoints([ep for ep in closed if ep is not conn], reason)
