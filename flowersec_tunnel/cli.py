"""``flowersec-tunnel``: start-up, ready line, signals and exit codes (§9).

Exit codes follow the reference: 2 for usage and environment errors, 1 for
anything that stops the start (keyset, TLS files, binding), 0 after a
graceful SIGINT/SIGTERM drain.

Service managers hook in through :data:`LIFECYCLE`: callbacks appended to
``on_ready`` run once the listeners are bound and the ready line is out,
those in ``on_drain`` when the shutdown drain starts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from . import config as tunnel_config
from .config import ConfigError, TunnelConfig
from .jsonfile import dumps_json
from .keys import IssuerKey, KeyFileError, load_keyset, write_issuer_key, write_keyset
from .logs import configure, get_logger
from .sdnotify import SystemdHooks
from .server import TunnelServer

DEV_KID = "dev"


@dataclass
class Lifecycle:
    """Callbacks for service managers (systemd notify, k8s probes)."""

    on_ready: list[Callable[[TunnelServer], None]] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)


_SYSTEMD = SystemdHooks()
LIFECYCLE = Lifecycle(on_ready=[_SYSTEMD.ready], on_drain=[_SYSTEMD.draining])


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    return 1


def _dev_keys(cfg: TunnelConfig, directory: str) -> tuple[TunnelConfig, str]:
    """Write a throwaway issuer key and keyset; return the private key path."""
    key = IssuerKey.generate(DEV_KID)
    private_path = os.path.join(directory, "issuer_key.json")
    keyset_path = os.path.join(directory, "issuer_keys.json")
    write_issuer_key(private_path, key)
    write_keyset(keyset_path, {key.kid: key.public_key})
    return replace(cfg, issuer_keys_file=keyset_path), private_path


def _dev_hint(cfg: TunnelConfig, private_path: str, ws_url: str) -> None:
    """Tell the developer how to mint a grant pair for this tunnel."""
    sys.stderr.write(
        "dev mode: throwaway issuer key in "
        f"{os.path.dirname(private_path)} (deleted on exit). "
        "Mint a grant pair with:\n"
        f"  flowersec-channelinit --issuer-private-key-file {private_path} "
        f"--tunnel-url {ws_url} --aud {cfg.aud} --iss {cfg.iss}\n"
    )
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    cfg, _parser = tunnel_config.parse(args)
    try:
        cfg.validate()
    except ConfigError as exc:
        return _fail(str(exc))
    configure("console" if cfg.log_format == "console" else "json")
    with tempfile.TemporaryDirectory(prefix="flowersec-tunnel-dev-") as tmp:
        dev_key = ""
        if cfg.dev:
            cfg, dev_key = _dev_keys(cfg, tmp)
        try:
            keys = load_keyset(cfg.issuer_keys_file)
        except (KeyFileError, OSError, ValueError) as exc:
            return _fail(f"load issuer keyset: {exc}")
        coro = serve(cfg, keys, dev_key=dev_key)
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        result: int = uvloop.run(coro)
        return result


async def serve(
    cfg: TunnelConfig,
    keys: dict[str, bytes],
    *,
    stop: asyncio.Event | None = None,
    dev_key: str = "",
) -> int:
    """Run the daemon until SIGINT/SIGTERM (or ``stop``), then drain.

    ``dev_key`` is the throwaway private key path of ``--dev``.
    """
    log = get_logger("flowersec_tunnel.cli")
    server = TunnelServer(cfg, keys)
    try:
        await server.start()
        ready = dumps_json(server.ready_fields(), pretty=cfg.pretty)
    except ConfigError as exc:
        await server.close()
        return _fail(str(exc))
    stop = stop or asyncio.Event()
    _install_signals(server, stop)
    sys.stdout.write(ready.decode("utf-8") + "\n")
    sys.stdout.flush()
    if dev_key:
        _dev_hint(cfg, dev_key, server.ready_fields()["ws_url"])
    for ready_hook in LIFECYCLE.on_ready:
        ready_hook(server)
    await stop.wait()
    for drain_hook in LIFECYCLE.on_drain:
        drain_hook()
    drained = await server.shutdown()
    log.info("shutdown complete", drained=drained)
    return 0


def _install_signals(server: TunnelServer, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    rt = server.runtime
    logger = get_logger("flowersec_tunnel.signals")

    def usr1() -> None:
        if not server.metrics_listen:
            logger.info("metrics server disabled (missing --metrics-listen)")
            return
        rt.metrics.enable()
        logger.info("metrics enabled")

    def usr2() -> None:
        if server.metrics_listen:
            rt.metrics.disable()
            logger.info("metrics disabled")

    def hup() -> None:
        rt.reload_keys()

    loop.add_signal_handler(signal.SIGHUP, hup)
    loop.add_signal_handler(signal.SIGUSR1, usr1)
    loop.add_signal_handler(signal.SIGUSR2, usr2)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
