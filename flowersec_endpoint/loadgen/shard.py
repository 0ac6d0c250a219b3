"""One worker process: its share of the attempts, scheduled as the reference.

Attempts are handed to a pool of workers at ``rate`` per second (one tick
per attempt, no catch-up burst after a stall, as a Go ticker behaves); with
``ramp_step`` N the scheduler pauses ``ramp_interval`` after every N
attempts. Successful channels are held until the parent says ``release``.
Every process starts its clock at the same wall-clock instant, so the
shares of a ramp step go out together.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from flowersec_endpoint.loadgen.attempt import AttemptFailed, Hold, Sample, describe
from flowersec_endpoint.loadgen.config import LoadConfig, Mode
from flowersec_endpoint.loadgen.minting import minter_for
from flowersec_endpoint.loadgen.procinfo import raise_nofile
from flowersec_endpoint.loadgen.raw import raw_attempt
from flowersec_endpoint.loadgen.runtime import Runtime, run_on_uvloop
from flowersec_endpoint.loadgen.wire import new_http_session

AttemptFn = Callable[[Runtime, Sample], Awaitable[Hold]]
RELEASE_BATCH = 500
FD_HEADROOM = 256


def split(total: int, shards: int, shard: int) -> int:
    """This shard's part of ``total`` when spread as evenly as possible."""
    return total // shards + (1 if shard < total % shards else 0)


@dataclass(frozen=True)
class ShardPlan:
    """The slice of the run one process executes."""

    config: LoadConfig
    shard: int
    shards: int
    start_at: float

    @property
    def indices(self) -> range:
        """Attempt indices of this shard (interleaved across shards)."""
        return range(self.shard, self.config.channels, self.shards)

    @property
    def rate(self) -> float:
        """This shard's share of the attempt rate (0 = unthrottled)."""
        return self.config.rate / self.shards

    @property
    def ramp_step(self) -> int:
        """Attempts of this shard between ramp pauses (0 = no ramp)."""
        if self.config.ramp_step <= 0:
            return 0
        return max(1, split(self.config.ramp_step, self.shards, self.shard))

    @property
    def workers(self) -> int:
        """Concurrent attempts in this shard."""
        return max(1, split(self.config.workers, self.shards, self.shard))


def attempt_for(mode: Mode) -> AttemptFn:
    """The attempt coroutine of a mode."""
    if mode is Mode.ATTACH_ONLY:
        return lambda rt, sample: raw_attempt(rt, sample, confirm=False)
    if mode is Mode.IDLE:
        return lambda rt, sample: raw_attempt(rt, sample, confirm=True)
    from flowersec_endpoint.loadgen.secure import secure_attempt

    return lambda rt, sample: secure_attempt(rt, sample, full=mode is Mode.FULL)


def shard_process(plan: ShardPlan, conn: Connection) -> None:
    """Process entry point: run the shard on uvloop and report to ``conn``.

    A failure is sent to the parent, which reports it; the process then
    exits with status 1.
    """
    raise_nofile(2 * len(plan.indices) + FD_HEADROOM)
    try:
        run_on_uvloop(_shard_main(plan, conn))
    except BaseException as exc:
        conn.send(("error", plan.shard, describe(exc)))
        raise SystemExit(1) from exc
    finally:
        conn.close()


class _Shard:
    def __init__(self, plan: ShardPlan, conn: Connection, rt: Runtime) -> None:
        self.plan = plan
        self.conn = conn
        self.rt = rt
        self.attempt = attempt_for(plan.config.mode)
        self.samples: list[Sample] = []
        self.holds: list[Hold] = []
        self.failures = 0

    def progress(self) -> dict[str, int]:
        return {
            "attempts": len(self.samples),
            "success": len(self.samples) - self.failures,
            "failure": self.failures,
            "active": sum(1 for hold in self.holds if hold.alive),
        }

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.plan.config.report_interval)
            self.conn.send(("progress", self.plan.shard, self.progress()))

    async def run_one(self, index: int) -> None:
        sample = Sample(index)
        try:
            self.holds.append(await self.attempt(self.rt, sample))
        except AttemptFailed as failed:
            sample.stage, sample.error = failed.stage, failed.detail
        except Exception as exc:
            sample.stage, sample.error = "internal", describe(exc)
        sample.completed_at = time.time()
        if sample.stage:
            self.failures += 1
        self.samples.append(sample)

    async def worker(self, queue: asyncio.Queue[int | None]) -> None:
        while (index := await queue.get()) is not None:
            await self.run_one(index)

    async def schedule(self, queue: asyncio.Queue[int | None]) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.plan.rate if self.plan.rate > 0 else 0.0
        step = self.plan.ramp_step
        next_tick = loop.time()
        for n, index in enumerate(self.plan.indices):
            if step and n and n % step == 0:
                await asyncio.sleep(self.plan.config.ramp_interval)
                next_tick = loop.time()
            if interval:
                delay = next_tick - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_tick = max(next_tick + interval, loop.time())
            await queue.put(index)

    async def run_attempts(self) -> None:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=1)
        workers = [
            asyncio.create_task(self.worker(queue)) for _ in range(self.plan.workers)
        ]
        await self.schedule(queue)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)

    async def release(self) -> None:
        for start in range(0, len(self.holds), RELEASE_BATCH):
            batch = self.holds[start : start + RELEASE_BATCH]
            await asyncio.gather(*(hold.release() for hold in batch))


async def _shard_main(plan: ShardPlan, conn: Connection) -> None:
    config = plan.config
    minter = minter_for(config)
    loop = asyncio.get_running_loop()
    async with new_http_session() as http:
        shard = _Shard(plan, conn, Runtime(config, http, minter))
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        reporter = asyncio.create_task(shard.report_progress())
        try:
            await shard.run_attempts()
            conn.send(("done", plan.shard, shard.progress()))
            await loop.run_in_executor(None, _wait_release, conn)
            await shard.release()
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    extra: dict[str, Any] = {
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cpu_seconds": math.fsum(
            getattr(resource.getrusage(resource.RUSAGE_SELF), name)
            for name in ("ru_utime", "ru_stime")
        ),
    }
    conn.send(("result", plan.shard, shard.samples, extra))


def _wait_release(conn: Connection) -> None:
    """Block until the parent sends ``release`` (or goes away)."""
    with contextlib.suppress(EOFError, OSError):
        while conn.recv() != ("release",):
            pass
