"""StreamHello: the first frame of every stream, naming its kind (mux-rpc.md §3).

The opener writes it once; the acceptor reads it before dispatching and
sends nothing back. The bytes are what both reference writers produce, e.g.
``00 00 00 14 {"kind":"rpc","v":1}``. The session helpers at the end open a
stream of a kind, and accept streams by kind without letting one silent
stream block the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from flowersec_endpoint.encoding import (
    UINT32_MAX,
    DecodeError,
    dumps_compact,
    loads_object,
    read_int,
)
from flowersec_endpoint.rpc.framing import (
    FrameStream,
    RpcFramingError,
    encode_frame,
    read_frame,
)
from flowersec_endpoint.yamux import Reason, YamuxError, YamuxSession, YamuxStream

_log = logging.getLogger(__name__)

STREAM_HELLO_VERSION = 1
DEFAULT_MAX_HELLO_BYTES = 8 * 1024
DEFAULT_HELLO_TIMEOUT = 10.0


class StreamHelloError(Exception):
    """A missing, oversized or malformed hello ("bad stream hello")."""


def encode_hello(kind: str) -> bytes:
    """Return the framed hello for ``kind``; an empty kind is a ``ValueError``.

    A hello above the 8 KiB every reference reader accepts (the TS one
    cannot be configured otherwise) raises :class:`RpcFramingError`
    instead of being sent to certain rejection.
    """
    if not kind:
        raise ValueError("stream kind is empty")
    payload = dumps_compact({"kind": kind, "v": STREAM_HELLO_VERSION})
    return encode_frame(payload, DEFAULT_MAX_HELLO_BYTES)


def decode_hello(payload: bytes) -> str:
    """Validate a hello's JSON and return its kind; unknown keys are ignored."""
    try:
        obj = loads_object(payload)
        version = read_int(obj, "v", 0, UINT32_MAX)
    except DecodeError as exc:
        raise StreamHelloError(f"bad stream hello: {exc}") from exc
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise StreamHelloError("bad stream hello: kind must be a non-empty string")
    if version != STREAM_HELLO_VERSION:
        raise StreamHelloError(f"bad stream hello: unsupported version {version}")
    return kind


async def read_hello(
    stream: FrameStream, max_bytes: int = DEFAULT_MAX_HELLO_BYTES
) -> str:
    """Read the hello frame (JSON at most ``max_bytes``) and return the kind.

    Reads nothing past the hello. Stream errors propagate unchanged.
    """
    try:
        payload = await read_frame(stream, max_bytes)
    except RpcFramingError as exc:
        raise StreamHelloError(f"bad stream hello: {exc}") from exc
    return decode_hello(payload)


async def open_hello_stream(session: YamuxSession, kind: str) -> YamuxStream:
    """Open a stream and write its hello (see :func:`encode_hello` for errors).

    Yamux failures propagate as :class:`YamuxError`.
    """
    hello = encode_hello(kind)
    stream = await session.open_stream()
    stream.write(hello)
    await stream.drain()
    return stream


HelloErrorHandler = Callable[[BaseException], None]


class HelloAcceptor:
    """Accept a session's streams and yield ``(kind, stream)`` once hellos arrive.

    Each hello is read in its own task under ``hello_timeout``, so a peer
    that opens a stream and stays silent delays nobody (mux-rpc.md §7.1). A
    bad or late hello resets that stream and is passed to ``on_error``; the
    session keeps going. At most ``max_pending`` streams are between accept
    and :meth:`accept` (reading a hello or ready): each holds a slot until
    it is handed out or its hello fails. With every slot taken no further
    stream is accepted, so new SYNs wait in (and then overflow) the Yamux
    accept backlog.
    """

    def __init__(
        self,
        session: YamuxSession,
        *,
        max_hello_bytes: int = DEFAULT_MAX_HELLO_BYTES,
        hello_timeout: float | None = DEFAULT_HELLO_TIMEOUT,
        max_pending: int = 256,
        on_error: HelloErrorHandler | None = None,
    ) -> None:
        self._session = session
        self._max_bytes = max_hello_bytes
        self._timeout = hello_timeout
        self._on_error = on_error
        self._slots = asyncio.Semaphore(max_pending)
        self._ready: deque[tuple[str, YamuxStream]] = deque()
        self._readers: set[asyncio.Task[None]] = set()
        self._ended: BaseException | None = None
        self._wake = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def accept(self) -> tuple[str, YamuxStream]:
        """Return the next stream whose hello was read, with its kind.

        Raises the session's :class:`YamuxError` once it ended and every
        ready stream was handed out.
        """
        while not self._ready:
            if self._ended is not None and not self._readers:
                raise self._ended
            self._wake.clear()
            await self._wake.wait()
        self._slots.release()
        return self._ready.popleft()

    async def close(self) -> None:
        """Stop accepting; streams still reading their hello are reset."""
        self._loop_task.cancel()
        for task in list(self._readers):
            task.cancel()
        await asyncio.gather(self._loop_task, *self._readers, return_exceptions=True)

    def __aiter__(self) -> HelloAcceptor:
        return self

    async def __anext__(self) -> tuple[str, YamuxStream]:
        try:
            return await self.accept()
        except YamuxError:
            raise StopAsyncIteration from None

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._slots.acquire()
                try:
                    stream = await self._session.accept_stream()
                except BaseException:
                    self._slots.release()
                    raise
                task = loop.create_task(self._read_one(stream))
                self._readers.add(task)
                task.add_done_callback(self._reader_done)
        except YamuxError as exc:
            self._ended = exc
        except asyncio.CancelledError:
            self._ended = YamuxError(Reason.SESSION_CLOSED, "acceptor closed")
            raise
        finally:
            self._wake.set()

    async def _read_one(self, stream: YamuxStream) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                kind = await read_hello(stream, self._max_bytes)
        except asyncio.CancelledError:
            stream.reset()
            self._slots.release()
            raise
        except Exception as exc:
            stream.reset()
            self._slots.release()
            self._report(exc)
            return
        self._ready.append((kind, stream))

    def _report(self, error: Exception) -> None:
        if self._on_error is None:
            _log.debug("stream hello failed: %r", error)
            return
        try:
            self._on_error(error)
        except Exception:
            _log.warning("hello on_error callback failed", exc_info=True)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        self._readers.discard(task)
        self._wake.set()
