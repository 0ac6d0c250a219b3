"""``flowersec-loadgen``: drive a tunnel and print a JSON report on stdout.

Flag names and defaults follow the reference's load generator (api.md
§13.1); the tunnel is external (``--tunnel-url``) or started here
(``--spawn-tunnel``), as tunnel.md §10.5 asks for a like-for-like run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flowersec_endpoint.loadgen.config import (
    DEFAULT_AUD,
    DEFAULT_ISS,
    DEFAULT_KID,
    DEFAULT_ORIGIN,
    DEFAULT_SEED,
    LoadConfig,
    Mode,
    parse_duration,
)
from flowersec_endpoint.loadgen.minting import issuer_key
from flowersec_endpoint.loadgen.procinfo import raise_nofile
from flowersec_endpoint.loadgen.run import RunFailed, run_scheduled
from flowersec_endpoint.loadgen.throughput import run_throughput
from flowersec_tunnel.spawn import (
    SpawnedTunnel,
    TunnelStartError,
    spawn_tunnel,
)

FD_HEADROOM = 64


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text, 0)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text, 0)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line, grouped by concern."""
    parser = argparse.ArgumentParser(
        prog="flowersec-loadgen",
        description="Load a Flowersec tunnel and print a JSON report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    target = parser.add_argument_group("target")
    target.add_argument("--tunnel-url", default="", help="ws:// URL of the tunnel")
    target.add_argument(
        "--spawn-tunnel",
        action="store_true",
        help="start flowersec-tunnel with a matching keyset and use it",
    )
    target.add_argument(
        "--tunnel-pid",
        type=int,
        default=0,
        help="sample this process's RSS and CPU time (0: none)",
    )
    target.add_argument(
        "--tunnel-arg",
        action="append",
        default=[],
        help="extra argument for the spawned tunnel (repeatable)",
    )
    issuer = parser.add_argument_group("issuer")
    issuer.add_argument(
        "--issuer-key-file",
        default="",
        help="issuer private key file; without it the tunnel.md §1.5 seed is used",
    )
    issuer.add_argument("--kid", default=DEFAULT_KID, help="key id of the seed key")
    issuer.add_argument("--aud", default=DEFAULT_AUD, help="token audience")
    issuer.add_argument("--iss", default=DEFAULT_ISS, help="token issuer")
    issuer.add_argument("--origin", default=DEFAULT_ORIGIN, help="Origin header")
    issuer.add_argument(
        "--idle-timeout",
        type=_positive_int,
        default=60,
        help="grant idle timeout in seconds (hold longer: raise it)",
    )
    issuer.add_argument(
        "--token-exp", type=_positive_int, default=60, help="token lifetime, s"
    )
    issuer.add_argument(
        "--suite", type=int, choices=(1, 2), default=1, help="E2EE suite"
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default="full",
        help="what one attempt does",
    )
    load.add_argument(
        "--channels", type=_positive_int, default=100, help="attempts (channels)"
    )
    load.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="attempts per second (0: unthrottled)",
    )
    load.add_argument(
        "--ramp-step",
        type=_non_negative_int,
        default=0,
        help="pause after every N attempts (0: no ramp)",
    )
    load.add_argument(
        "--ramp-interval", type=_duration, default="0", help="length of a pause"
    )
    load.add_argument(
        "--steady",
        type=_duration,
        default="0",
        help="hold the channels this long after the last attempt",
    )
    load.add_argument(
        "--workers", type=_positive_int, default=64, help="concurrent attempts"
    )
    load.add_argument(
        "--procs",
        type=_positive_int,
        default=1,
        help="worker processes sharing the attempts (throughput mode always "
        "uses one sender and one receiver process)",
    )
    load.add_argument(
        "--conn-timeout",
        type=_duration,
        default="10s",
        help="one attempt, from the dial to the end of the handshake",
    )
    load.add_argument(
        "--rpc-timeout", type=_duration, default="5s", help="the one RPC call"
    )
    load.add_argument(
        "--report-interval",
        type=_duration,
        default="1s",
        help="progress lines and RSS samples",
    )
    load.add_argument(
        "--settle",
        type=_duration,
        default="2s",
        help="idle mode: wait this long after the last pairing before sampling RSS",
    )
    bulk = parser.add_argument_group("throughput")
    bulk.add_argument(
        "--size-mib", type=_non_negative_float, default=64.0, help="MiB per channel"
    )
    bulk.add_argument(
        "--record-size",
        type=_positive_int,
        default=1024 * 1024,
        help="bytes per WebSocket message (at most 1048576)",
    )
    parser.add_argument("--out", default="", help="write the report here too")
    return parser


def config_from_args(args: argparse.Namespace, tunnel_url: str) -> LoadConfig:
    """The run configuration for parsed arguments."""
    return LoadConfig(
        mode=Mode(args.mode),
        tunnel_url=tunnel_url,
        channels=args.channels,
        rate=args.rate,
        ramp_step=args.ramp_step,
        ramp_interval=args.ramp_interval,
        steady=args.steady,
        workers=args.workers,
        procs=args.procs,
        conn_timeout=args.conn_timeout,
        rpc_timeout=args.rpc_timeout,
        report_interval=args.report_interval,
        idle_timeout=args.idle_timeout,
        token_exp=args.token_exp,
        suite=args.suite,
        origin=args.origin,
        aud=args.aud,
        iss=args.iss,
        kid=args.kid,
        issuer_key_file=args.issuer_key_file,
        size_mib=args.size_mib,
        record_size=args.record_size,
        settle=args.settle,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; exit 0 on a completed run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.tunnel_url) == bool(args.spawn_tunnel):
        parser.error("give exactly one of --tunnel-url and --spawn-tunnel")
    if args.record_size > 1024 * 1024:
        parser.error("--record-size must be at most 1048576")
    wanted = 2 * args.channels + FD_HEADROOM
    got = raise_nofile(wanted)
    if got < wanted:
        print(
            f"flowersec-loadgen: warning: open-file limit is {got}, not {wanted}; "
            "a spawned tunnel inherits it and refuses connections beyond it",
            file=sys.stderr,
        )
    spawned: SpawnedTunnel | None = None
    try:
        key = issuer_key(args.kid, args.issuer_key_file, DEFAULT_SEED)
        if args.spawn_tunnel:
            spawned = spawn_tunnel(
                kid=key.kid,
                public_key=key.public_key,
                aud=args.aud,
                iss=args.iss,
                origin=args.origin,
                channels=args.channels,
                extra_args=args.tunnel_arg,
            )
            print(
                f"spawned tunnel pid {spawned.pid} at {spawned.ws_url}", file=sys.stderr
            )
        config = config_from_args(args, spawned.ws_url if spawned else args.tunnel_url)
        if args.issuer_key_file:
            config = replace(config, kid=key.kid)
        pid = spawned.pid if spawned else (args.tunnel_pid or None)
        report = _run(config, pid)
    except (RunFailed, TunnelStartError, OSError, ValueError) as exc:
        print(f"flowersec-loadgen: {exc}", file=sys.stderr)
        return 1
    finally:
        if spawned is not None:
            status, tail = spawned.stop()
            print(f"tunnel exited with status {status}", file=sys.stderr)
            if status:
                print(tail, file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    return 0


def _run(config: LoadConfig, tunnel_pid: int | None) -> dict[str, Any]:
    if config.mode is Mode.THROUGHPUT:
        return run_throughput(config, tunnel_pid)
    return run_scheduled(config, tunnel_pid)
