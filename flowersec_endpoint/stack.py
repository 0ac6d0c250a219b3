"""The layers above the WebSocket, assembled for either role.

Each step (handshake, Yamux, stream hello) is one call here that turns its
layer's failure into the ``path/stage/code`` of api.md §2.1 and §9.3, so the
client and server flows read as plain step lists. On the tunnel path the
client also maps the tunnel's close reason to ``attach/<reason>``: the
tunnel never acknowledges an attach, so a rejection is only visible as the
socket closing while the handshake waits (tunnel.md §8.2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from flowersec_endpoint.attach import rejection_code
from flowersec_endpoint.e2ee import E2EEError, HandshakeCache, peek_init
from flowersec_endpoint.e2ee.channel import SecureChannel, handshake_error
from flowersec_endpoint.e2ee.channel import client_handshake as e2ee_client_handshake
from flowersec_endpoint.e2ee.channel import server_handshake as e2ee_server_handshake
from flowersec_endpoint.e2ee.messages import E2EEInit
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.observer import emit
from flowersec_endpoint.options import Options
from flowersec_endpoint.rpc import RpcClient, RpcFramingError
from flowersec_endpoint.rpc.observer import ConnectRpcObserver
from flowersec_endpoint.streamhello import encode_hello, read_hello
from flowersec_endpoint.transport import (
    CLOSE_PROTOCOL_ERROR,
    AnyWebSocket,
    TransportClosed,
    TransportError,
    WebSocketTransport,
)
from flowersec_endpoint.yamux.core import Role
from flowersec_endpoint.yamux.session import YamuxConfig, YamuxSession, YamuxStream

Stream = YamuxStream
Resolve = Callable[[E2EEInit], Awaitable[tuple[bytes, int]]]

__all__ = [
    "HandshakeCache",
    "HandshakeSettings",
    "Resolve",
    "Stream",
    "client_handshake",
    "open_kind_stream",
    "open_rpc_client",
    "read_stream_hello",
    "server_handshake",
    "server_handshake_resolved",
    "start_mux",
]


class HandshakeSettings(Protocol):
    """The settings a server handshake reads (connect options or direct ones)."""

    @property
    def handshake_timeout(self) -> float | None: ...
    @property
    def clock_skew(self) -> float: ...
    @property
    def server_features(self) -> int: ...
    @property
    def max_handshake_payload(self) -> int: ...
    @property
    def max_record_bytes(self) -> int: ...


def _closed_cause(exc: BaseException) -> TransportClosed | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TransportClosed):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


async def client_handshake(
    path: Path,
    ws: AnyWebSocket,
    *,
    channel_id: str,
    psk: bytes,
    suite: int,
    options: Options,
) -> SecureChannel:
    """Run the initiator handshake (api.md §2.1 step 12).

    On the tunnel path a close with an attach rejection reason becomes
    ``tunnel/attach/<reason>``.
    """
    started = time.monotonic()
    try:
        secure = await e2ee_client_handshake(
            WebSocketTransport(ws),
            psk=psk,
            channel_id=channel_id,
            suite=suite,
            client_features=options.client_features,
            path=path,
            handshake_timeout=options.handshake_timeout,
            max_handshake_payload=options.max_handshake_payload,
            max_record_bytes=options.max_record_bytes,
        )
    except asyncio.CancelledError:
        elapsed = time.monotonic() - started
        emit(options.observer, "on_handshake", path, "fail", "canceled", elapsed)
        raise
    except FlowersecError as exc:
        elapsed = time.monotonic() - started
        emit(options.observer, "on_handshake", path, "fail", str(exc.code), elapsed)
        closed = _closed_cause(exc) if path is Path.TUNNEL else None
        code = rejection_code(closed.reason) if closed is not None else None
        if code is None:
            raise
        raise FlowersecError(
            path, Stage.ATTACH, code, f"tunnel rejected the attach: {code}", exc
        ) from exc
    elapsed = time.monotonic() - started
    emit(options.observer, "on_handshake", path, "ok", None, elapsed)
    return secure


async def server_handshake(
    path: Path,
    ws: AnyWebSocket,
    *,
    channel_id: str,
    psk: bytes,
    suite: int,
    init_exp: int,
    options: HandshakeSettings,
    cache: HandshakeCache | None,
) -> SecureChannel:
    """Run the responder handshake for one known channel."""
    return await e2ee_server_handshake(
        WebSocketTransport(ws),
        psk=psk,
        channel_id=channel_id,
        init_exp=init_exp,
        suite=suite,
        clock_skew=options.clock_skew,
        server_features=options.server_features,
        cache=cache,
        path=path,
        handshake_timeout=options.handshake_timeout,
        max_handshake_payload=options.max_handshake_payload,
        max_record_bytes=options.max_record_bytes,
    )


async def server_handshake_resolved(
    path: Path,
    ws: AnyWebSocket,
    *,
    resolve: Resolve,
    options: HandshakeSettings,
    cache: HandshakeCache | None,
) -> SecureChannel:
    """Read the client's init, resolve its channel's PSK, then handshake.

    The whole sequence, resolver included, runs within the handshake
    timeout. The suite is the one the client's init names. Any failure
    fixes the socket's close code at 1002, as a failed handshake does.
    """
    transport = WebSocketTransport(ws)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(options.handshake_timeout):
            first = await transport.recv()
            init = peek_init(first, options.max_handshake_payload)
            psk, init_exp = await resolve(init)
    except (TimeoutError, E2EEError, TransportError) as exc:
        transport.choose_close(CLOSE_PROTOCOL_ERROR)
        raise handshake_error(path, exc) from exc
    except FlowersecError:
        transport.choose_close(CLOSE_PROTOCOL_ERROR)
        raise
    remaining = options.handshake_timeout
    if remaining is not None:
        remaining = max(remaining - (loop.time() - started), 1e-3)
    return await e2ee_server_handshake(
        transport,
        psk=psk,
        channel_id=init.channel_id,
        init_exp=init_exp,
        suite=init.suite,
        clock_skew=options.clock_skew,
        server_features=options.server_features,
        cache=cache,
        first_message=first,
        path=path,
        handshake_timeout=remaining,
        max_handshake_payload=options.max_handshake_payload,
        max_record_bytes=options.max_record_bytes,
    )


def start_mux(
    path: Path,
    secure: SecureChannel,
    *,
    client: bool,
    config: YamuxConfig | None = None,
) -> YamuxSession:
    """Start the Yamux session over the secure channel (step 13).

    ``config`` defaults to hashicorp v0.1.2's values (mux-rpc.md §2.11).
    """
    try:
        return YamuxSession(secure, Role.CLIENT if client else Role.SERVER, config)
    except Exception as exc:
        raise FlowersecError(
            path, Stage.YAMUX, Code.MUX_FAILED, "starting yamux failed", exc
        ) from exc


async def open_kind_stream(path: Path, mux: YamuxSession, kind: str) -> Stream:
    """Open a stream and write its StreamHello (steps 14-15).

    A kind whose hello no peer would accept (over 8 KiB) fails with
    ``rpc/stream_hello_failed`` before any stream is opened.
    """
    if not kind:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.MISSING_STREAM_KIND, "stream kind is empty"
        )
    try:
        hello = encode_hello(kind)
    except RpcFramingError as exc:
        raise FlowersecError(
            path, Stage.RPC, Code.STREAM_HELLO_FAILED, "stream hello too large", exc
        ) from exc
    try:
        stream = await mux.open_stream()
    except Exception as exc:
        raise FlowersecError(
            path, Stage.YAMUX, Code.OPEN_STREAM_FAILED, "opening a stream failed", exc
        ) from exc
    try:
        stream.write(hello)
        await stream.drain()
    except Exception as exc:
        stream.reset()
        raise FlowersecError(
            path,
            Stage.RPC,
            Code.STREAM_HELLO_FAILED,
            "writing the stream hello failed",
            exc,
        ) from exc
    return stream


async def open_rpc_client(
    path: Path, mux: YamuxSession, observer: object | None = None
) -> RpcClient:
    """Open the ``rpc`` stream and start an RPC client on it (steps 14-16).

    ``observer`` is the connect observer; its ``on_rpc_*`` hooks see the
    client's calls and notifications.
    """
    stream = await open_kind_stream(path, mux, "rpc")
    rpc_observer = None if observer is None else ConnectRpcObserver(observer)
    return RpcClient(stream, observer=rpc_observer)


async def read_stream_hello(
    path: Path, stream: Stream, max_bytes: int, timeout: float | None
) -> str:
    """Read an accepted stream's hello; on failure reset it and raise.

    A malformed, oversized or late hello (or a stream error) raises
    ``rpc/stream_hello_failed``; the session is unaffected.
    """
    try:
        async with asyncio.timeout(timeout):
            return await read_hello(stream, max_bytes)
    except Exception as exc:
        stream.reset()
        raise FlowersecError(
            path, Stage.RPC, Code.STREAM_HELLO_FAILED, "bad stream hello", exc
        ) from exc
