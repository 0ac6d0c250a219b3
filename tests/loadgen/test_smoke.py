"""Each mode completes a tiny run against a real tunnel subprocess.

Only correctness is checked (every attempt succeeds, the report has the
reference's shape); speed is never asserted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowersec_tunnel.keys import IssuerKey, write_issuer_key

Run = Callable[..., dict[str, Any]]
STAGES = {"ws_open", "attach_send", "pair_ready", "handshake", "rpc_call"}


def _check_scheduled(report: dict[str, Any], channels: int) -> None:
    summary = report["summary"]
    assert summary["attempts"] == channels, report["failure_examples"]
    assert summary["success"] == channels, report["failure_examples"]
    assert summary["success_rate"] == 1
    assert summary["active_peak"] == channels
    assert summary["peak_conn_per_sec"] >= 1
    assert set(report["latency"]) == STAGES
    assert sum(report["failures"].values()) == 0
    assert report["resources"]["tunnel"]["rss_bytes_peak"] > 0
    assert "progress" not in report
    assert "attempts" in report["_stderr"]


@pytest.mark.parametrize(
    ("mode", "timed"),
    [
        ("attach-only", {"ws_open", "attach_send"}),
        ("idle", {"ws_open", "attach_send", "pair_ready"}),
        ("handshake", {"ws_open", "attach_send", "pair_ready", "handshake"}),
        ("full", STAGES),
    ],
)
def test_scheduled_modes(loadgen: Run, mode: str, timed: set[str]) -> None:
    report = loadgen(
        "--mode", mode, "--channels", "6", "--rate", "50", "--ramp-step", "3",
        "--ramp-interval", "100ms", "--procs", "2", "--workers", "4",
        "--settle", "100ms",
    )  # fmt: skip
    _check_scheduled(report, 6)
    for stage in STAGES:
        assert (report["latency"][stage]["count"] == 6) == (stage in timed), stage
    if mode == "idle":
        idle = report["resources"]["idle"]
        assert idle["channels_held"] == 6
        assert idle["rss_bytes_per_channel"] is not None


def test_throughput_mode(loadgen: Run) -> None:
    report = loadgen(
        "--mode", "throughput", "--channels", "2", "--size-mib", "2",
        "--record-size", "65536",
    )  # fmt: skip
    summary = report["summary"]
    assert summary["success"] == 2, report["channels"]
    assert summary["total_bytes"] == 2 * 2 * 1024 * 1024
    assert summary["total_mb_per_sec"] > 0
    assert all(c["mb_per_sec"] > 0 for c in report["channels"])


def test_issuer_key_file_and_its_kid_are_used(loadgen: Run, tmp_path: Path) -> None:
    key = IssuerKey.generate("rotated-7")
    key_file = tmp_path / "issuer.json"
    write_issuer_key(key_file, key)
    report = loadgen(
        "--mode", "idle", "--channels", "2", "--settle", "0",
        "--issuer-key-file", str(key_file),
    )  # fmt: skip
    assert report["config"]["kid"] == "rotated-7"
    assert report["summary"]["success"] == 2
