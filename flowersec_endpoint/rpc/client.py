"""RPC caller on one stream: concurrent calls, notifications in order.

One read task owns the stream's receive side. Notification handlers run on
it, in registration order, before the next frame is processed, so a
notification sent before a response reaches subscribers before the call
returns (mux-rpc.md §4.6). Every frame goes out in one ``write`` call, so
concurrent writers never interleave.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from flowersec_endpoint.rpc.envelope import (
    MAX_SAFE_ID,
    Envelope,
    EnvelopeReader,
    MessageKind,
    encode_envelope,
)
from flowersec_endpoint.rpc.errors import CallError, RpcClosedError
from flowersec_endpoint.rpc.framing import (
    MAX_FRAME_BYTES,
    FrameStream,
    RpcFramingError,
    encode_frame,
)
from flowersec_endpoint.rpc.observer import CallResult, RpcObserver, emit, result_of

_log = logging.getLogger(__name__)

NotifyHandler = Callable[[Any], object]


class RpcClient:
    """Calls and notifications over an RPC stream; starts its reader at once.

    There is no default call timeout (as in the reference): pass
    ``timeout=`` or cancel the awaiting task. Cancellation is local only;
    a late response is dropped.
    """

    def __init__(
        self,
        stream: FrameStream,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        observer: RpcObserver | None = None,
    ) -> None:
        self._stream = stream
        self._max_frame_bytes = max_frame_bytes
        self.observer = observer
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Envelope]] = {}
        self._subscribers: dict[int, list[NotifyHandler]] = {}
        self._error: RpcClosedError | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def closed(self) -> bool:
        """True once the client was closed or its stream failed."""
        return self._error is not None

    async def call(
        self, type_id: int, payload: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Send a request and return the response payload.

        Raises :class:`CallError` for an error response, ``TimeoutError``
        after ``timeout`` seconds, :class:`RpcFramingError` if the request
        is too large to send, ``ValueError``/``TypeError`` if it is not
        strict JSON or ``type_id`` is not a u32 (nothing is sent then), and
        :class:`RpcClosedError` when the client or its stream is gone.
        """
        self._check_open()
        if self._next_id > MAX_SAFE_ID:
            raise RpcClosedError("request id overflow")
        request_id = self._next_id
        self._next_id += 1
        frame = self._frame(Envelope(type_id, request_id, 0, payload))
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Envelope] = loop.create_future()
        self._pending[request_id] = waiter
        started = loop.time()
        result: CallResult = "transport_error"
        try:
            async with asyncio.timeout(timeout):
                await self._send(frame)
                response = await waiter
            result = result_of(response.error)
        except (TimeoutError, asyncio.CancelledError):
            result = "canceled"
            raise
        finally:
            self._pending.pop(request_id, None)
            emit(self.observer, "client_call", result, loop.time() - started)
        if response.error is not None:
            raise CallError(
                type_id, response.error.code, response.error.message, response.payload
            )
        return response.payload

    async def notify(self, type_id: int, payload: Any = None) -> None:
        """Send a notification (no response)."""
        self._check_open()
        await self._send(self._frame(Envelope(type_id, 0, 0, payload)))

    def on_notify(self, type_id: int, handler: NotifyHandler) -> Callable[[], None]:
        """Subscribe to notifications of ``type_id``; returns an unsubscribe.

        The handler gets the payload; if it returns an awaitable, the read
        loop awaits it before the next frame. Exceptions are logged.
        """
        handlers = self._subscribers.setdefault(type_id, [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    async def close(self) -> None:
        """Fail pending calls with "rpc closed" and half-close the stream."""
        if self._error is None:
            self._fail(RpcClosedError("rpc closed"))
            self._reader.cancel()
            try:
                await self._stream.close()
            except Exception:
                _log.debug("rpc stream close failed", exc_info=True)
        await asyncio.gather(self._reader, return_exceptions=True)

    async def wait_closed(self) -> None:
        """Wait until the read loop ended (cancelling the wait leaves it running)."""
        await asyncio.shield(asyncio.gather(self._reader, return_exceptions=True))

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error

    def _frame(self, envelope: Envelope) -> bytes:
        return encode_frame(encode_envelope(envelope), self._max_frame_bytes)

    async def _send(self, frame: bytes) -> None:
        try:
            self._stream.write(frame)
            await self._stream.drain()
        except Exception as exc:
            emit(self.observer, "client_frame_error", "write")
            raise RpcClosedError(f"rpc write failed: {exc}") from exc

    async def _read_loop(self) -> None:
        envelopes = EnvelopeReader(self._max_frame_bytes, self._read_error)
        try:
            while True:
                chunk = await self._stream.read()
                if not chunk:
                    raise RpcClosedError("rpc stream ended")
                for envelope in envelopes.feed(chunk):
                    await self._deliver(envelope)
        except RpcClosedError as exc:
            self._fail(exc)
        except RpcFramingError as exc:
            self._read_error()
            self._fail(_closed("rpc framing error", exc))
        except Exception as exc:
            self._fail(_closed("rpc stream failed", exc))

    def _read_error(self) -> None:
        emit(self.observer, "client_frame_error", "read")

    async def _deliver(self, envelope: Envelope) -> None:
        kind = envelope.kind
        if kind is MessageKind.RESPONSE:
            waiter = self._pending.get(envelope.response_to)
            if waiter is not None and not waiter.done():
                waiter.set_result(envelope)
        elif kind is MessageKind.NOTIFICATION:
            emit(self.observer, "client_notify")
            for handler in list(self._subscribers.get(envelope.type_id, ())):
                try:
                    result = handler(envelope.payload)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    _log.warning(
                        "rpc notify handler failed type_id=%d",
                        envelope.type_id,
                        exc_info=True,
                    )

    def _fail(self, error: RpcClosedError) -> None:
        if self._error is None:
            self._error = error
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(self._error)
        self._pending.clear()


def _closed(message: str, cause: BaseException) -> RpcClosedError:
    error = RpcClosedError(f"{message}: {cause}")
    error.__cause__ = cause
    return error
