"""Operating-system resources the load generator reads or adjusts.

Linux only: RSS comes from ``/proc/<pid>/status`` and CPU time from
``/proc/<pid>/stat``. On other systems the readers return ``None`` and the
report leaves the figures out.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from typing import Any


def read_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (``VmRSS``), or None if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of ``pid`` so far, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` and return the new soft limit.

    The hard limit is raised too when the process may do so (root); if it
    may not, the soft limit stops at the hard limit and the caller sees the
    smaller value.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


@dataclass
class ProcessTrack:
    """Samples of one process: RSS first, last and peak; CPU time used."""

    pid: int
    first: int | None = None
    last: int | None = None
    peak: int | None = None
    samples: int = field(default=0)
    cpu_first: float | None = None
    cpu_last: float | None = None

    def sample(self) -> int | None:
        """Read RSS and CPU time now; return the RSS."""
        value = read_rss_bytes(self.pid)
        if value is not None:
            if self.first is None:
                self.first = value
            self.last = value
            self.peak = value if self.peak is None else max(self.peak, value)
            self.samples += 1
        cpu = read_cpu_seconds(self.pid)
        if cpu is not None:
            if self.cpu_first is None:
                self.cpu_first = cpu
            self.cpu_last = cpu
        return value

    def report(self) -> dict[str, Any]:
        """The figures for the ``resources`` section of the report."""
        cpu = None
        if self.cpu_first is not None and self.cpu_last is not None:
            cpu = round(self.cpu_last - self.cpu_first, 3)
        return {
            "pid": self.pid,
            "rss_bytes_first": self.first,
            "rss_bytes_last": self.last,
            "rss_bytes_peak": self.peak,
            "cpu_seconds": cpu,
            "samples": self.samples,
        }
