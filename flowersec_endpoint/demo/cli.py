"""``flowersec-demo``: the reference demo's roles, plus a one-command tour.

The subcommands mirror the reference demo so any Flowersec peer can stand
on the other side: ``server``/``client`` through a tunnel, ``direct-server``
/``direct-client`` without one. With no subcommand the demo starts its own
tunnel process and both endpoints, and shows the whole job in one command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from flowersec_endpoint.errors import FlowersecError
from flowersec_endpoint.rpc import CallError, RpcClosedError
from flowersec_endpoint.yamux import YamuxError
from flowersec_tunnel.spawn import TunnelStartError

ORIGIN_ENV = "FSEC_ORIGIN"
DEFAULT_LOCAL_ORIGIN = "http://127.0.0.1"


def _origin_default() -> str | None:
    value = os.environ.get(ORIGIN_ENV, "").strip()
    return value or None


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag also works as ``--flag=value``."""
    parser = argparse.ArgumentParser(
        prog="flowersec-demo",
        description=(
            "Flowersec demo endpoints. Without a subcommand: start a local "
            "tunnel, a server endpoint and a client, run the demo exchange "
            "and a burst of timed RPC calls, then stop everything."
        ),
    )
    parser.add_argument(
        "--calls", type=int, default=1000, help="RPC calls in the burst (default 1000)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="calls in flight during the burst (default 16)",
    )
    parser.add_argument(
        "--origin",
        default=_origin_default() or DEFAULT_LOCAL_ORIGIN,
        help=f"Origin to send (default ${ORIGIN_ENV} or {DEFAULT_LOCAL_ORIGIN})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    server = sub.add_parser("server", help="serve the demo through a tunnel")
    server.add_argument("--grant", required=True, help="grant JSON file, '-' = stdin")
    server.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for a client through the tunnel (default 10)",
    )
    _add_origin(server)

    client = sub.add_parser("client", help="run the demo exchange through a tunnel")
    client.add_argument("--grant", required=True, help="grant JSON file, '-' = stdin")
    _add_origin(client)

    dserver = sub.add_parser("direct-server", help="serve the demo on a WebSocket")
    dserver.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0)"
    )
    dserver.add_argument("--ws-path", default="/ws", help="WebSocket path")
    dserver.add_argument("--channel-id", default="", help="default: random")
    dserver.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        help="allowed Origin entry (repeatable, required)",
    )
    dserver.add_argument(
        "--init-exp-seconds",
        type=int,
        default=120,
        help="handshake init window from start (default 120)",
    )

    dclient = sub.add_parser("direct-client", help="run the demo exchange directly")
    dclient.add_argument(
        "--info", required=True, help="DirectConnectInfo JSON file, '-' = stdin"
    )
    _add_origin(dclient)
    return parser


def _add_origin(parser: argparse.ArgumentParser) -> None:
    default = _origin_default()
    parser.add_argument(
        "--origin",
        default=default,
        required=default is None,
        help=f"Origin header to send (default ${ORIGIN_ENV})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except (FlowersecError, OSError, ValueError) as exc:
        print(f"flowersec-demo: {exc}", file=sys.stderr)
        return 1
    except (TunnelStartError, RpcClosedError, CallError, YamuxError) as exc:
        print(f"flowersec-demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from flowersec_endpoint.demo import local, roles

    if args.command == "direct-server" and not args.allow_origin:
        parser.error("direct-server: at least one --allow-origin is required")
    if args.command is None and (args.calls < 0 or args.concurrency < 1):
        parser.error("--calls must be >= 0 and --concurrency >= 1")
    runner = {
        None: local.run_local,
        "server": roles.run_server,
        "client": roles.run_client,
        "direct-server": roles.run_direct_server,
        "direct-client": roles.run_direct_client,
    }[args.command]
    return asyncio.run(runner(args))
