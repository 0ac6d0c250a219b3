"""Run ``flowersec-loadgen`` as a user would, against a spawned tunnel."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RUN_TIMEOUT = 60


def _script() -> str:
    local = Path(sys.executable).with_name("flowersec-loadgen")
    if not local.exists():
        pytest.skip("flowersec-loadgen console script is not installed")
    return str(local)


@pytest.fixture
def loadgen() -> Callable[..., dict[str, Any]]:
    """Run the console script with ``--spawn-tunnel``; return its report."""

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [_script(), "--spawn-tunnel", "--report-interval", "200ms", *args],
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == 0, stderr
        report: dict[str, Any] = json.loads(done.stdout)
        report["_stderr"] = stderr
        return report

    return run
