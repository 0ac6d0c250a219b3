"""Sans-I/O Yamux session: bytes in, events and frames out (mux-rpc.md §2).

The core owns every protocol decision (stream ids, states, windows, flags,
backlog, GO_AWAY) and both directions' byte buffers. The I/O layer feeds it
received chunks, asks it for the next frame to write, and wakes its own
waiters from the returned events. Frames are produced lazily: control frames
first, then at most one DATA (or FIN) frame per ready stream in round-robin,
so a bulk stream cannot starve the others.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from flowersec_endpoint.yamux.errors import Reason, YamuxError
from flowersec_endpoint.yamux.frame import (
    MAX_WINDOW,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    GoAwayCode,
    encode_frame,
)

MAX_STREAM_ID = 2**32 - 1
DEFAULT_ACCEPT_BACKLOG = 256
DEFAULT_MAX_FRAME_DATA = 64 * 1024


class Role(Enum):
    """Yamux role: the connecting endpoint is the client (odd stream ids)."""

    CLIENT = "client"
    SERVER = "server"


class StreamState(Enum):
    """Stream states of mux-rpc.md §2.6, as seen on the wire."""

    SYN_SENT = "syn_sent"
    SYN_RECEIVED = "syn_received"
    ESTABLISHED = "established"
    LOCAL_CLOSE = "local_close"
    REMOTE_CLOSE = "remote_close"
    CLOSED = "closed"
    RESET = "reset"


_OPEN = (StreamState.SYN_SENT, StreamState.SYN_RECEIVED, StreamState.ESTABLISHED)
_AFTER_LOCAL_FIN = {s: StreamState.LOCAL_CLOSE for s in _OPEN} | {
    StreamState.REMOTE_CLOSE: StreamState.CLOSED
}
_AFTER_REMOTE_FIN = {s: StreamState.REMOTE_CLOSE for s in _OPEN} | {
    StreamState.LOCAL_CLOSE: StreamState.CLOSED
}


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream; it waits in the accept backlog."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamAcked:
    """The peer acknowledged a stream we opened."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    """New bytes are buffered for reading."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """The peer granted send credit."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed (FIN): reads end after the buffered bytes."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset the stream (RST)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingAcked:
    """A reply to one of our pings arrived."""

    opaque: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer sent GO_AWAY(0): no new outbound streams from now on."""

    code: int


Event = (
    StreamOpened
    | StreamAcked
    | DataReceived
    | WindowOpened
    | StreamEnded
    | StreamReset
    | PingAcked
    | GoAwayReceived
)


class ChunkBuffer:
    """A FIFO of byte chunks; taking a prefix never copies the remainder."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        """Queue ``data`` at the end."""
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes from the front."""
        parts: list[bytes] = []
        want = min(n, self._size)
        got = 0
        while got < want:
            chunk = self._chunks[0]
            room = want - got
            if len(chunk) <= room:
                parts.append(self._chunks.popleft())
                got += len(chunk)
            else:
                parts.append(chunk[:room])
                self._chunks[0] = chunk[room:]
                got += room
        self._size -= got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def clear(self) -> None:
        """Drop everything."""
        self._chunks.clear()
        self._size = 0


class StreamCore:
    """One stream's state, windows and buffers; created by :class:`SessionCore`."""

    def __init__(self, session: SessionCore, stream_id: int, state: StreamState):
        self.id = stream_id
        self.state = state
        self.acked = state is not StreamState.SYN_SENT
        self.send_window = MAX_WINDOW
        self.recv_window = MAX_WINDOW
        self.error: YamuxError | None = None
        self._session = session
        self._recv = ChunkBuffer()
        self._send = ChunkBuffer()
        self._fin_requested = False
        self._remote_fin = False
        self._in_ready = False
        self._in_backlog = False

    @property
    def readable(self) -> int:
        """Bytes buffered for the application."""
        return len(self._recv)

    @property
    def pending_send(self) -> int:
        """Bytes written by the application but not yet framed."""
        return len(self._send)

    @property
    def at_eof(self) -> bool:
        """True once the peer's FIN arrived and every byte was read."""
        return self._remote_fin and not self._recv

    @property
    def fin_sent(self) -> bool:
        """True once our FIN has been framed."""
        return self.state in (StreamState.LOCAL_CLOSE, StreamState.CLOSED)

    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` buffered bytes and return credit to the peer.

        Returns ``b""`` when nothing is buffered (check :attr:`at_eof`); once
        the buffer is empty, raises the stream's error unless the peer had
        already finished sending.
        """
        if not self._recv:
            if self.error is not None and not self._remote_fin:
                raise self.error
            return b""
        data = self._recv.take(max_bytes)
        self._session._send_window_update(self, Flag.NONE)
        return data

    def write(self, data: bytes) -> None:
        """Queue ``data``; it is framed as the peer's credit allows."""
        if self.error is not None:
            raise self.error
        if self._fin_requested:
            raise YamuxError(Reason.STREAM_CLOSED, "write after close")
        self._send.append(data)
        self._session._mark_ready(self)

    def close(self) -> None:
        """Half-close: send FIN after the queued bytes. Idempotent."""
        if self._fin_requested or self.error is not None:
            return
        self._fin_requested = True
        self._session._mark_ready(self)

    def reset(self) -> None:
        """Abort with RST; pending and later reads and writes fail."""
        if self.error is not None or self.state is StreamState.CLOSED:
            return
        self._session._queue(
            encode_frame(FrameType.WINDOW_UPDATE, Flag.RST, self.id, 0)
        )
        self._terminate(YamuxError(Reason.STREAM_RESET, "reset locally"))

    def _sendable(self) -> bool:
        if self.error is not None or self.fin_sent:
            return False
        if self._send:
            return self.send_window > 0
        return self._fin_requested

    def _next_frame(self, max_data: int) -> bytes | None:
        if self.error is not None:
            return None
        if self._send:
            n = min(len(self._send), self.send_window, max_data)
            if n <= 0:
                return None
            self.send_window -= n
            body = self._send.take(n)
            return encode_frame(FrameType.DATA, Flag.NONE, self.id, n, body)
        if self._fin_requested and not self.fin_sent:
            self.state = _AFTER_LOCAL_FIN[self.state]
            if self.state is StreamState.CLOSED:
                self._session._remove(self)
            return encode_frame(FrameType.WINDOW_UPDATE, Flag.FIN, self.id, 0)
        return None

    def _terminate(self, error: YamuxError) -> None:
        keep_buffer = error.reason is not Reason.STREAM_RESET
        if self.state is not StreamState.CLOSED:
            self.state = StreamState.RESET
        self.error = error
        self._send.clear()
        if not keep_buffer:
            self._recv.clear()
        self._session._remove(self)


class SessionCore:
    """The session state machine for one side of a Yamux connection.

    Protocol errors raise :class:`YamuxError` from :meth:`receive_data` after
    queueing GO_AWAY(1) (flush it, then close the transport). A remote
    GO_AWAY with a non-zero code raises ``go_away`` and closes the session.

    Memory is bounded by the windows (256 KiB per stream and direction) times
    the streams alive; inbound streams are capped by the accept backlog until
    accepted and by the application after that. Control frames (ACKs, PING
    replies, window updates) are queued without a cap: a peer that floods
    PINGs faster than the transport drains grows that queue.
    """

    def __init__(
        self,
        role: Role,
        *,
        accept_backlog: int = DEFAULT_ACCEPT_BACKLOG,
        max_frame_data: int = DEFAULT_MAX_FRAME_DATA,
    ) -> None:
        if accept_backlog < 0 or max_frame_data <= 0:
            raise ValueError("accept_backlog >= 0 and max_frame_data > 0 required")
        self.role = role
        self.accept_backlog = accept_backlog
        self.max_frame_data = max_frame_data
        self.local_go_away = False
        self.remote_go_away = False
        self.error: YamuxError | None = None
        self._next_id = 1 if role is Role.CLIENT else 2
        self._streams: dict[int, StreamCore] = {}
        self._control: deque[bytes] = deque()
        self._ready: deque[StreamCore] = deque()
        self._decoder = FrameDecoder(MAX_WINDOW)
        self._backlog_used = 0
        self._unacked = 0
        self._ping_id = 0
        self._events: list[Event] = []

    @property
    def closed(self) -> bool:
        """True once the session ended (locally or by the peer)."""
        return self.error is not None

    @property
    def unacked_streams(self) -> int:
        """Outbound streams still waiting for the peer's ACK."""
        return self._unacked

    @property
    def stream_count(self) -> int:
        """Streams not yet fully closed or reset."""
        return len(self._streams)

    def get_stream(self, stream_id: int) -> StreamCore | None:
        """Return a live stream by id."""
        return self._streams.get(stream_id)

    def open_stream(self) -> StreamCore:
        """Allocate the next local id and queue ``WINDOW_UPDATE|SYN``.

        The stream is usable at once: the peer grants 256 KiB before its ACK.
        """
        if self.error is not None:
            raise self.error
        if self.remote_go_away:
            raise YamuxError(Reason.REMOTE_GO_AWAY, "peer sent GO_AWAY")
        if self._next_id > MAX_STREAM_ID:
            raise YamuxError(Reason.STREAMS_EXHAUSTED, "no stream ids left")
        stream = StreamCore(self, self._next_id, StreamState.SYN_SENT)
        self._next_id += 2
        self._streams[stream.id] = stream
        self._unacked += 1
        self._send_window_update(stream, Flag.SYN)
        return stream

    def accepted(self, stream: StreamCore) -> None:
        """Release the accept-backlog slot of a stream the application took."""
        if stream._in_backlog:
            stream._in_backlog = False
            self._backlog_used -= 1

    def ping(self) -> int:
        """Queue a PING and return its opaque id (matched by :class:`PingAcked`)."""
        if self.error is not None:
            raise self.error
        self._ping_id = (self._ping_id + 1) & MAX_STREAM_ID
        self._queue(encode_frame(FrameType.PING, Flag.SYN, 0, self._ping_id))
        return self._ping_id

    def go_away(self, code: GoAwayCode = GoAwayCode.NORMAL) -> None:
        """Queue GO_AWAY; later inbound SYNs are answered with RST."""
        if self.error is not None:
            return
        self.local_go_away = True
        self._queue(encode_frame(FrameType.GO_AWAY, Flag.NONE, 0, code))

    def close(self, error: YamuxError | None = None) -> None:
        """End the session: every live stream fails with ``error``."""
        if self.error is not None:
            return
        self.error = error or YamuxError(Reason.SESSION_CLOSED, "session closed")
        for stream in list(self._streams.values()):
            stream._terminate(self.error)
        self._ready.clear()

    def receive_data(self, data: bytes) -> list[Event]:
        """Process received bytes (any split) and return what changed."""
        if self.error is not None:
            raise self.error
        self._decoder.feed(data)
        self._events = []
        try:
            while (frame := self._decoder.next_frame()) is not None:
                self._handle(frame)
        except YamuxError as exc:
            if exc.reason is Reason.PROTOCOL_ERROR:
                self._queue(
                    encode_frame(
                        FrameType.GO_AWAY, Flag.NONE, 0, GoAwayCode.PROTOCOL_ERROR
                    )
                )
            self.close(exc)
            raise
        return self._events

    def has_output(self) -> bool:
        """True when :meth:`next_frame` would return a frame."""
        return bool(self._control) or bool(self._ready)

    def next_frame(self) -> tuple[bytes, int] | None:
        """Return the next complete frame to write and its stream id (0: control)."""
        if self._control:
            return self._control.popleft(), 0
        while self._ready:
            stream = self._ready.popleft()
            stream._in_ready = False
            frame = stream._next_frame(self.max_frame_data)
            if stream._sendable():
                self._mark_ready(stream)
            if frame is not None:
                return frame, stream.id
        return None

    def _handle(self, frame: Frame) -> None:
        if frame.type is FrameType.PING:
            if frame.flags & Flag.SYN:
                self._queue(encode_frame(FrameType.PING, Flag.ACK, 0, frame.length))
            elif frame.flags & Flag.ACK:
                self._events.append(PingAcked(frame.length))
        elif frame.type is FrameType.GO_AWAY:
            if frame.length != GoAwayCode.NORMAL:
                raise YamuxError(Reason.GO_AWAY, f"peer sent GO_AWAY({frame.length})")
            self.remote_go_away = True
            self._events.append(GoAwayReceived(frame.length))
        else:
            self._handle_stream_frame(frame)

    def _handle_stream_frame(self, frame: Frame) -> None:
        if frame.stream_id == 0:
            raise YamuxError(Reason.PROTOCOL_ERROR, "stream frame on stream 0")
        stream = self._streams.get(frame.stream_id)
        if frame.flags & Flag.SYN:
            if stream is not None:
                raise YamuxError(Reason.PROTOCOL_ERROR, "duplicate SYN")
            stream = self._accept_syn(frame.stream_id)
        if stream is None:
            return
        self._apply(stream, frame)

    def _accept_syn(self, stream_id: int) -> StreamCore | None:
        ours = (stream_id % 2 == 1) == (self.role is Role.CLIENT)
        if ours or self.local_go_away or self._backlog_used >= self.accept_backlog:
            self._queue(encode_frame(FrameType.WINDOW_UPDATE, Flag.RST, stream_id, 0))
            return None
        stream = StreamCore(self, stream_id, StreamState.SYN_RECEIVED)
        self._streams[stream_id] = stream
        stream._in_backlog = True
        self._backlog_used += 1
        self._send_window_update(stream, Flag.ACK)
        stream.state = StreamState.ESTABLISHED
        self._events.append(StreamOpened(stream_id))
        return stream

    def _apply(self, stream: StreamCore, frame: Frame) -> None:
        sid = stream.id
        if frame.flags & Flag.ACK and not stream.acked:
            stream.acked = True
            self._unacked -= 1
            if stream.state is StreamState.SYN_SENT:
                stream.state = StreamState.ESTABLISHED
            self._events.append(StreamAcked(sid))
        if frame.type is FrameType.DATA:
            self._receive_body(stream, frame.body)
        elif frame.length:
            stream.send_window += frame.length
            self._mark_ready(stream)
            self._events.append(WindowOpened(sid))
        if frame.flags & Flag.FIN and stream.state in _AFTER_REMOTE_FIN:
            stream.state = _AFTER_REMOTE_FIN[stream.state]
            stream._remote_fin = True
            if stream.state is StreamState.CLOSED:
                self._remove(stream)
            self._events.append(StreamEnded(sid))
        if frame.flags & Flag.RST:
            stream._terminate(YamuxError(Reason.STREAM_RESET, "reset by peer"))
            self._events.append(StreamReset(sid))

    def _receive_body(self, stream: StreamCore, body: bytes) -> None:
        if len(body) > stream.recv_window:
            raise YamuxError(Reason.PROTOCOL_ERROR, "receive window exceeded")
        stream.recv_window -= len(body)
        if not body:
            return
        if stream.state in (StreamState.REMOTE_CLOSE, StreamState.CLOSED):
            raise YamuxError(Reason.PROTOCOL_ERROR, "data after FIN")
        stream._recv.append(body)
        self._events.append(DataReceived(stream.id))

    def _send_window_update(self, stream: StreamCore, flags: Flag) -> None:
        if not flags and stream.state not in (*_OPEN, StreamState.LOCAL_CLOSE):
            return
        delta = (MAX_WINDOW - stream.readable) - stream.recv_window
        if delta < MAX_WINDOW // 2 and not flags:
            return
        stream.recv_window += delta
        self._queue(encode_frame(FrameType.WINDOW_UPDATE, flags, stream.id, delta))

    def _mark_ready(self, stream: StreamCore) -> None:
        if not stream._in_ready and stream._sendable():
            stream._in_ready = True
            self._ready.append(stream)

    def _queue(self, frame: bytes) -> None:
        self._control.append(frame)

    def _remove(self, stream: StreamCore) -> None:
        if self._streams.pop(stream.id, None) is None:
            return
        self.accepted(stream)
        if not stream.acked:
            # A dead stream no longer waits for its ACK (frees an open slot).
            stream.acked = True
            self._unacked -= 1
