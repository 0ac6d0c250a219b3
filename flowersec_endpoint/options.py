"""Connect and serve options with the defaults of api.md §7.

Options arrive as keyword arguments (typed by the TypedDicts below) and are
checked in one place, so every entry point rejects a bad value with the same
``<path>/validate/invalid_option`` error at the same step of its flow.
"""

from __future__ import annotations

import math
import ssl as _ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

import aiohttp

from flowersec_endpoint.e2ee.channel import default_keepalive_interval
from flowersec_endpoint.e2ee.constants import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    DEFAULT_MAX_RECORD_BYTES,
)
from flowersec_endpoint.encoding import UINT32_MAX
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.observer import ConnectObserver

DEFAULT_CONNECT_TIMEOUT = 10.0

_T = TypeVar("_T")


class CommonOptionArgs(TypedDict, total=False):
    """Keyword options shared by every connecting call (both roles)."""

    headers: Mapping[str, str] | None
    connect_timeout: float | None
    handshake_timeout: float | None
    max_handshake_payload: int
    max_record_bytes: int
    max_buffered_bytes: int
    keepalive_interval: float | None
    ssl: _ssl.SSLContext | bool | None
    http_session: aiohttp.ClientSession | None


class ClientOptionArgs(CommonOptionArgs, total=False):
    """Keyword options of ``connect``, ``connect_tunnel`` and ``connect_direct``.

    ``endpoint_instance_id`` applies to the tunnel path only; passing one to
    a direct connect is ``invalid_option``.
    """

    client_features: int
    endpoint_instance_id: str | None
    observer: ConnectObserver | None


class ServerOptionArgs(CommonOptionArgs, total=False):
    """Keyword options of a serving endpoint attaching to a tunnel."""

    server_features: int
    clock_skew: float
    endpoint_instance_id: str | None


@dataclass(frozen=True, slots=True)
class Options:
    """Validated options; ``None`` timeouts mean "no timeout".

    ``keepalive_interval`` is ``None`` until a flow applies its default
    (derived from the grant on the tunnel path, off on the direct path).
    """

    headers: dict[str, str] = field(default_factory=dict)
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    keepalive_interval: float | None = None
    client_features: int = 0
    server_features: int = 0
    clock_skew: float = DEFAULT_CLOCK_SKEW
    endpoint_instance_id: str | None = None
    ssl: _ssl.SSLContext | bool | None = None
    http_session: aiohttp.ClientSession | None = None
    observer: ConnectObserver | None = None


def _bad(path: Path, message: str) -> FlowersecError:
    return FlowersecError(path, Stage.VALIDATE, Code.INVALID_OPTION, message)


def _timeout(path: Path, name: str, value: Any) -> float | None:
    """A timeout: ``None`` or 0 disables it; negative or NaN is rejected."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"{name} must be a number of seconds")
    if math.isnan(value) or value < 0:
        raise _bad(path, f"{name} must not be negative")
    return None if value == 0 or math.isinf(value) else float(value)


def _size(path: Path, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(path, f"{name} must be a positive integer")
    return value


def _features(path: Path, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, f"{name} must be an integer")
    if not 0 <= value <= UINT32_MAX:
        raise _bad(path, f"{name} must fit in 32 bits")
    return value


def _headers(path: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(path, "headers must be a mapping")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _bad(path, "headers must map strings to strings")
        result[key] = item
    return result


def build_options(path: Path, args: Mapping[str, Any]) -> Options:
    """Check keyword options and fill in the defaults (api.md §7).

    Unknown names are a programming error and raise TypeError.
    """
    known = Options.__dataclass_fields__
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    defaults = Options()

    def checked(check: Callable[[Path, str, Any], _T], name: str) -> _T:
        return check(path, name, args.get(name, getattr(defaults, name)))

    keepalive = args.get("keepalive_interval")
    if keepalive is not None:
        keepalive = _timeout(path, "keepalive_interval", keepalive) or 0.0
    skew_value = checked(_timeout, "clock_skew")
    eid = args.get("endpoint_instance_id")
    if eid is not None and not isinstance(eid, str):
        raise _bad(path, "endpoint_instance_id must be a string")
    session = args.get("http_session")
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise _bad(path, "http_session must be an aiohttp.ClientSession")
    return Options(
        headers=_headers(path, args.get("headers")),
        connect_timeout=checked(_timeout, "connect_timeout"),
        handshake_timeout=checked(_timeout, "handshake_timeout"),
        max_handshake_payload=checked(_size, "max_handshake_payload"),
        max_record_bytes=checked(_size, "max_record_bytes"),
        max_buffered_bytes=checked(_size, "max_buffered_bytes"),
        keepalive_interval=keepalive,
        client_features=checked(_features, "client_features"),
        server_features=checked(_features, "server_features"),
        clock_skew=skew_value or DEFAULT_CLOCK_SKEW,
        endpoint_instance_id=eid,
        ssl=args.get("ssl"),
        http_session=session,
        observer=args.get("observer"),
    )


def resolve_origin(path: Path, origin: str | None, headers: Mapping[str, str]) -> str:
    """The Origin to send: the explicit value, else an ``Origin`` header.

    An Origin is mandatory on every connecting call (api.md §6).
    """
    value = (origin or "").strip()
    if not value:
        for key, item in headers.items():
            if key.lower() == "origin":
                value = item.strip()
    if not value:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.MISSING_ORIGIN, "an Origin is required"
        )
    return value


def tunnel_keepalive(explicit: float | None, idle_timeout_seconds: int) -> float:
    """Keepalive interval for the tunnel path (api.md §8); 0 means off.

    The default is half the tunnel's idle timeout, at least 500 ms, so the
    tunnel's idle timer never fires on a quiet but healthy channel.
    """
    if explicit is not None:
        return explicit
    return default_keepalive_interval(idle_timeout_seconds)
