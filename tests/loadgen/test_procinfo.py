"""Process figures come from /proc and degrade to None, never to an error."""

from __future__ import annotations

import os
import resource
import sys

import pytest

from flowersec_endpoint.loadgen.procinfo import (
    ProcessTrack,
    raise_nofile,
    read_cpu_seconds,
    read_rss_bytes,
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc is Linux-only"
)
NO_SUCH_PID = 2**22 + 12345


@linux_only
def test_own_process_figures_are_read() -> None:
    rss = read_rss_bytes(os.getpid())
    cpu = read_cpu_seconds(os.getpid())
    assert rss is not None and rss > 0
    assert cpu is not None and cpu >= 0


def test_missing_process_reads_none() -> None:
    assert read_rss_bytes(NO_SUCH_PID) is None
    assert read_cpu_seconds(NO_SUCH_PID) is None


@linux_only
def test_track_keeps_first_last_peak_and_cpu_span() -> None:
    track = ProcessTrack(os.getpid())
    track.sample()
    ballast = bytearray(16 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    track.sample()
    report = track.report()
    assert report["samples"] == 2
    assert report["rss_bytes_peak"] >= report["rss_bytes_first"]
    assert report["rss_bytes_last"] == report["rss_bytes_peak"]
    assert report["cpu_seconds"] >= 0
    del ballast


def test_track_of_missing_process_reports_nothing() -> None:
    track = ProcessTrack(NO_SUCH_PID)
    assert track.sample() is None
    report = track.report()
    assert report["rss_bytes_peak"] is None
    assert report["cpu_seconds"] is None


def test_raise_nofile_never_lowers_the_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile(16) == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
