"""Asyncio layer: handshakes over a transport, and the secure channel.

Thin by design: the protocol lives in the sans-I/O core; this module owns
the transport, the locks that keep records in order, the handshake timeout
and the keepalive task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowersec_endpoint.e2ee.cache import HandshakeCache
from flowersec_endpoint.e2ee.constants import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    DEFAULT_MAX_RECORD_BYTES,
    RecordFlags,
    Suite,
)
from flowersec_endpoint.e2ee.errors import (
    E2EEError,
    RecordError,
    RecordFailure,
    SecureChannelError,
)
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    Clock,
    ServerConfig,
    ServerHandshake,
)
from flowersec_endpoint.e2ee.keyschedule import Random
from flowersec_endpoint.e2ee.records import RecordLayer
from flowersec_endpoint.encoding import DecodeError, b64u_decode
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.transport import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    ChoosesClose,
    MessageTransport,
    TransportClosed,
    TransportError,
    UnexpectedMessage,
)

log = logging.getLogger(__name__)


def default_keepalive_interval(idle_timeout_seconds: float) -> float:
    """Keepalive period in seconds for a tunnel idle timeout (api.md §8).

    Half the idle timeout, at least 0.5 s; 0 (disabled) when the idle
    timeout is not positive.
    """
    if idle_timeout_seconds <= 0:
        return 0.0
    return max(idle_timeout_seconds / 2, 0.5)


class SecureChannel:
    """An established E2EE channel: app records in, app records out.

    :meth:`read` returns one app record's plaintext at a time and reads the
    transport only when called, so nothing is buffered ahead of the consumer.
    Ping and rekey records are handled inside. Any record failure ends the
    channel: the transport is closed (1002) and every later call raises the
    same :class:`SecureChannelError`. A transport closed with code 1000 is a
    clean end of stream (``read()`` returns ``b""``); any other closure is a
    failure with reason ``transport_closed``.

    A write cancelled while its frame is being handed to the transport ends
    the channel too: the frame's sequence number is spent and the peer would
    otherwise see a gap.
    """

    def __init__(
        self,
        transport: MessageTransport,
        records: RecordLayer,
        *,
        path: Path = Path.DIRECT,
        keepalive_interval: float = 0.0,
    ) -> None:
        if keepalive_interval < 0:
            raise ValueError("keepalive_interval must not be negative")
        self._transport = transport
        self._records = records
        self._path = path
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._ended = asyncio.Event()
        self._end_error: SecureChannelError | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        if keepalive_interval > 0:
            self._keepalive = asyncio.create_task(
                self._keepalive_loop(keepalive_interval)
            )

    @property
    def records(self) -> RecordLayer:
        """The sans-I/O record state (sequence numbers, for diagnostics)."""
        return self._records

    @property
    def closed(self) -> bool:
        """True once the channel has ended, cleanly or not."""
        return self._ended.is_set()

    async def read(self) -> bytes:
        """Next app record's plaintext; ``b""`` at a clean end of stream."""
        async with self._read_lock:
            while True:
                if self._ended.is_set():
                    if self._end_error is not None:
                        raise self._end_error
                    return b""
                try:
                    frame = await self._transport.recv()
                except TransportClosed as exc:
                    if self._ended.is_set() or exc.code == CLOSE_NORMAL:
                        self._end(None)
                        continue
                    raise self._fail(RecordFailure.TRANSPORT_CLOSED, exc) from exc
                except UnexpectedMessage as exc:
                    raise self._fail(RecordFailure.TEXT_MESSAGE, exc) from exc
                except TransportError as exc:
                    raise self._fail(RecordFailure.TRANSPORT_CLOSED, exc) from exc
                try:
                    flags, plaintext = self._records.open(frame)
                except RecordError as exc:
                    raise self._fail(exc.reason, exc) from exc
                if flags == RecordFlags.APP and plaintext:
                    return plaintext

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as app records, none of another write in between."""
        async with self._write_lock:
            self._check_open(Code.NOT_CONNECTED)
            try:
                for frame in self._records.seal_app(data):
                    await self._send(frame, Code.NOT_CONNECTED)
            except RecordError as exc:
                raise self._fail(exc.reason, exc) from exc

    async def ping(self) -> None:
        """Send one encrypted keepalive record (``secure/ping_failed``)."""
        async with self._write_lock:
            self._check_open(Code.PING_FAILED)
            await self._send(
                self._seal(RecordFlags.PING, Code.PING_FAILED), Code.PING_FAILED
            )

    async def rekey(self) -> None:
        """Switch the send key; the peer follows at the rekey record."""
        async with self._write_lock:
            self._check_open(Code.NOT_CONNECTED)
            await self._send(
                self._seal(RecordFlags.REKEY, Code.NOT_CONNECTED), Code.NOT_CONNECTED
            )

    async def close(self) -> None:
        """End the channel cleanly (close code 1000); idempotent."""
        if not self._ended.is_set():
            self._end(None)
            self._close_task = asyncio.ensure_future(
                _close_quietly(self._transport, CLOSE_NORMAL)
            )
        await self.wait_closed()

    async def wait_closed(self) -> BaseException | None:
        """Wait for the end; return the failure, or ``None`` for a clean end."""
        await self._ended.wait()
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        return self._end_error

    def _check_open(self, code: Code) -> None:
        """Raise if the channel has ended: the failure itself, or, for a
        ping or after a clean close, an error with the caller's code."""
        if not self._ended.is_set():
            return
        error = self._end_error
        if error is not None and code is not Code.PING_FAILED:
            raise error
        reason = RecordFailure.CLOSED if error is None else error.reason
        raise SecureChannelError(
            self._path, code, reason, "secure channel is closed", error
        )

    def _seal(self, flags: RecordFlags, code: Code) -> bytearray:
        """Seal an empty ping or rekey record; a failure (the sequence
        space is spent) ends the channel rather than leaving it half open."""
        try:
            if flags is RecordFlags.REKEY:
                return self._records.seal_rekey()
            return self._records.seal_ping()
        except RecordError as exc:
            raise self._fail(exc.reason, exc, code) from exc

    async def _send(self, frame: bytes | bytearray, code: Code) -> None:
        try:
            await self._transport.send(frame)
        except TransportError as exc:
            if self._ended.is_set() and self._end_error is None:
                raise SecureChannelError(
                    self._path, code, RecordFailure.CLOSED, "channel closed", exc
                ) from exc
            raise self._fail(RecordFailure.TRANSPORT_CLOSED, exc, code) from exc
        except asyncio.CancelledError as exc:
            self._fail(RecordFailure.TRANSPORT_CLOSED, exc)
            raise

    def _fail(
        self,
        reason: RecordFailure,
        cause: BaseException,
        code: Code = Code.NOT_CONNECTED,
    ) -> SecureChannelError:
        """End the channel with an error (first one wins) and close 1002."""
        if self._ended.is_set():
            if self._end_error is not None:
                return self._end_error
            return SecureChannelError(self._path, code, reason, cause=cause)
        message = cause.message if isinstance(cause, E2EEError) else str(reason)
        error = SecureChannelError(self._path, code, reason, message, cause)
        self._records.fail(RecordError(reason, message))
        self._end(error)
        log.debug("secure_channel_failed reason=%s", reason)
        self._close_task = _close_in_background(self._transport, CLOSE_PROTOCOL_ERROR)
        return error

    def _end(self, error: SecureChannelError | None) -> None:
        if self._ended.is_set():
            return
        self._end_error = error
        self._ended.set()
        if (
            self._keepalive is not None
            and self._keepalive is not asyncio.current_task()
        ):
            self._keepalive.cancel()

    async def _keepalive_loop(self, interval: float) -> None:
        while not self._ended.is_set():
            await asyncio.sleep(interval)
            try:
                await self.ping()
            except FlowersecError:
                return


def handshake_error(path: Path, exc: BaseException) -> FlowersecError:
    """The ``path/stage/code`` error for a failure during a handshake."""
    if isinstance(exc, FlowersecError):
        return exc
    if isinstance(exc, E2EEError):
        return FlowersecError(path, exc.stage, exc.code, exc.message, exc)
    if isinstance(exc, TimeoutError):
        return FlowersecError(
            path, Stage.HANDSHAKE, Code.TIMEOUT, "handshake timed out", exc
        )
    return FlowersecError(path, Stage.HANDSHAKE, Code.HANDSHAKE_FAILED, str(exc), exc)


def _psk_bytes(psk: bytes | str, path: Path) -> bytes:
    if isinstance(psk, bytes):
        return psk
    try:
        return b64u_decode(psk, canonical=True)
    except DecodeError as exc:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.INVALID_PSK, "PSK is not base64url", exc
        ) from exc


def _check_timeout(timeout: float | None, path: Path) -> float | None:
    if timeout is not None and timeout < 0:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.INVALID_OPTION, "negative handshake timeout"
        )
    return timeout or None


_closing: set[asyncio.Task[None]] = set()


async def _close_quietly(transport: MessageTransport, code: int) -> None:
    try:
        await transport.close(code, "")
    except (TransportError, ConnectionError, RuntimeError) as exc:
        log.debug("transport_close_failed error=%r", exc)


def _close_in_background(transport: MessageTransport, code: int) -> asyncio.Task[None]:
    """Start closing without waiting for the peer's close echo.

    A WebSocket close waits for the peer's answer (up to the socket's close
    timeout); a failure must be reported at once, so the close runs on. The
    code is fixed on the transport first, so a caller closing the socket
    before this task runs sends ``code`` too.
    """
    if isinstance(transport, ChoosesClose):
        transport.choose_close(code)
    task = asyncio.create_task(_close_quietly(transport, code))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return task


@asynccontextmanager
async def _guarded(
    transport: MessageTransport, path: Path, timeout: float | None
) -> AsyncIterator[None]:
    """Run a handshake exchange within ``timeout``, one failure policy for both roles.

    A failure starts closing the transport with 1002 and raises under
    ``path``; a cancellation closes it with 1000 and propagates.
    """
    try:
        async with asyncio.timeout(timeout):
            yield
    except (E2EEError, TransportError, TimeoutError) as exc:
        _close_in_background(transport, CLOSE_PROTOCOL_ERROR)
        raise handshake_error(path, exc) from exc
    except asyncio.CancelledError:
        _close_in_background(transport, CLOSE_NORMAL)
        raise


async def client_handshake(
    transport: MessageTransport,
    *,
    psk: bytes | str,
    channel_id: str,
    suite: int = Suite.X25519_HKDF_SHA256_AES_256_GCM,
    client_features: int = 0,
    path: Path = Path.DIRECT,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    keepalive_interval: float = 0.0,
    rng: Random | None = None,
    clock: Clock = time.time,
) -> SecureChannel:
    """Run the initiator's handshake and return the established channel.

    ``psk`` is raw bytes or its base64url text. A ``handshake_timeout`` of
    ``None`` or 0 disables the timeout. Failures raise ``FlowersecError``
    under ``path``; when the transport closed, ``cause`` is the
    :class:`~flowersec_endpoint.transport.TransportClosed` carrying the
    close reason (the tunnel's attach rejections). Configuration errors
    (stage ``validate``) leave the transport alone; any later failure, and
    cancellation (which propagates), start closing it without waiting for
    the peer's close echo.
    """
    try:
        machine = ClientHandshake(
            ClientConfig(
                psk=_psk_bytes(psk, path),
                channel_id=channel_id,
                suite=suite,
                client_features=client_features,
                max_handshake_payload=max_handshake_payload,
                max_record_bytes=max_record_bytes,
            ),
            rng=rng,
            clock=clock,
        )
    except E2EEError as exc:
        raise handshake_error(path, exc) from exc
    async with _guarded(transport, path, _check_timeout(handshake_timeout, path)):
        await transport.send(machine.start())
        while not machine.done:
            reply = machine.receive(await transport.recv())
            if reply is not None:
                await transport.send(reply)
    return SecureChannel(
        transport,
        machine.records,
        path=path,
        keepalive_interval=keepalive_interval,
    )


async def server_handshake(
    transport: MessageTransport,
    *,
    psk: bytes | str,
    channel_id: str,
    init_exp: int,
    suite: int = Suite.X25519_HKDF_SHA256_AES_256_GCM,
    clock_skew: float = DEFAULT_CLOCK_SKEW,
    server_features: int = 0,
    cache: HandshakeCache | None = None,
    first_message: bytes | None = None,
    path: Path = Path.DIRECT,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    keepalive_interval: float = 0.0,
    rng: Random | None = None,
    clock: Clock = time.time,
) -> SecureChannel:
    """Run the responder's handshake and return the established channel.

    ``first_message`` is an init already read by the caller (a server that
    picked the PSK with :func:`~flowersec_endpoint.e2ee.peek_init`). Share a
    ``cache`` between connections to honour init retries across them.
    Errors, timeout and cancellation as in :func:`client_handshake`.
    """
    try:
        machine = ServerHandshake(
            ServerConfig(
                psk=_psk_bytes(psk, path),
                channel_id=channel_id,
                init_exp=init_exp,
                suite=suite,
                clock_skew=clock_skew,
                server_features=server_features,
                max_handshake_payload=max_handshake_payload,
                max_record_bytes=max_record_bytes,
            ),
            cache=cache,
            rng=rng,
            clock=clock,
        )
    except E2EEError as exc:
        raise handshake_error(path, exc) from exc
    async with _guarded(transport, path, _check_timeout(handshake_timeout, path)):
        message = first_message
        while not machine.done:
            if message is None:
                message = await transport.recv()
            await transport.send(machine.receive(message))
            message = None
    return SecureChannel(
        transport,
        machine.records,
        path=path,
        keepalive_interval=keepalive_interval,
    )
