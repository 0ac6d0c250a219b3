"""RPC responder on one stream: a router by ``type_id`` and a serve loop.

Requests run concurrently (up to ``max_concurrency`` at once; the read loop
waits for a free slot when all are busy) and each answer carries the
request's id, so the caller matches them whatever their order. With
``max_concurrency=1`` the server behaves like the reference, answering
strictly in arrival order. Notifications run on the read loop, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flowersec_endpoint.rpc.envelope import (
    Envelope,
    EnvelopeReader,
    MessageKind,
    WireError,
    encode_envelope,
)
from flowersec_endpoint.rpc.errors import (
    HANDLER_NOT_FOUND,
    INTERNAL_ERROR,
    RpcClosedError,
    RpcError,
)
from flowersec_endpoint.rpc.framing import (
    MAX_FRAME_BYTES,
    FrameStream,
    RpcFramingError,
    encode_frame,
)
from flowersec_endpoint.rpc.observer import RpcObserver, emit, result_of

_log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 64

Handler = Callable[[Any], Awaitable[Any]]


class Router:
    """Handlers by ``type_id``; registering an id again replaces its handler."""

    def __init__(self) -> None:
        self._handlers: dict[int, Handler] = {}

    def register(self, type_id: int, handler: Handler) -> None:
        """Route ``type_id`` to ``handler(payload) -> result payload``.

        The handler raises :class:`RpcError` to answer with an error; any
        other exception answers 500 "internal error".
        """
        self._handlers[type_id] = handler

    def unregister(self, type_id: int) -> None:
        """Remove the handler of ``type_id`` (requests then get 404)."""
        self._handlers.pop(type_id, None)

    def get(self, type_id: int) -> Handler | None:
        """Return the handler of ``type_id``, if any."""
        return self._handlers.get(type_id)


class RpcServer:
    """Serves one RPC stream with a :class:`Router`; can also notify."""

    def __init__(
        self,
        stream: FrameStream,
        router: Router,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        observer: RpcObserver | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.router = router
        self.observer = observer
        self._stream = stream
        self._max_frame_bytes = max_frame_bytes
        self._slots = asyncio.Semaphore(max_concurrency)

    async def notify(self, type_id: int, payload: Any = None) -> None:
        """Send a notification to the client; raises if it cannot be sent."""
        frame = encode_frame(
            encode_envelope(Envelope(type_id, 0, 0, payload)), self._max_frame_bytes
        )
        try:
            self._stream.write(frame)
            await self._stream.drain()
        except Exception as exc:
            emit(self.observer, "server_frame_error", "write")
            raise RpcClosedError(f"rpc write failed: {exc}") from exc

    async def serve(self) -> None:
        """Answer requests until the peer half-closes; in-flight ones finish.

        Raises :class:`RpcClosedError` on a framing error, a third
        consecutive invalid frame, or a stream failure; pending handlers are
        cancelled then.
        """
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._read_loop(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await asyncio.gather(*tasks)

    async def _read_loop(self, tasks: set[asyncio.Task[None]]) -> None:
        envelopes = EnvelopeReader(self._max_frame_bytes, self._read_error)
        try:
            while True:
                chunk = await self._stream.read()
                if not chunk:
                    return
                for envelope in envelopes.feed(chunk):
                    await self._dispatch(envelope, tasks)
        except RpcFramingError as exc:
            self._read_error()
            raise RpcClosedError(f"rpc framing error: {exc}") from exc
        except RpcClosedError:
            raise
        except Exception as exc:
            raise RpcClosedError(f"rpc stream failed: {exc}") from exc

    def _read_error(self) -> None:
        emit(self.observer, "server_frame_error", "read")

    async def _dispatch(
        self, envelope: Envelope, tasks: set[asyncio.Task[None]]
    ) -> None:
        kind = envelope.kind
        if kind is MessageKind.NOTIFICATION:
            await self._run_notification(envelope)
        elif kind is MessageKind.REQUEST:
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._answer(envelope))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _run_notification(self, envelope: Envelope) -> None:
        handler = self.router.get(envelope.type_id)
        if handler is None:
            return
        try:
            await handler(envelope.payload)
        except Exception:
            _log.warning(
                "rpc notification handler failed type_id=%d",
                envelope.type_id,
                exc_info=True,
            )

    async def _answer(self, request: Envelope) -> None:
        try:
            response = await self._respond(request)
            frame, error = self._encode_response(request, response)
            emit(self.observer, "server_request", result_of(error))
            try:
                self._stream.write(frame)
                await self._stream.drain()
            except Exception as exc:
                emit(self.observer, "server_frame_error", "write")
                _log.debug("rpc response not written: %r", exc)
        finally:
            self._slots.release()

    async def _respond(self, request: Envelope) -> Envelope:
        handler = self.router.get(request.type_id)
        if handler is None:
            return _error_response(request, *HANDLER_NOT_FOUND)
        try:
            payload = await handler(request.payload)
        except RpcError as exc:
            return _error_response(request, exc.code, exc.message, exc.payload)
        except Exception:
            _log.warning(
                "rpc handler failed type_id=%d", request.type_id, exc_info=True
            )
            return _error_response(request, *INTERNAL_ERROR)
        return Envelope(request.type_id, 0, request.request_id, payload)

    def _encode_response(
        self, request: Envelope, response: Envelope
    ) -> tuple[bytes, WireError | None]:
        """The response frame and its error; 500 if the response cannot go."""
        try:
            frame = encode_frame(encode_envelope(response), self._max_frame_bytes)
            return frame, response.error
        except (TypeError, ValueError, RpcFramingError):
            _log.warning(
                "rpc response not sendable type_id=%d", request.type_id, exc_info=True
            )
            fallback = _error_response(request, *INTERNAL_ERROR)
            frame = encode_frame(encode_envelope(fallback), self._max_frame_bytes)
            return frame, fallback.error


def _error_response(
    request: Envelope, code: int, message: str, payload: Any = None
) -> Envelope:
    return Envelope(
        request.type_id, 0, request.request_id, payload, WireError(code, message)
    )
