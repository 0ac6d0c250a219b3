"""The serving endpoint: tunnel attach, direct WebSocket handler, stream runtime.

Covers api.md §4: attaching to a tunnel as role server, accepting direct
WebSocket connections, and dispatching each accepted stream by its kind.

A :class:`Server` holds the stream handlers and the RPC registration; it
serves any number of sessions, each obtained from :func:`connect_tunnel`
(through a tunnel) or from a :func:`direct_handler` mounted in an aiohttp
application (no tunnel). Unlike the reference, a stream's hello is read in
that stream's own task with a timeout, so a silent stream never blocks the
accept loop (mux-rpc.md §7).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Unpack

from aiohttp import hdrs, web

from flowersec_endpoint.attach import ROLE_SERVER, attach_message
from flowersec_endpoint.dial import dial, send_attach
from flowersec_endpoint.e2ee.constants import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    DEFAULT_MAX_RECORD_BYTES,
)
from flowersec_endpoint.e2ee.errors import RecordFailure, SecureChannelError
from flowersec_endpoint.e2ee.messages import E2EEInit
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import ChannelInitGrant
from flowersec_endpoint.inputs import check_suite, decode_psk, endpoint_instance_id
from flowersec_endpoint.options import (
    ServerOptionArgs,
    build_options,
    resolve_origin,
    tunnel_keepalive,
)
from flowersec_endpoint.rpc import MAX_FRAME_BYTES, Router, RpcObserver, RpcServer
from flowersec_endpoint.rpc.server import DEFAULT_MAX_CONCURRENCY
from flowersec_endpoint.session import Connection
from flowersec_endpoint.stack import (
    HandshakeCache,
    Stream,
    read_stream_hello,
    server_handshake,
    server_handshake_resolved,
    start_mux,
)
from flowersec_endpoint.streamhello import (
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_HELLO_BYTES,
    HelloAcceptor,
)
from flowersec_endpoint.transport import close_websocket, websocket_message_limit
from flowersec_endpoint.yamux import Reason, YamuxConfig, YamuxError
from flowersec_tunnel.origin import OriginPolicy

log = logging.getLogger(__name__)

StreamHandler = Callable[[Stream], Awaitable[None]]
RpcRegister = Callable[[Router, RpcServer], Awaitable[None] | None]
ErrorReporter = Callable[[BaseException], None]


class Session(Connection):
    """A serving endpoint's connection: accepts the streams clients open."""

    async def accept_stream_hello(
        self,
        max_hello_bytes: int = DEFAULT_MAX_HELLO_BYTES,
        timeout: float | None = None,
    ) -> tuple[str, Stream]:
        """Accept the next stream and read its hello; return ``(kind, stream)``.

        ``max_hello_bytes <= 0`` means the default 8 KiB, as in the
        reference. A bad hello resets that stream and raises
        ``rpc/stream_hello_failed``; the session keeps going.
        """
        if max_hello_bytes <= 0:
            max_hello_bytes = DEFAULT_MAX_HELLO_BYTES
        try:
            stream = await self.mux.accept_stream()
        except Exception as exc:
            raise FlowersecError(
                self.path,
                Stage.YAMUX,
                Code.ACCEPT_STREAM_FAILED,
                "accepting a stream failed",
                exc,
            ) from exc
        kind = await read_stream_hello(self.path, stream, max_hello_bytes, timeout)
        return kind, stream


_PEER_LEFT = frozenset((RecordFailure.TRANSPORT_CLOSED, RecordFailure.CLOSED))


def session_failure(path: Path, error: YamuxError) -> FlowersecError | None:
    """Why a served session ended, as an error, or ``None`` for a quiet end.

    Quiet: a local close, the peer's clean close (WebSocket 1000), and the
    peer leaving without one (its socket or the tunnel's went away: any
    other close code, or none). Everything else ended the session on a
    failure: a peer's protocol violation (a broken record such as
    ``invalid_magic``, ``bad_seq`` or ``decrypt_failed``, a text message, a
    bad Yamux frame or a GO_AWAY with an error code) or a Yamux timeout
    (keepalive, write, open). Those become
    ``<path>/yamux/accept_stream_failed`` (api.md §9.3) with the Yamux
    error as the cause and the secure channel's error, if any, below it.
    """
    cause = error.__cause__
    if error.reason is Reason.SESSION_CLOSED:
        return None
    if isinstance(cause, SecureChannelError):
        if cause.reason in _PEER_LEFT:
            return None
        detail = f"secure channel failed ({cause.reason})"
    else:
        detail = str(error)
    return FlowersecError(
        path,
        Stage.YAMUX,
        Code.ACCEPT_STREAM_FAILED,
        f"session ended: {detail}",
        error,
    )


def _default_reporter(error: BaseException) -> None:
    log.warning("serve_error error=%s", error)


class Server:
    """Stream handlers by kind, plus a fresh RPC router per RPC stream.

    ``rpc_register(router, server)`` is called for every stream of kind
    ``rpc_kind``; keep ``server`` to send notifications. Each such
    :class:`RpcServer` reads frames up to ``rpc_max_frame_bytes`` (the
    reference's ``RPCOptions.MaxFrameBytes``, default 1 MiB) and runs up to
    ``rpc_max_concurrency`` requests at once (1 answers strictly in arrival
    order, as the reference does), reporting to ``rpc_observer`` (the
    reference's ``RPCOptions.Observer``). A handler added with
    :meth:`handle` for a kind wins over the built-in RPC kind.
    Failures that do not end a session go to ``on_error`` (default: a
    warning log line); so does the failure that ends a direct handler's
    session, which :meth:`serve_session` raises instead.
    """

    def __init__(
        self,
        *,
        rpc_register: RpcRegister | None = None,
        rpc_kind: str = "rpc",
        max_stream_hello_bytes: int = DEFAULT_MAX_HELLO_BYTES,
        hello_timeout: float | None = DEFAULT_HELLO_TIMEOUT,
        on_error: ErrorReporter | None = None,
        rpc_max_frame_bytes: int = MAX_FRAME_BYTES,
        rpc_max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rpc_observer: RpcObserver | None = None,
    ) -> None:
        if max_stream_hello_bytes <= 0:
            raise ValueError("max_stream_hello_bytes must be positive")
        if rpc_max_frame_bytes <= 0 or rpc_max_concurrency <= 0:
            raise ValueError("rpc_max_frame_bytes and rpc_max_concurrency must be > 0")
        self.rpc_register = rpc_register
        self.rpc_max_frame_bytes = rpc_max_frame_bytes
        self.rpc_max_concurrency = rpc_max_concurrency
        self.rpc_observer = rpc_observer
        self.rpc_kind = rpc_kind or "rpc"
        self.max_stream_hello_bytes = max_stream_hello_bytes
        self.hello_timeout = hello_timeout
        self.on_error = on_error or _default_reporter
        self._handlers: dict[str, StreamHandler] = {}
        self._sessions: set[Session] = set()

    @property
    def sessions(self) -> int:
        """How many sessions are being served right now."""
        return len(self._sessions)

    async def close(self) -> None:
        """Close every session being served (graceful shutdown).

        For a direct handler, call it from the app's ``on_shutdown``.
        """
        sessions = list(self._sessions)
        for result in await asyncio.gather(
            *(session.close() for session in sessions), return_exceptions=True
        ):
            if isinstance(result, Exception):
                log.debug("session_close_failed error=%r", result)

    def handle(self, kind: str, handler: StreamHandler | None) -> None:
        """Serve streams of ``kind`` with ``handler``; ``None`` removes it."""
        if not kind:
            raise ValueError("stream kind is empty")
        if handler is None:
            self._handlers.pop(kind, None)
        else:
            self._handlers[kind] = handler

    def report(self, error: BaseException) -> None:
        """Hand a non-fatal failure to ``on_error``, never letting it raise."""
        try:
            self.on_error(error)
        except Exception as exc:
            log.error("on_error_failed error=%r", exc)

    async def handle_stream(
        self,
        kind: str,
        stream: Stream,
        *,
        path: Path = Path.AUTO,
        session: Session | None = None,
    ) -> None:
        """Dispatch one stream whose hello was read; close it when done.

        A handler failing because its ``session`` ended (the peer left, the
        tunnel went away) is logged at debug level, not reported.
        """
        try:
            handler = self._handlers.get(kind)
            if handler is not None:
                await handler(stream)
            elif kind == self.rpc_kind and self.rpc_register is not None:
                await self._serve_rpc(stream)
            else:
                self.report(
                    FlowersecError(
                        path,
                        Stage.RPC,
                        Code.MISSING_HANDLER,
                        f"unhandled stream kind {kind!r}",
                    )
                )
        except asyncio.CancelledError:
            stream.reset()
            raise
        except Exception as exc:
            stream.reset()
            if session is not None and session.mux.closed:
                log.debug("handler_ended_with_session error=%r", exc)
            else:
                self.report(exc)
            return
        try:
            await stream.close()
        except Exception as exc:
            log.debug("stream_close_failed error=%r", exc)

    async def _serve_rpc(self, stream: Stream) -> None:
        assert self.rpc_register is not None
        router = Router()
        server = RpcServer(
            stream,
            router,
            max_frame_bytes=self.rpc_max_frame_bytes,
            max_concurrency=self.rpc_max_concurrency,
            observer=self.rpc_observer,
        )
        result = self.rpc_register(router, server)
        if result is not None:
            await result
        await server.serve()

    async def serve_session(self, session: Session) -> None:
        """Accept and dispatch streams until the session ends.

        Hellos are read by a :class:`HelloAcceptor` (one task per stream,
        with ``hello_timeout``); each accepted stream's handler runs in its
        own task. Handlers still running when the session ends are
        cancelled. Returns when the session ends cleanly or the peer left;
        raises ``<path>/yamux/accept_stream_failed`` when it died of a
        failure (see :func:`session_failure`). It does not close the
        session.
        """
        tasks: set[asyncio.Task[None]] = set()
        self._sessions.add(session)
        acceptor = HelloAcceptor(
            session.mux,
            max_hello_bytes=self.max_stream_hello_bytes,
            hello_timeout=self.hello_timeout,
            on_error=partial(self._bad_hello, session),
        )
        try:
            while True:
                try:
                    kind, stream = await acceptor.accept()
                except YamuxError as exc:
                    failure = session_failure(session.path, exc)
                    break
                task = asyncio.create_task(
                    self.handle_stream(kind, stream, path=session.path, session=session)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self._sessions.discard(session)
            await acceptor.close()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        if failure is not None:
            raise failure
        log.debug("session_ended path=%s", session.path)

    def _bad_hello(self, session: Session, error: BaseException) -> None:
        if session.mux.closed:
            log.debug("hello_ended_with_session error=%r", error)
            return
        self.report(
            FlowersecError(
                session.path,
                Stage.RPC,
                Code.STREAM_HELLO_FAILED,
                "bad stream hello",
                error,
            )
        )


async def connect_tunnel(
    grant: ChannelInitGrant | None,
    *,
    origin: str | None = None,
    handshake_cache: HandshakeCache | None = None,
    yamux_config: YamuxConfig | None = None,
    **options: Unpack[ServerOptionArgs],
) -> Session:
    """Attach to the tunnel as role server and return the session (api.md §4.1).

    The handshake waits until a client arrives through the tunnel, so
    ``handshake_timeout`` (default 10 s) is also the window in which a
    client must show up. A rejected attach surfaces as a handshake error,
    as in the reference serving endpoint. ``yamux_config`` plays the part
    of the reference's ``WithYamuxConfig`` (serving side only).
    """
    path = Path.TUNNEL
    if grant is None:
        raise FlowersecError(path, Stage.VALIDATE, Code.MISSING_GRANT, "no grant")
    if grant.role != ROLE_SERVER:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.ROLE_MISMATCH, "grant is not for role server"
        )
    for code, missing in (
        (Code.MISSING_TUNNEL_URL, not grant.tunnel_url),
        (Code.MISSING_CHANNEL_ID, not grant.channel_id),
        (Code.MISSING_TOKEN, not grant.token),
        (Code.MISSING_INIT_EXP, grant.channel_init_expire_at_unix_s <= 0),
    ):
        if missing:
            raise FlowersecError(path, Stage.VALIDATE, code, f"grant: {code}")
    opts = build_options(path, options)
    resolved_origin = resolve_origin(path, origin, opts.headers)
    psk = decode_psk(path, grant.e2ee_psk_b64u)
    suite = check_suite(path, grant.default_suite)
    keepalive = tunnel_keepalive(opts.keepalive_interval, grant.idle_timeout_seconds)

    dialed = await dial(path, grant.tunnel_url, resolved_origin, opts)
    try:
        eid = endpoint_instance_id(path, opts.endpoint_instance_id)
        message = attach_message(
            channel_id=grant.channel_id,
            role=ROLE_SERVER,
            token=grant.token,
            endpoint_instance_id=eid,
        )
        await send_attach(dialed, message, path, opts)
        secure = await server_handshake(
            path,
            dialed.ws,
            channel_id=grant.channel_id,
            psk=psk,
            suite=suite,
            init_exp=grant.channel_init_expire_at_unix_s,
            options=opts,
            cache=handshake_cache,
        )
    except BaseException:
        await dialed.close()
        raise
    try:
        mux = start_mux(path, secure, client=False, config=yamux_config)
    except BaseException:
        await secure.close()
        await dialed.close()
        raise
    return Session(
        path=path,
        endpoint_instance_id=eid,
        secure=secure,
        mux=mux,
        close_socket=dialed.close,
        keepalive_interval=keepalive,
    )


async def serve_tunnel(
    grant: ChannelInitGrant | None,
    server: Server,
    *,
    origin: str | None = None,
    handshake_cache: HandshakeCache | None = None,
    yamux_config: YamuxConfig | None = None,
    **options: Unpack[ServerOptionArgs],
) -> None:
    """Attach as role server, serve the session until it ends, then close.

    Raises what :meth:`Server.serve_session` raises: a session that died
    of a failure is ``tunnel/yamux/accept_stream_failed``.
    """
    session = await connect_tunnel(
        grant,
        origin=origin,
        handshake_cache=handshake_cache,
        yamux_config=yamux_config,
        **options,
    )
    try:
        await server.serve_session(session)
    finally:
        await session.close()


@dataclass(frozen=True, slots=True)
class DirectChannel:
    """The one channel a direct handler serves when no resolver is given."""

    channel_id: str
    psk: bytes
    init_expire_at_unix_s: int
    suite: int = 1


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """What a resolver learns from the client's init before the handshake."""

    channel_id: str
    version: int
    suite: int
    client_features: int


@dataclass(frozen=True, slots=True)
class ResolvedChannel:
    """A resolver's answer: the channel's PSK and init expiry."""

    psk: bytes
    init_expire_at_unix_s: int


Resolver = Callable[[ResolveRequest], ResolvedChannel | Awaitable[ResolvedChannel]]


@dataclass(frozen=True, slots=True)
class DirectSettings:
    """Handshake and record settings of a direct handler (api.md §4.2).

    ``handshake_timeout`` 0 means the default 10 s here (it cannot be
    disabled); ``clock_skew`` 0 means 30 s.
    """

    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    clock_skew: float = DEFAULT_CLOCK_SKEW
    server_features: int = 0
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES

    def checked(self) -> DirectSettings:
        """Apply the zero-means-default rules; negative values are invalid."""
        values = (
            self.handshake_timeout,
            self.clock_skew,
            self.server_features,
            self.max_handshake_payload,
            self.max_record_bytes,
            self.max_buffered_bytes,
        )
        if any(v < 0 for v in values) or min(values[3:]) == 0:
            raise FlowersecError(
                Path.DIRECT, Stage.VALIDATE, Code.INVALID_OPTION, "bad direct settings"
            )
        return DirectSettings(
            handshake_timeout=self.handshake_timeout or DEFAULT_HANDSHAKE_TIMEOUT,
            clock_skew=self.clock_skew or DEFAULT_CLOCK_SKEW,
            server_features=self.server_features,
            max_handshake_payload=self.max_handshake_payload,
            max_record_bytes=self.max_record_bytes,
            max_buffered_bytes=self.max_buffered_bytes,
        )


async def accept_direct(
    ws: web.WebSocketResponse | None,
    channel: DirectChannel | None = None,
    *,
    resolver: Resolver | None = None,
    settings: DirectSettings | None = None,
    handshake_cache: HandshakeCache | None = None,
    yamux_config: YamuxConfig | None = None,
) -> Session:
    """Run the server handshake on an upgraded WebSocket; return the session.

    Give either ``channel`` (one known channel) or ``resolver`` (picks the
    PSK by the channel id in the client's init). Checks run in the Go
    order: ``missing_conn``, the channel's ``missing_channel_id``,
    ``missing_init_exp``, ``invalid_psk``, ``invalid_suite``, then
    ``invalid_option``. The socket is closed on every failure except
    ``missing_conn``: with 1002 after a failed handshake, 1000 otherwise.
    """
    path = Path.DIRECT
    if ws is None:
        raise FlowersecError(path, Stage.VALIDATE, Code.MISSING_CONN, "no websocket")
    try:
        if channel is not None:
            _check_channel(path, channel)
        if (channel is None) == (resolver is None):
            raise FlowersecError(
                path,
                Stage.VALIDATE,
                Code.INVALID_OPTION,
                "give exactly one of a channel and a resolver",
            )
        checked = (settings or DirectSettings()).checked()
        if channel is not None:
            secure = await server_handshake(
                path,
                ws,
                channel_id=channel.channel_id,
                psk=channel.psk,
                suite=channel.suite or 1,
                init_exp=channel.init_expire_at_unix_s,
                options=checked,
                cache=handshake_cache,
            )
        else:
            assert resolver is not None
            secure = await server_handshake_resolved(
                path,
                ws,
                resolve=partial(_resolve, path, resolver),
                options=checked,
                cache=handshake_cache,
            )
    except BaseException:
        await close_websocket(ws)
        raise
    try:
        mux = start_mux(path, secure, client=False, config=yamux_config)
    except BaseException:
        await secure.close()
        await close_websocket(ws)
        raise
    return Session(
        path=path,
        endpoint_instance_id=None,
        secure=secure,
        mux=mux,
        close_socket=partial(close_websocket, ws),
        keepalive_interval=0.0,
    )


def _check_channel(path: Path, channel: DirectChannel) -> None:
    if not channel.channel_id:
        raise FlowersecError(path, Stage.VALIDATE, Code.MISSING_CHANNEL_ID, "empty")
    if channel.init_expire_at_unix_s <= 0:
        raise FlowersecError(path, Stage.VALIDATE, Code.MISSING_INIT_EXP, "not set")
    if len(channel.psk) != 32:
        raise FlowersecError(path, Stage.VALIDATE, Code.INVALID_PSK, "not 32 bytes")
    if (channel.suite or 1) not in (1, 2):
        raise FlowersecError(path, Stage.VALIDATE, Code.INVALID_SUITE, "not 1 or 2")


async def _resolve(path: Path, resolver: Resolver, init: E2EEInit) -> tuple[bytes, int]:
    request = ResolveRequest(
        channel_id=init.channel_id,
        version=init.version,
        suite=init.suite,
        client_features=init.client_features,
    )
    try:
        result = resolver(request)
        if inspect.isawaitable(result):
            result = await result
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.RESOLVE_FAILED, "resolver failed", exc
        ) from exc
    if not isinstance(result, ResolvedChannel):
        raise FlowersecError(
            path, Stage.VALIDATE, Code.RESOLVE_FAILED, "resolver gave no channel"
        )
    if result.init_expire_at_unix_s <= 0:
        raise FlowersecError(path, Stage.VALIDATE, Code.MISSING_INIT_EXP, "not set")
    if len(result.psk) != 32:
        raise FlowersecError(path, Stage.VALIDATE, Code.INVALID_PSK, "not 32 bytes")
    return result.psk, result.init_expire_at_unix_s


def direct_handler(
    server: Server,
    *,
    channel: DirectChannel | None = None,
    resolver: Resolver | None = None,
    allowed_origins: Iterable[str] = (),
    allow_no_origin: bool = False,
    check_origin: Callable[[str | None], bool] | None = None,
    settings: DirectSettings | None = None,
    handshake_cache: HandshakeCache | None = None,
    yamux_config: YamuxConfig | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving direct (no tunnel) connections.

    Mount it on any route: ``app.router.add_get("/ws", handler)``. The
    Origin is checked with the tunnel's allow-list rules (api.md §6) unless
    ``check_origin`` decides; a missing Origin is reported as
    ``direct/validate/missing_origin`` and other refusals as
    ``direct/connect/upgrade_failed``, both answered with HTTP 403.
    """
    policy = OriginPolicy(allowed_origins, allow_no_origin=allow_no_origin)
    if check_origin is None and not policy.entries and not allow_no_origin:
        raise ValueError(
            "direct_handler needs allowed_origins, allow_no_origin or check_origin"
        )
    if (channel is None) == (resolver is None):
        raise ValueError("direct_handler needs exactly one of channel and resolver")
    allows = check_origin or policy.allows
    checked = (settings or DirectSettings()).checked()

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            autoping=True,
            heartbeat=None,
            compress=False,
            max_msg_size=websocket_message_limit(
                checked.max_record_bytes, checked.max_handshake_payload
            ),
        )
        if not ws.can_prepare(request).ok:
            server.report(
                FlowersecError(
                    Path.DIRECT, Stage.CONNECT, Code.UPGRADE_FAILED, "not a websocket"
                )
            )
            return web.Response(status=400, text="Bad Request\n")
        origin = request.headers.get(hdrs.ORIGIN)
        if not allows(origin):
            code = (
                Code.MISSING_ORIGIN
                if not origin and check_origin is None
                else Code.UPGRADE_FAILED
            )
            stage = Stage.VALIDATE if code is Code.MISSING_ORIGIN else Stage.CONNECT
            server.report(FlowersecError(Path.DIRECT, stage, code, "origin refused"))
            return web.Response(status=403, text="Forbidden\n")
        await ws.prepare(request)
        try:
            session = await accept_direct(
                ws,
                channel,
                resolver=resolver,
                settings=checked,
                handshake_cache=handshake_cache,
                yamux_config=yamux_config,
            )
        except FlowersecError as exc:
            server.report(exc)
            return ws
        try:
            await server.serve_session(session)
        except FlowersecError as exc:
            server.report(exc)
        finally:
            await session.close()
        return ws

    return handler
