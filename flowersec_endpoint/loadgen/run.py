"""The parent process of a scheduled run: start shards, hold, merge, report.

The parent does no protocol work. It starts the worker processes, prints a
progress line every report interval, samples the tunnel's RSS, holds the
channels for ``steady`` once every shard has finished its attempts, then
releases them and merges the samples.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO

from flowersec_endpoint.loadgen.attempt import Sample
from flowersec_endpoint.loadgen.config import LoadConfig, Mode
from flowersec_endpoint.loadgen.procinfo import ProcessTrack
from flowersec_endpoint.loadgen.report import build_report
from flowersec_endpoint.loadgen.shard import ShardPlan, shard_process

START_GRACE = 1.0
START_GRACE_PER_PROC = 0.3
JOIN_TIMEOUT = 30.0
MIB = 1024 * 1024


class RunFailed(RuntimeError):
    """A worker process crashed; the message says which and why."""


class _Parent:
    def __init__(
        self, config: LoadConfig, tunnel_pid: int | None, progress: TextIO
    ) -> None:
        self.config = config
        self.out = progress
        self.tunnel = ProcessTrack(tunnel_pid) if tunnel_pid else None
        self.counts: dict[int, dict[str, int]] = {}
        self.done: set[int] = set()
        self.samples: list[Sample] = []
        self.children: dict[int, dict[str, Any]] = {}
        self.started = 0.0
        self.loaded_rss: int | None = None
        self.loaded_active = 0

    def total(self, key: str) -> int:
        return sum(c.get(key, 0) for c in self.counts.values())

    def print_progress(self, phase: str) -> None:
        rss = self.tunnel.sample() if self.tunnel else None
        line = (
            f"[{time.time() - self.started:7.1f}s] {phase:<8} "
            f"attempts {self.total('attempts')}/{self.config.channels} "
            f"ok {self.total('success')} fail {self.total('failure')} "
            f"active {self.total('active')}"
        )
        if rss is not None:
            line += f" tunnel_rss {rss / MIB:.1f} MiB"
        print(line, file=self.out, flush=True)

    def handle(self, message: tuple[Any, ...]) -> None:
        kind, shard = message[0], message[1]
        if kind == "progress":
            self.counts[shard] = message[2]
        elif kind == "done":
            self.counts[shard] = message[2]
            self.done.add(shard)
        elif kind == "result":
            self.samples.extend(message[2])
            self.children[shard] = message[3]
        elif kind == "error":
            raise RunFailed(f"worker {shard} failed: {message[2]}")

    def resources(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "loadgen_workers": [self.children[k] for k in sorted(self.children)]
        }
        if self.tunnel is not None:
            out["tunnel"] = self.tunnel.report()
        if self.config.mode is Mode.IDLE and self.tunnel is not None:
            out["idle"] = self.idle_figures()
        return out

    def idle_figures(self) -> dict[str, Any]:
        assert self.tunnel is not None
        base = self.tunnel.first
        loaded = self.loaded_rss
        per_channel = None
        if base is not None and loaded is not None and self.loaded_active:
            per_channel = (loaded - base) / self.loaded_active
        return {
            "channels_held": self.loaded_active,
            "rss_bytes_baseline": base,
            "rss_bytes_loaded": loaded,
            "rss_bytes_per_channel": per_channel,
        }


def run_scheduled(
    config: LoadConfig, tunnel_pid: int | None, progress: TextIO = sys.stderr
) -> dict[str, Any]:
    """Run attach-only, handshake, full or idle mode; return the report."""
    parent = _Parent(config, tunnel_pid, progress)
    if parent.tunnel is not None:
        parent.tunnel.sample()
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + START_GRACE + START_GRACE_PER_PROC * config.procs
    conns: list[Connection] = []
    processes = []
    for shard in range(config.procs):
        ours, theirs = context.Pipe()
        plan = ShardPlan(config, shard, config.procs, start_at)
        process = context.Process(
            target=shard_process, args=(plan, theirs), name=f"loadgen-{shard}"
        )
        process.start()
        theirs.close()
        conns.append(ours)
        processes.append(process)
    try:
        _supervise(parent, conns, processes, start_at)
    finally:
        _release_all(conns)
        for process in processes:
            process.join(JOIN_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
    duration = time.time() - parent.started
    if parent.tunnel is not None:
        parent.tunnel.sample()
    return build_report(config, parent.samples, duration, parent.resources())


def _supervise(
    parent: _Parent,
    conns: list[Connection],
    processes: Sequence[multiprocessing.process.BaseProcess],
    start_at: float,
) -> None:
    config = parent.config
    time.sleep(max(0.0, start_at - time.time()))
    parent.started = start_at
    next_report = time.time() + config.report_interval
    hold_start: float | None = None
    hold = max(config.steady, config.settle if config.mode is Mode.IDLE else 0.0)
    open_conns = list(conns)
    released = False
    while open_conns:
        for ready in wait(open_conns, timeout=max(0.0, next_report - time.time())):
            assert isinstance(ready, Connection)
            try:
                parent.handle(ready.recv())
            except EOFError:
                open_conns.remove(ready)
        now = time.time()
        if now >= next_report:
            phase = "hold" if hold_start is not None else "ramp"
            parent.print_progress("release" if released else phase)
            next_report = now + config.report_interval
        if hold_start is None and len(parent.done) == config.procs:
            hold_start = now
            parent.print_progress("hold")
        if hold_start is not None and not released:
            _measure_idle(parent, hold_start, now)
            if now - hold_start >= hold:
                parent.print_progress("release")
                for conn in conns:
                    conn.send(("release",))
                released = True
    missing = sorted(set(range(config.procs)) - set(parent.children))
    if missing:
        codes = [processes[shard].exitcode for shard in missing]
        raise RunFailed(f"workers {missing} sent no result (exit codes {codes})")


def _release_all(conns: list[Connection]) -> None:
    """Tell every worker to close its channels (again, if it already was).

    After an error or an interrupt this lets workers end on their own
    instead of being killed with their sockets open.
    """
    for conn in conns:
        try:
            conn.send(("release",))
        except OSError:
            continue


def _measure_idle(parent: _Parent, hold_start: float, now: float) -> None:
    """Idle mode: take the loaded RSS once the channels have settled."""
    config = parent.config
    if config.mode is not Mode.IDLE or parent.tunnel is None:
        return
    if parent.loaded_rss is None and now - hold_start >= config.settle:
        parent.loaded_rss = parent.tunnel.sample()
        parent.loaded_active = parent.total("active")
