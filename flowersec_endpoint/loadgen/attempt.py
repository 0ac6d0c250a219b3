"""One attempt's outcome, its stage timers, and the channel it holds open.

An attempt fails at the first stage that raises or overruns the attempt's
deadline; that stage's name is what the report counts under ``failures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """What one attempt produced; picklable so worker processes can ship it.

    ``timings`` holds milliseconds per stage. ``held_from``/``held_until``
    bound the time the channel stayed open (wall clock), for ``active_peak``.
    """

    index: int
    stage: str = ""
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    completed_at: float = 0.0
    held_from: float | None = None
    held_until: float | None = None

    @property
    def ok(self) -> bool:
        """True when no stage failed."""
        return not self.stage


class AttemptFailed(Exception):
    """A stage failed; ``stage`` is the name the report counts it under."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a failure."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class StageTimer:
    """Times named stages of one attempt against the attempt's deadline."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.timings: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def stage(
        self, name: str, *, timed: bool = True, deadline: float | None = None
    ) -> AsyncIterator[None]:
        """Run the body as stage ``name``; failures become AttemptFailed.

        The body is bounded by ``deadline`` (loop time) if given, else by the
        timer's own deadline.
        """
        start = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline or self.deadline):
                yield
        except AttemptFailed:
            raise
        except Exception as exc:
            raise AttemptFailed(name, describe(exc)) from exc
        if timed:
            self.timings[name] = (time.perf_counter() - start) * 1000.0

    def record(self, name: str, start: float, end: float) -> None:
        """Store a stage measured elsewhere (perf_counter seconds)."""
        self.timings[name] = (end - start) * 1000.0


class Hold:
    """A successful channel kept open until the run releases it.

    ``watchers`` finish when a connection of the channel ends; the first one
    to finish before release marks the channel as dropped at that moment.
    """

    def __init__(
        self,
        sample: Sample,
        watchers: list[Coroutine[Any, Any, Any]],
        closer: Callable[[], Awaitable[None]],
    ) -> None:
        self.sample = sample
        self.sample.held_from = time.time()
        self._closer = closer
        self._released = False
        self._tasks = [asyncio.create_task(w) for w in watchers]
        self._monitor = asyncio.create_task(self._watch())

    @property
    def alive(self) -> bool:
        """True until the channel dropped or was released."""
        return self.sample.held_until is None

    async def _watch(self) -> None:
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        if not self._released and self.sample.held_until is None:
            self.sample.held_until = time.time()

    async def release(self) -> None:
        """Close the channel; a channel that already dropped keeps its time."""
        self._released = True
        if self.sample.held_until is None:
            self.sample.held_until = time.time()
        self._monitor.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(self._monitor, *self._tasks, return_exceptions=True)
        await self._closer()
