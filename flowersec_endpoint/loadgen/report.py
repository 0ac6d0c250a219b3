"""The JSON report, with the reference's sections and field names.

``config``, ``summary``, ``failures`` and ``latency`` follow api.md §13.1.
``resources`` holds what a separate-process Python run can see (the
tunnel's RSS instead of Go heap figures) and ``env`` describes this host.
"""

from __future__ import annotations

import os
import platform
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from flowersec_endpoint.loadgen.attempt import Sample
from flowersec_endpoint.loadgen.config import LoadConfig
from flowersec_endpoint.loadgen.stats import (
    active_peak,
    latency_summary,
    peak_per_second,
)

LATENCY_STAGES = ("ws_open", "attach_send", "pair_ready", "handshake", "rpc_call")
FAILURE_STAGES = (
    "channel_init",
    "psk_decode",
    "ws_open",
    "attach_send",
    "server_attach",
    "pair_ready",
    "handshake",
    "server_ready",
    "yamux_client",
    "yamux_open",
    "rpc_hello",
    "rpc_call",
    "internal",
)
EXAMPLES_PER_STAGE = 3


def build_report(
    config: LoadConfig,
    samples: Sequence[Sample],
    duration: float,
    resources: dict[str, Any],
) -> dict[str, Any]:
    """Merge every process's samples into the report document."""
    ok = [s for s in samples if s.ok]
    failures = Counter(s.stage for s in samples if not s.ok)
    examples: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        if not s.ok and len(examples[s.stage]) < EXAMPLES_PER_STAGE:
            examples[s.stage].append(s.error)
    intervals = [
        (s.held_from, s.held_until if s.held_until is not None else s.held_from)
        for s in ok
        if s.held_from is not None
    ]
    stages = (*FAILURE_STAGES, *sorted(set(failures) - set(FAILURE_STAGES)))
    return {
        "config": config.report_dict(),
        "summary": {
            "attempts": len(samples),
            "success": len(ok),
            "failure": len(samples) - len(ok),
            "success_rate": len(ok) / len(samples) if samples else 0.0,
            "duration_seconds": round(duration, 3),
            "peak_conn_per_sec": peak_per_second(s.completed_at for s in ok),
            "active_peak": active_peak(intervals),
            "target_channels": config.channels,
        },
        "failures": {stage: failures.get(stage, 0) for stage in stages},
        "failure_examples": dict(examples),
        "latency": {
            stage: latency_summary(s.timings[stage] for s in ok if stage in s.timings)
            for stage in LATENCY_STAGES
        },
        "resources": resources,
        "env": environment(config.procs),
    }


def environment(procs: int) -> dict[str, Any]:
    """Interpreter, library versions and host facts for the ``env`` section."""
    versions: dict[str, str | None] = {}
    for package in ("aiohttp", "uvloop", "cryptography", "PyNaCl"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "procs": procs,
        "packages": versions,
    }
