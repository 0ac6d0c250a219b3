"""Channel pairing state machine (tunnel.md §6), without any I/O.

A channel is two role slots that pair by ``channel_id``. This module owns
every decision: create, join, replace (with its rate limiter), buffering
while the peer is absent, the pairing hand-over, teardown, and which
channels the cleanup loop must end. The asyncio layer (``session``) reads
and writes sockets and asks the :class:`Hub` what to do with each message.

Hot path cost: :meth:`Hub.route` allocates nothing; it returns the peer
endpoint to write to, or ``None`` when the message was buffered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from .attach import AttachRejected, Reject

MAX_RECORD_BYTES = 1048576
MAX_PENDING_BYTES = 262144
DEFAULT_MAX_TOTAL_PENDING_BYTES = 268435456
DEFAULT_MAX_CONNS = 12000
DEFAULT_MAX_CHANNELS = 6000
FSEC_HEADER_BYTES = 18


class Role(IntEnum):
    """Endpoint roles as carried in tokens and attach messages (§0.4)."""

    CLIENT = 1
    SERVER = 2


class End(StrEnum):
    """Why an admitted endpoint or a channel ended.

    The first nine are the reference's ``close_total`` labels (§9.5);
    ``replaced`` and ``shutdown`` are additions. None of them reuses an
    attach reason token (§11.2), so reference clients read them as a plain
    disconnect.
    """

    PEER_CLOSED = "peer_closed"
    NON_BINARY_FRAME = "non_binary_frame"
    RECORD_TOO_LARGE = "record_too_large"
    UNKNOWN_CHANNEL = "unknown_channel"
    MISSING_SRC = "missing_src"
    PENDING_OVERFLOW = "pending_overflow"
    WRITE_ERROR = "write_error"
    INIT_EXPIRED = "init_expired"
    IDLE_TIMEOUT = "idle_timeout"
    REPLACED = "replaced"
    SHUTDOWN = "shutdown"


END_CODES: dict[End, int] = {
    End.PEER_CLOSED: 1001,
    End.NON_BINARY_FRAME: 1003,
    End.RECORD_TOO_LARGE: 1009,
    End.UNKNOWN_CHANNEL: 1001,
    End.MISSING_SRC: 1001,
    End.PENDING_OVERFLOW: 1008,
    End.WRITE_ERROR: 1011,
    End.INIT_EXPIRED: 1008,
    End.IDLE_TIMEOUT: 1001,
    End.REPLACED: 1001,
    End.SHUTDOWN: 1001,
}
"""Close code sent with each end reason (the reference sends no frame)."""


class ChannelState(Enum):
    """Lifecycle of one channel state; transitions happen only in :class:`Hub`."""

    WAITING = "waiting"
    """One slot filled; messages from it are buffered."""
    FLUSHING = "flushing"
    """Both slots filled; the waiting side's buffer is being handed over."""
    PAIRED = "paired"
    """Both slots filled; messages go straight to the peer."""
    CLOSED = "closed"
    """Torn down or replaced; endpoints still pointing here are stale."""


class ChannelEnded(Exception):
    """Raised by :meth:`Hub.route` when the message ends the endpoint."""

    def __init__(self, reason: End) -> None:
        super().__init__(reason.value)
        self.reason = reason


def looks_like_record(data: bytes) -> bool:
    """FSEC record header sniffing of §6.9 (nothing is decrypted)."""
    size = len(data)
    return (
        size >= FSEC_HEADER_BYTES
        and data[:5] == b"FSEC\x01"
        and int.from_bytes(data[14:18], "big") == size - FSEC_HEADER_BYTES
        and size - FSEC_HEADER_BYTES <= MAX_RECORD_BYTES
    )


class Endpoint:
    """One admitted WebSocket in a channel slot.

    The asyncio layer subclasses this to add its socket; the hub only reads
    the fields below.
    """

    __slots__ = (
        "admitted_at",
        "bytes_in",
        "bytes_out",
        "channel",
        "end_reason",
        "instance_id",
        "pending",
        "pending_bytes",
        "role",
        "token_id",
        "write_since",
    )

    def __init__(self, role: int, instance_id: str, token_id: str) -> None:
        self.role = role
        self.instance_id = instance_id
        self.token_id = token_id
        self.channel: Channel | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.admitted_at = 0.0
        self.write_since = 0.0
        """Monotonic start of the write in progress to this endpoint, or 0."""
        self.end_reason: End | None = None
        """Set once, by the first teardown that reaches this endpoint."""


@dataclass(frozen=True, slots=True)
class ReplacePolicy:
    """Same-role replacement limits (§6.3); not exposed on the CLI."""

    cooldown: float = 0.0
    window: float = 10.0
    max_per_window: int = 5


class RateLimiter:
    """Fixed-window replacement limiter for one (channel, role)."""

    __slots__ = ("count", "last", "window_start")

    def __init__(self) -> None:
        self.last: float | None = None
        self.window_start: float | None = None
        self.count = 0

    def allow(self, now: float, policy: ReplacePolicy) -> bool:
        """Decide one replacement attempt; a refusal changes nothing."""
        if (
            policy.cooldown > 0
            and self.last is not None
            and now - self.last < policy.cooldown
        ):
            return False
        windowed = policy.window > 0 and policy.max_per_window > 0
        if windowed:
            if self.window_start is None or now - self.window_start >= policy.window:
                self.window_start = now
                self.count = 0
            if self.count >= policy.max_per_window:
                return False
        self.last = now
        if windowed:
            self.count += 1
        return True


class Channel:
    """One channel state: parameters fixed by its first token, two slots."""

    __slots__ = (
        "channel_id",
        "first_seen",
        "idle_timeout",
        "init_exp",
        "last_active",
        "limiters",
        "saw_record",
        "slots",
        "state",
    )

    def __init__(
        self,
        channel_id: str,
        init_exp: int,
        idle_timeout: int,
        now: float,
        limiters: tuple[RateLimiter, RateLimiter, RateLimiter] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.init_exp = init_exp
        self.idle_timeout = idle_timeout
        self.first_seen = now
        self.last_active = now
        self.saw_record = False
        self.state = ChannelState.WAITING
        self.slots: list[Endpoint | None] = [None, None, None]
        """Indexed by role (index 0 unused), so the peer is ``slots[3 - role]``."""
        self.limiters = limiters
        """Replacement limiters by role, made at the first replacement: most
        channels never see one, and three limiters cost about 250 bytes."""

    def endpoints(self) -> Iterator[Endpoint]:
        """The endpoints currently in the slots."""
        for ep in self.slots:
            if ep is not None:
                yield ep


class Admission(Enum):
    """How an admitted endpoint entered its channel."""

    CREATED = "created"
    JOINED = "joined"
    """Took the empty slot of an existing channel whose other slot is empty."""
    PAIRED = "paired"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class Admitted:
    """Outcome of :meth:`Hub.admit`."""

    kind: Admission
    channel: Channel
    evicted: tuple[Endpoint, ...] = ()
    """Endpoints removed by a replacement; the caller closes them."""
    pair_latency: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Hub limits; CLI values <= 0 were already mapped to defaults."""

    max_conns: int = DEFAULT_MAX_CONNS
    max_channels: int = DEFAULT_MAX_CHANNELS
    max_pending_bytes: int = MAX_PENDING_BYTES
    max_total_pending_bytes: int = DEFAULT_MAX_TOTAL_PENDING_BYTES
    """0 disables the global cap."""
    replace: ReplacePolicy = ReplacePolicy()


def _noop() -> None:
    return None


class Hub:
    """All channels of one tunnel process, and the connection count."""

    def __init__(
        self, limits: Limits, on_encrypted: Callable[[], None] = _noop
    ) -> None:
        self.limits = limits
        self.channels: dict[str, Channel] = {}
        self.conns = 0
        self.total_pending = 0
        self.on_encrypted = on_encrypted
        """Called once per channel state entering the encrypted phase."""

    def acquire_conn(self) -> bool:
        """Count a new upgraded connection; False when at ``max_conns``."""
        if self.conns >= self.limits.max_conns:
            return False
        self.conns += 1
        return True

    def release_conn(self) -> None:
        """Release a slot taken by :meth:`acquire_conn`."""
        self.conns -= 1

    def admit(
        self, ep: Endpoint, channel_id: str, init_exp: int, idle: int, now: float
    ) -> Admitted:
        """Channel admission (§6.2, §6.3); raises :class:`AttachRejected`."""
        ch = self.channels.get(channel_id)
        if ch is None:
            if len(self.channels) >= self.limits.max_channels:
                raise AttachRejected(Reject.ATTACH_FAILED, "too many channels")
            ch = Channel(channel_id, init_exp, idle, now)
            self.channels[channel_id] = ch
            self._place(ch, ep, now)
            return Admitted(Admission.CREATED, ch)
        if init_exp != ch.init_exp:
            raise AttachRejected(Reject.ATTACH_FAILED, "init_exp mismatch")
        if idle != ch.idle_timeout:
            raise AttachRejected(Reject.ATTACH_FAILED, "idle timeout mismatch")
        if ch.slots[ep.role] is not None:
            return self._replace(ch, ep, now)
        self._place(ch, ep, now)
        if ch.slots[3 - ep.role] is None:
            return Admitted(Admission.JOINED, ch)
        ch.state = ChannelState.FLUSHING
        latency = now - ch.first_seen
        return Admitted(Admission.PAIRED, ch, (), latency if latency > 0 else None)

    def _place(self, ch: Channel, ep: Endpoint, now: float) -> None:
        ch.slots[ep.role] = ep
        ch.last_active = now
        ep.channel = ch
        ep.admitted_at = now

    def _replace(self, old: Channel, ep: Endpoint, now: float) -> Admitted:
        limiters = old.limiters or (RateLimiter(), RateLimiter(), RateLimiter())
        old.limiters = limiters
        if not limiters[ep.role].allow(now, self.limits.replace):
            raise AttachRejected(Reject.REPLACE_RATE_LIMITED, "replacement refused")
        evicted = self._close(old, End.REPLACED)
        ch = Channel(old.channel_id, old.init_exp, old.idle_timeout, now, limiters)
        self.channels[ch.channel_id] = ch
        self._place(ch, ep, now)
        return Admitted(Admission.REPLACED, ch, evicted)

    def route(self, src: Endpoint, data: bytes, now: float) -> Endpoint | None:
        """Decide where one binary message from ``src`` goes (§6.4).

        Returns the peer to write it to, or None when it was buffered.
        Raises :class:`ChannelEnded` when ``src`` is stale or its buffer
        overflowed; the caller then calls :meth:`end`.
        """
        ch = src.channel
        if ch is None or ch.state is ChannelState.CLOSED:
            current = self.channels.get(ch.channel_id) if ch is not None else None
            raise ChannelEnded(
                End.UNKNOWN_CHANNEL if current is None else End.MISSING_SRC
            )
        ch.last_active = now
        src.bytes_in += len(data)
        peer = ch.slots[3 - src.role]
        if not ch.saw_record and peer is not None and looks_like_record(data):
            ch.saw_record = True
            self.on_encrypted()
        if peer is None or ch.state is ChannelState.FLUSHING:
            self._buffer(src, data)
            return None
        return peer

    def _buffer(self, src: Endpoint, data: bytes) -> None:
        size = len(data)
        limits = self.limits
        if src.pending_bytes + size > limits.max_pending_bytes or (
            limits.max_total_pending_bytes
            and self.total_pending + size > limits.max_total_pending_bytes
        ):
            raise ChannelEnded(End.PENDING_OVERFLOW)
        src.pending.append(data)
        src.pending_bytes += size
        self.total_pending += size

    def take_pending(self, ch: Channel, src: Endpoint) -> list[bytes]:
        """Hand over ``src``'s buffer for the pairing flush (§6.5).

        Returns the next batch to write to the peer, in order. An empty
        batch means the hand-over is complete: the channel is now paired
        and messages flow directly.
        """
        batch = src.pending
        if not batch:
            if ch.state is ChannelState.FLUSHING:
                ch.state = ChannelState.PAIRED
            return batch
        src.pending = []
        self.total_pending -= src.pending_bytes
        src.pending_bytes = 0
        if not ch.saw_record and any(looks_like_record(m) for m in batch):
            ch.saw_record = True
            self.on_encrypted()
        return batch

    def end(self, ep: Endpoint, reason: End) -> tuple[Endpoint, ...]:
        """Tear down after ``ep`` failed (§6.7); return endpoints to close.

        If ``ep`` still holds its slot the whole channel ends; a stale
        endpoint ends alone; an endpoint that already ended yields nothing,
        so each end is counted once. Every returned endpoint has its buffer dropped
        and ``end_reason`` set (the first reason wins).
        """
        if ep.end_reason is not None:
            return ()
        ch = ep.channel
        if (
            ch is not None
            and ch.state is not ChannelState.CLOSED
            and ch.slots[ep.role] is ep
        ):
            return self._close(ch, reason)
        self._drop(ep, reason)
        return (ep,)

    def end_channel(self, ch: Channel, reason: End) -> tuple[Endpoint, ...]:
        """Tear a channel down from outside (cleanup loop, shutdown)."""
        if ch.state is ChannelState.CLOSED:
            return ()
        return self._close(ch, reason)

    def _close(self, ch: Channel, reason: End) -> tuple[Endpoint, ...]:
        ch.state = ChannelState.CLOSED
        if self.channels.get(ch.channel_id) is ch:
            del self.channels[ch.channel_id]
        closed = tuple(ch.endpoints())
        for ep in closed:
            self._drop(ep, reason)
        return closed

    def _drop(self, ep: Endpoint, reason: End) -> None:
        self.total_pending -= ep.pending_bytes
        ep.pending = []
        ep.pending_bytes = 0
        if ep.end_reason is None:
            ep.end_reason = reason

    def due(
        self, now: float, wall_seconds: int, skew_seconds: int, write_timeout: float
    ) -> list[tuple[Channel, End]]:
        """Channels the cleanup loop must end now (§6.8 to §6.10).

        ``now`` is monotonic, ``wall_seconds`` is ``floor(time.time())``.
        Order of tests per channel: init window, a write stuck longer than
        ``write_timeout`` (0 = never), idleness.
        """
        found: list[tuple[Channel, End]] = []
        for ch in self.channels.values():
            if not ch.saw_record and wall_seconds > ch.init_exp + skew_seconds:
                found.append((ch, End.INIT_EXPIRED))
            elif write_timeout > 0 and (
                _stuck(ch.slots[1], now, write_timeout)
                or _stuck(ch.slots[2], now, write_timeout)
            ):
                found.append((ch, End.WRITE_ERROR))
            elif now - ch.last_active > ch.idle_timeout:
                found.append((ch, End.IDLE_TIMEOUT))
        return found


def _stuck(ep: Endpoint | None, now: float, timeout: float) -> bool:
    """True if a write to ``ep`` has been waiting longer than ``timeout``."""
    return ep is not None and ep.write_since > 0 and now - ep.write_since > timeout
