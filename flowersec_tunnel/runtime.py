"""Process-wide tunnel state and the tasks that are not per connection.

One :class:`TunnelRuntime` holds the keyset (swapped whole on reload), the
channel hub, the replay store, metrics, the set of live sockets and the
cleanup loop; sessions (``session``) and the HTTP app (``app``) share it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping

from aiohttp import WSMsgType, web

from .channels import END_CODES, Channel, End, Endpoint, Hub, Limits
from .config import TunnelConfig
from .keys import KeyFileError, load_keyset
from .logs import get_logger
from .metrics import Metrics
from .origin import OriginPolicy
from .replay import MemoryReplayStore, ReplayStore
from .tokens import TokenPayload, verify_token


class Connection(Endpoint):
    """An endpoint together with its aiohttp socket."""

    __slots__ = ("transport", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        role: int,
        instance_id: str,
        token_id: str,
    ) -> None:
        super().__init__(role, instance_id, token_id)
        self.ws = ws
        self.transport = transport


async def close_socket(
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
    code: int | None,
    reason: str,
    timeout: float,
) -> None:
    """Send a close frame and wait (bounded) for the echo, then drop TCP.

    Waiting for the peer's echo instead of closing at once lets a client
    that is still sending read the reason (tunnel.md §11.3). A peer that
    does not answer within ``timeout`` has its connection aborted.
    ``code=None`` sends a close frame without a status code (the echo of
    a peer's empty close frame, §4.4).
    """
    if ws.closed:
        return
    if code is None:
        await _close_without_code(ws, transport, timeout)
        return
    try:
        async with asyncio.timeout(timeout):
            await ws.close(code=code, message=reason.encode("utf-8"))
    except TimeoutError:
        if transport is not None:
            transport.abort()


async def _close_without_code(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, timeout: float
) -> None:
    """Write an empty close frame, then close TCP.

    aiohttp's ``close()`` always writes a status code, so the frame goes
    through its frame writer and the response is marked closed by hand
    (aiohttp internals, as in ``wslimit``). Only used after the peer's own
    close, so there is no echo to wait for.
    """
    writer = ws._writer
    ws._set_closed()
    if writer is None or transport is None:
        return
    try:
        async with asyncio.timeout(timeout):
            await writer.send_frame(b"", WSMsgType.CLOSE)
    except (TimeoutError, ConnectionError):
        transport.abort()
        return
    transport.close()


class TunnelRuntime:
    """Everything one tunnel process shares between its connections."""

    def __init__(
        self,
        config: TunnelConfig,
        keys: Mapping[str, bytes],
        *,
        replay: ReplayStore | None = None,
    ) -> None:
        self.config = config
        self.keys: Mapping[str, bytes] = dict(keys)
        self.origins = OriginPolicy(
            config.allow_origin, allow_no_origin=config.allow_no_origin
        )
        self.hub = Hub(
            Limits(
                max_conns=config.max_conns,
                max_channels=config.max_channels,
                max_pending_bytes=config.max_pending_bytes,
                max_total_pending_bytes=config.max_total_pending_bytes,
                replace=config.replace_policy,
            ),
            on_encrypted=self._on_encrypted,
        )
        self.metrics = Metrics(self._count_conns, self._count_channels)
        self.replay: ReplayStore = replay or MemoryReplayStore()
        self.log = get_logger("flowersec_tunnel")
        self.sockets: dict[web.WebSocketResponse, asyncio.Transport | None] = {}
        """Every upgraded socket, attached or not (for the shutdown drain)."""
        self.draining = False
        self._closers: set[asyncio.Task[None]] = set()
        self._cleanup: asyncio.Task[None] | None = None

    def _count_conns(self) -> float:
        return self.hub.conns

    def _count_channels(self) -> float:
        return len(self.hub.channels)

    def _on_encrypted(self) -> None:
        self.metrics.encrypted()

    def verify(self, token: str, now: float) -> TokenPayload:
        """Verify an attach token against the keyset in force right now."""
        cfg = self.config
        return verify_token(
            token,
            self.keys,
            audience=cfg.aud,
            issuer=cfg.iss,
            skew_seconds=cfg.skew_seconds,
            now=now,
        )

    def reload_keys(self) -> bool:
        """Re-read the keyset file; on failure keep the old keys (§2.3)."""
        try:
            keys = load_keyset(self.config.issuer_keys_file)
        except (KeyFileError, OSError, ValueError) as exc:
            self.log.warning("reload keys failed", error=str(exc))
            return False
        self.keys = keys
        self.log.info("reloaded issuer keyset", kids=len(keys))
        return True

    def start(self) -> None:
        """Start the cleanup loop (idempotent)."""
        if self._cleanup is None:
            self._cleanup = asyncio.get_running_loop().create_task(self._cleanup_loop())

    async def stop(self) -> None:
        """Stop the cleanup loop and wait for pending close tasks."""
        if self._cleanup is not None:
            self._cleanup.cancel()
            await asyncio.gather(self._cleanup, return_exceptions=True)
            self._cleanup = None
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)

    async def _cleanup_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.cleanup_interval
        while True:
            await asyncio.sleep(interval)
            self.sweep(loop.time(), time.time())

    def sweep(self, now: float, wall: float) -> None:
        """One cleanup tick (§6.10): replay purge, init window, writes, idle."""
        cfg = self.config
        wall_seconds = math.floor(wall)
        self.replay.purge(wall_seconds)
        due = self.hub.due(now, wall_seconds, cfg.skew_seconds, cfg.write_timeout)
        for ch, reason in due:
            self.end_channel(ch, reason)

    def end_channel(self, ch: Channel, reason: End) -> None:
        """Tear a whole channel down from outside its sessions."""
        closed = self.hub.end_channel(ch, reason)
        if closed:
            self.record_end(ch, closed, reason)
            self.close_endpoints(closed, reason)

    def record_end(
        self, ch: Channel | None, closed: Iterable[Endpoint], reason: End
    ) -> None:
        """Count and log one end (a channel, or one stale endpoint)."""
        eps = list(closed)
        relayed = sum(ep.bytes_in for ep in eps)
        self.metrics.close(reason.value, relayed)
        fields: dict[str, object] = {"reason": reason.value}
        if ch is not None:
            fields["channel_id"] = ch.channel_id
            fields["duration_s"] = round(
                asyncio.get_running_loop().time() - ch.first_seen, 3
            )
        for ep in eps:
            name = "client" if ep.role == 1 else "server"
            fields[f"{name}_token_id"] = ep.token_id
            fields[f"{name}_bytes_in"] = ep.bytes_in
        self.log.info("channel_ended", **fields)

    def close_endpoints(self, closed: Iterable[Endpoint], reason: End) -> None:
        """Close each endpoint's socket in the background with ``reason``.

        An endpoint with a write stuck past the write timeout is aborted:
        a close frame could not get through to it anyway.
        """
        stuck = reason is End.WRITE_ERROR
        for ep in closed:
            assert isinstance(ep, Connection)
            if stuck and ep.write_since and ep.transport is not None:
                ep.transport.abort()
                continue
            self.spawn_close(ep.ws, ep.transport, END_CODES[reason], reason.value)

    def spawn_close(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        code: int,
        reason: str,
    ) -> None:
        """Run :func:`close_socket` as a tracked background task."""
        if ws.closed:
            return
        task = asyncio.get_running_loop().create_task(
            close_socket(ws, transport, code, reason, self.config.close_timeout)
        )
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def begin_drain(self) -> None:
        """Shutdown step: end every channel and close every socket with 1001."""
        self.draining = True
        for ch in list(self.hub.channels.values()):
            self.end_channel(ch, End.SHUTDOWN)
        for ws, transport in list(self.sockets.items()):
            self.spawn_close(ws, transport, END_CODES[End.SHUTDOWN], End.SHUTDOWN.value)

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until every socket has gone; False if ``timeout`` ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sockets and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self.sockets
