"""Run parameters of the load generator, named as in the reference tool.

Durations are held in seconds and written to the report in milliseconds,
as the reference's ``config`` section does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

DEFAULT_SEED = bytes(range(32))
DEFAULT_KID = "k1"
DEFAULT_AUD = "flowersec-tunnel:loadgen"
DEFAULT_ISS = "issuer-loadgen"
DEFAULT_ORIGIN = "https://app.redeven.com"

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class Mode(StrEnum):
    """What one attempt does (api.md §13.1 plus the two capacity modes)."""

    ATTACH_ONLY = "attach-only"
    HANDSHAKE = "handshake"
    FULL = "full"
    IDLE = "idle"
    THROUGHPUT = "throughput"


def parse_duration(text: str) -> float:
    """Parse a Go-style duration (``2s``, ``500ms``, ``1m30s``) into seconds.

    The reference tool takes Go durations; a bare number other than ``0`` is
    rejected as Go does, so a forgotten unit is not silently read as seconds.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return total


@dataclass(frozen=True)
class LoadConfig:
    """Everything one run needs; shipped as-is to every worker process."""

    mode: Mode
    tunnel_url: str
    channels: int = 100
    rate: float = 0.0
    ramp_step: int = 0
    ramp_interval: float = 0.0
    steady: float = 0.0
    workers: int = 64
    procs: int = 1
    conn_timeout: float = 10.0
    rpc_timeout: float = 5.0
    report_interval: float = 1.0
    idle_timeout: int = 60
    token_exp: int = 60
    suite: int = 1
    origin: str = DEFAULT_ORIGIN
    aud: str = DEFAULT_AUD
    iss: str = DEFAULT_ISS
    kid: str = DEFAULT_KID
    issuer_key_file: str = ""
    channel_prefix: str = "chan_load_"
    size_mib: float = 64.0
    record_size: int = 1024 * 1024
    settle: float = 2.0

    def report_dict(self) -> dict[str, Any]:
        """The ``config`` section: every parameter, durations in ms."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in _DURATION_FIELDS:
                out[item.name + "_ms"] = round(value * 1000.0, 3)
            else:
                out[item.name] = str(value) if isinstance(value, Mode) else value
        return out


_DURATION_FIELDS = frozenset(
    {
        "ramp_interval",
        "steady",
        "conn_timeout",
        "rpc_timeout",
        "report_interval",
        "settle",
    }
)
