"""Command-line parsing: usage errors exit 2, values reach the config."""

from __future__ import annotations

import pytest

from flowersec_endpoint.loadgen.cli import build_parser, config_from_args, main
from flowersec_endpoint.loadgen.config import Mode


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--tunnel-url", "ws://127.0.0.1:1/ws", "--spawn-tunnel"],
        ["--tunnel-url", "ws://127.0.0.1:1/ws", "--record-size", "1048577"],
        ["--tunnel-url", "ws://127.0.0.1:1/ws", "--steady", "5"],
        ["--tunnel-url", "ws://127.0.0.1:1/ws", "--channels", "0"],
        ["--tunnel-url", "ws://127.0.0.1:1/ws", "--mode", "bogus"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2


def test_flags_reach_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--mode", "idle", "--channels", "7", "--rate", "12.5",
            "--ramp-step", "3", "--ramp-interval", "1m30s", "--steady", "250ms",
            "--workers", "5", "--procs", "2", "--idle-timeout", "300",
            "--suite", "2", "--size-mib", "0.5", "--record-size", "4096",
        ]
    )  # fmt: skip
    config = config_from_args(args, "ws://127.0.0.1:9/ws")
    assert config.mode is Mode.IDLE
    assert (config.channels, config.rate, config.ramp_step) == (7, 12.5, 3)
    assert (config.ramp_interval, config.steady) == (90.0, 0.25)
    assert (config.workers, config.procs, config.idle_timeout) == (5, 2, 300)
    assert (config.suite, config.size_mib, config.record_size) == (2, 0.5, 4096)
    assert config.conn_timeout == 10.0
    assert config.tunnel_url == "ws://127.0.0.1:9/ws"
