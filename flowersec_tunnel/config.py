"""Settings of ``flowersec-tunnel``: flags, ``FSEC_TUNNEL_*`` and a TOML file.

Operators swap this daemon in for the reference binary, so every flag and
variable of tunnel.md §9.1 keeps its name, default and parsing. Precedence
is flag > environment > config file > default. The TOML file (``--config``
or ``FSEC_TUNNEL_CONFIG``) uses the flag names with ``-`` turned into
``_``; an unknown key is an error, so a typo cannot silently fall back to a
default. Durations there are Go duration strings (``"10s"``) or numbers of
seconds; ``allow_origin`` is an array or a comma-separated string.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .channels import (
    DEFAULT_MAX_CHANNELS,
    DEFAULT_MAX_CONNS,
    DEFAULT_MAX_TOTAL_PENDING_BYTES,
    MAX_PENDING_BYTES,
    MAX_RECORD_BYTES,
    ReplacePolicy,
)
from .goflags import GoFlagParser, env_value, parse_duration

PROG = "flowersec-tunnel"
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_MAX_WRITE_QUEUE_BYTES = 1048576
DEV_LISTEN = "127.0.0.1:8080"
DEV_AUD = "flowersec-tunnel:dev"
DEV_ISS = "issuer-dev"
DEV_ORIGINS = ("127.0.0.1", "localhost", "::1")
LOG_FORMATS = ("json", "console")


class ConfigError(ValueError):
    """Settings that parse but cannot run (exit status 1)."""


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """Every setting of one tunnel process, after defaults are applied."""

    listen: str = "127.0.0.1:0"
    advertise_host: str = ""
    ws_path: str = "/ws"
    issuer_keys_file: str = ""
    aud: str = ""
    iss: str = ""
    allow_origin: tuple[str, ...] = ()
    allow_no_origin: bool = False
    max_conns: int = DEFAULT_MAX_CONNS
    max_channels: int = DEFAULT_MAX_CHANNELS
    max_total_pending_bytes: int = DEFAULT_MAX_TOTAL_PENDING_BYTES
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    """Seconds; 0 disables."""
    max_write_queue_bytes: int = DEFAULT_MAX_WRITE_QUEUE_BYTES
    tls_cert_file: str = ""
    tls_key_file: str = ""
    metrics_listen: str = ""
    pretty: bool = False
    log_format: str = "json"
    dev: bool = False
    # Reference constants that are not on the command line (§6.12); tests
    # shorten the timings.
    skew_seconds: int = 30
    cleanup_interval: float = 0.5
    attach_timeout: float = 10.0
    header_timeout: float = 5.0
    """Bound on a new connection's first request headers (§4.5)."""
    close_timeout: float = 2.0
    """Bound on writing a close frame and waiting for the peer's echo."""
    drain_timeout: float = 5.0
    """Bound on the graceful shutdown after SIGINT/SIGTERM."""
    max_pending_bytes: int = MAX_PENDING_BYTES
    replace_policy: ReplacePolicy = field(default_factory=ReplacePolicy)

    def normalized(self) -> TunnelConfig:
        """Map out-of-range values to the reference's choices (§6.12)."""
        return replace(
            self,
            max_conns=self.max_conns if self.max_conns > 0 else DEFAULT_MAX_CONNS,
            max_channels=(
                self.max_channels if self.max_channels > 0 else DEFAULT_MAX_CHANNELS
            ),
            max_total_pending_bytes=max(self.max_total_pending_bytes, 0),
            write_timeout=max(self.write_timeout, 0.0),
            max_write_queue_bytes=(
                self.max_write_queue_bytes
                if self.max_write_queue_bytes > 0
                else DEFAULT_MAX_WRITE_QUEUE_BYTES
            ),
            allow_origin=tuple(o.strip() for o in self.allow_origin if o.strip()),
        )

    def validate(self) -> None:
        """Startup checks of §6.12; raises :class:`ConfigError`."""
        if not self.aud.strip() or not self.iss.strip():
            raise ConfigError("aud and iss must not be blank")
        if not any(o.strip() for o in self.allow_origin):
            raise ConfigError("missing allowed origin")
        if not self.ws_path.startswith("/"):
            raise ConfigError(f"ws path must start with '/': {self.ws_path!r}")
        if self.max_write_queue_bytes < MAX_RECORD_BYTES:
            raise ConfigError(
                f"max write queue bytes must be >= {MAX_RECORD_BYTES}: "
                f"{self.max_write_queue_bytes}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"unknown log format {self.log_format!r}")


_STRINGS = (
    ("listen", "127.0.0.1:0", "listen address", "FSEC_TUNNEL_LISTEN"),
    (
        "advertise-host",
        "",
        "host (or URL) used in the ready line's URLs",
        "FSEC_TUNNEL_ADVERTISE_HOST",
    ),
    ("ws-path", "/ws", "websocket path", "FSEC_TUNNEL_WS_PATH"),
    (
        "issuer-keys-file",
        "",
        "issuer keyset file (required)",
        "FSEC_TUNNEL_ISSUER_KEYS_FILE",
    ),
    ("aud", "", "expected token audience (required)", "FSEC_TUNNEL_AUD"),
    ("iss", "", "expected token issuer (required)", "FSEC_TUNNEL_ISS"),
    ("tls-cert-file", "", "TLS certificate file (PEM)", "FSEC_TUNNEL_TLS_CERT_FILE"),
    ("tls-key-file", "", "TLS private key file (PEM)", "FSEC_TUNNEL_TLS_KEY_FILE"),
    (
        "metrics-listen",
        "",
        "metrics listen address (empty disables)",
        "FSEC_TUNNEL_METRICS_LISTEN",
    ),
    ("log-format", "json", "log format: json or console", "FSEC_TUNNEL_LOG_FORMAT"),
)
_INTS = (
    ("max-conns", 0, "max concurrent websocket connections", "FSEC_TUNNEL_MAX_CONNS"),
    ("max-channels", 0, "max concurrent channels", "FSEC_TUNNEL_MAX_CHANNELS"),
    (
        "max-total-pending-bytes",
        DEFAULT_MAX_TOTAL_PENDING_BYTES,
        "max total pending bytes buffered across all channels (0 disables)",
        "FSEC_TUNNEL_MAX_TOTAL_PENDING_BYTES",
    ),
    (
        "max-write-queue-bytes",
        DEFAULT_MAX_WRITE_QUEUE_BYTES,
        "max buffered bytes per websocket write queue",
        "FSEC_TUNNEL_MAX_WRITE_QUEUE_BYTES",
    ),
)
_BOOLS = (
    ("allow-no-origin", "allow requests without Origin", "FSEC_TUNNEL_ALLOW_NO_ORIGIN"),
    ("pretty", "pretty-print the ready JSON", ""),
    ("dev", "run with a throwaway issuer key on 127.0.0.1:8080", ""),
)
_DURATIONS = (
    (
        "write-timeout",
        DEFAULT_WRITE_TIMEOUT,
        "per-message write timeout (0 disables)",
        "FSEC_TUNNEL_WRITE_TIMEOUT",
    ),
)
_LISTS = (
    (
        "allow-origin",
        "allowed Origin entry (repeatable; full origin, hostname, host:port, "
        "*.domain or null)",
        "FSEC_TUNNEL_ALLOW_ORIGIN",
    ),
)


def build_parser() -> GoFlagParser:
    """The Go-style flag parser with every flag of §9.1 plus our additions."""
    parser = GoFlagParser(PROG)
    for name, default, text, env in _STRINGS:
        parser.add_string(name, default, text, env=(env,))
    for name, number, text, env in _INTS:
        parser.add_int(name, number, text, env=(env,))
    for name, text, env in _BOOLS:
        parser.add_bool(name, text, env=(env,) if env else ())
    for name, seconds, text, env in _DURATIONS:
        parser.add_duration(name, seconds, text, env=(env,))
    for name, text, env in _LISTS:
        parser.add_list(name, text, env=(env,))
    parser.add_string(
        "config", "", "TOML config file (keys are flag names with _)", env=()
    )
    parser.add_version()
    return parser


def _kinds() -> dict[str, str]:
    kinds: dict[str, str] = {}
    kinds.update({name: "string" for name, *_ in _STRINGS})
    kinds.update({name: "int" for name, *_ in _INTS})
    kinds.update({name: "bool" for name, *_ in _BOOLS})
    kinds.update({name: "duration" for name, *_ in _DURATIONS})
    kinds.update({name: "list" for name, *_ in _LISTS})
    return kinds


def load_toml(path: str) -> dict[str, Any]:
    """Read a config file into parser defaults (dest names); ConfigError if bad."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"read config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"parse config {path}: {exc}") from None
    kinds = _kinds()
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("_", "-")
        kind = kinds.get(name)
        if kind is None or "-" in key:
            raise ConfigError(f"config {path}: unknown key {key!r}")
        values[key] = _toml_value(path, key, kind, value)
    return values


def _toml_value(path: str, key: str, kind: str, value: object) -> object:
    bad = ConfigError(f"config {path}: {key}: expected a {kind}")
    if kind == "string":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "int":
        if type(value) is not int:
            raise bad
        return value
    if kind == "duration":
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise ConfigError(f"config {path}: {key}: {exc}") from None
        if type(value) in (int, float):
            return float(value)  # type: ignore[arg-type]
        raise bad
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise bad


def _config_path(argv: Sequence[str]) -> str:
    """Find ``--config`` before the full parse (it supplies defaults)."""
    path = ""
    for index, token in enumerate(argv):
        if token == "--":
            break
        for prefix in ("--config=", "-config="):
            if token.startswith(prefix):
                path = token[len(prefix) :]
        if token in ("--config", "-config") and index + 1 < len(argv):
            path = argv[index + 1]
    return path or (env_value("FSEC_TUNNEL_CONFIG") or "")


def parse(argv: Sequence[str]) -> tuple[TunnelConfig, GoFlagParser]:
    """Parse the command line into a config (exits 2 on usage errors).

    Required values and the TLS pair are checked here with the reference's
    messages; a bad config file exits 2 too. ``--dev`` fills the audience,
    issuer and origins it needs and makes ``127.0.0.1:8080`` the listen
    default (the key is made by the CLI).
    """
    config, parser = _parse_once(argv, dev=False)
    if config.dev:
        config, parser = _parse_once(argv, dev=True)
        config = apply_dev(config)
    elif not (config.issuer_keys_file and config.aud and config.iss):
        parser.usage_error("missing --issuer-keys-file, --aud, or --iss")
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        parser.usage_error("tls requires both --tls-cert-file and --tls-key-file")
    if not config.allow_origin:
        parser.usage_error("missing --allow-origin")
    return config, parser


def _parse_once(argv: Sequence[str], *, dev: bool) -> tuple[TunnelConfig, GoFlagParser]:
    parser = build_parser()
    if dev:
        parser.set_defaults(listen=DEV_LISTEN)
    path = _config_path(argv)
    if path:
        try:
            parser.set_defaults(**load_toml(path))
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            raise SystemExit(2) from None
    return from_namespace(parser.parse_args(list(argv))), parser


def from_namespace(args: argparse.Namespace) -> TunnelConfig:
    """Build a normalised config from parsed flags (strings trimmed)."""
    values: Mapping[str, Any] = vars(args)
    return TunnelConfig(
        listen=values["listen"].strip(),
        advertise_host=values["advertise_host"],
        ws_path=values["ws_path"].strip(),
        issuer_keys_file=values["issuer_keys_file"].strip(),
        aud=values["aud"].strip(),
        iss=values["iss"].strip(),
        allow_origin=tuple(values["allow_origin"]),
        allow_no_origin=values["allow_no_origin"],
        max_conns=values["max_conns"],
        max_channels=values["max_channels"],
        max_total_pending_bytes=values["max_total_pending_bytes"],
        write_timeout=values["write_timeout"],
        max_write_queue_bytes=values["max_write_queue_bytes"],
        tls_cert_file=values["tls_cert_file"].strip(),
        tls_key_file=values["tls_key_file"].strip(),
        metrics_listen=values["metrics_listen"].strip(),
        pretty=values["pretty"],
        log_format=values["log_format"].strip(),
        dev=values["dev"],
    ).normalized()


def apply_dev(config: TunnelConfig) -> TunnelConfig:
    """Fill what ``--dev`` provides where the operator left the default."""
    return replace(
        config,
        aud=config.aud or DEV_AUD,
        iss=config.iss or DEV_ISS,
        allow_origin=config.allow_origin or DEV_ORIGINS,
    )
