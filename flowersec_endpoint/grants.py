"""ChannelInitGrant and DirectConnectInfo: the inputs of a connection.

Control planes written in Go or TypeScript produce these objects and our
tools produce them for Go and TypeScript clients (api.md §1.1-1.3,
tunnel.md §3.1-3.2), so both directions follow the reference exactly:
members in reference order, every member always emitted, types and ranges
checked as the reference's typed decoder does.

Two layers of decoding, with two error types:

* ``grant_from_obj`` / ``direct_info_from_obj`` take a parsed JSON object
  and raise :class:`~flowersec_endpoint.encoding.DecodeError` for a member
  of the wrong type or range. They check nothing else: absent members read
  as ``""`` / ``0`` / ``()`` and the connect flows report what is missing.
* the ``decode_*_json`` helpers (Go ``protocolio``) take JSON text capped at
  1 MiB and raise :class:`~flowersec_endpoint.errors.FlowersecError` at
  stage ``validate``, path ``tunnel`` (grants) or ``direct`` (info), code
  ``invalid_input`` for oversized, malformed or mistyped input,
  ``missing_grant`` for a ``null`` wrapper value, and
  ``role_mismatch`` when the grant's role is not the one asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any

from flowersec_endpoint.encoding import (
    INT8_MAX,
    INT16_MAX,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    DecodeError,
    dumps_compact,
    loads_object,
    read_int,
    read_int_list,
    read_str,
)
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage

MAX_JSON_BYTES = 1024 * 1024
ROLE_CLIENT = 1
ROLE_SERVER = 2
SUITE_X25519 = 1
SUITE_P256 = 2

JsonInput = bytes | bytearray | str | IO[bytes]


@dataclass(frozen=True, slots=True)
class ChannelInitGrant:
    """One role's grant for a tunnel channel; ``repr`` hides token and PSK."""

    tunnel_url: str
    channel_id: str
    channel_init_expire_at_unix_s: int
    idle_timeout_seconds: int
    role: int
    token: str = field(repr=False)
    e2ee_psk_b64u: str = field(repr=False)
    allowed_suites: tuple[int, ...]
    default_suite: int

    def to_obj(self) -> dict[str, Any]:
        """Return the reference JSON object (all members, reference order)."""
        return {
            "tunnel_url": self.tunnel_url,
            "channel_id": self.channel_id,
            "channel_init_expire_at_unix_s": self.channel_init_expire_at_unix_s,
            "idle_timeout_seconds": self.idle_timeout_seconds,
            "role": self.role,
            "token": self.token,
            "e2ee_psk_b64u": self.e2ee_psk_b64u,
            "allowed_suites": list(self.allowed_suites),
            "default_suite": self.default_suite,
        }

    def to_json(self) -> bytes:
        """Return the compact Go-identical JSON of :meth:`to_obj`."""
        return dumps_compact(self.to_obj())


@dataclass(frozen=True, slots=True)
class DirectConnectInfo:
    """How to reach a direct (tunnel-less) server; ``repr`` hides the PSK."""

    ws_url: str
    channel_id: str
    e2ee_psk_b64u: str = field(repr=False)
    channel_init_expire_at_unix_s: int
    default_suite: int

    def to_obj(self) -> dict[str, Any]:
        """Return the reference JSON object (all members, reference order)."""
        return {
            "ws_url": self.ws_url,
            "channel_id": self.channel_id,
            "e2ee_psk_b64u": self.e2ee_psk_b64u,
            "channel_init_expire_at_unix_s": self.channel_init_expire_at_unix_s,
            "default_suite": self.default_suite,
        }

    def to_json(self) -> bytes:
        """Return the compact Go-identical JSON of :meth:`to_obj`."""
        return dumps_compact(self.to_obj())


def grant_from_obj(obj: dict[str, Any]) -> ChannelInitGrant:
    """Read a grant from a JSON object; ``DecodeError`` on a mistyped member."""
    return ChannelInitGrant(
        tunnel_url=read_str(obj, "tunnel_url"),
        channel_id=read_str(obj, "channel_id"),
        channel_init_expire_at_unix_s=read_int(
            obj, "channel_init_expire_at_unix_s", INT64_MIN, INT64_MAX
        ),
        idle_timeout_seconds=read_int(
            obj, "idle_timeout_seconds", INT32_MIN, INT32_MAX
        ),
        role=read_int(obj, "role", 0, INT8_MAX),
        token=read_str(obj, "token"),
        e2ee_psk_b64u=read_str(obj, "e2ee_psk_b64u"),
        allowed_suites=tuple(read_int_list(obj, "allowed_suites", 0, INT16_MAX)),
        default_suite=read_int(obj, "default_suite", 0, INT16_MAX),
    )


def direct_info_from_obj(obj: dict[str, Any]) -> DirectConnectInfo:
    """Read direct info from a JSON object; ``DecodeError`` if mistyped."""
    return DirectConnectInfo(
        ws_url=read_str(obj, "ws_url"),
        channel_id=read_str(obj, "channel_id"),
        e2ee_psk_b64u=read_str(obj, "e2ee_psk_b64u"),
        channel_init_expire_at_unix_s=read_int(
            obj, "channel_init_expire_at_unix_s", INT64_MIN, INT64_MAX
        ),
        default_suite=read_int(obj, "default_suite", 0, INT16_MAX),
    )


def _fail(
    path: Path, code: Code, message: str, cause: Exception | None = None
) -> FlowersecError:
    return FlowersecError(path, Stage.VALIDATE, code, message, cause)


def _load(path: Path, data: JsonInput) -> dict[str, Any]:
    """Read at most 1 MiB of JSON and parse it as an object."""
    raw: bytes | str
    if isinstance(data, str | bytes):
        raw = data
    elif isinstance(data, bytearray):
        raw = bytes(data)
    else:
        raw = data.read(MAX_JSON_BYTES + 1)
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > MAX_JSON_BYTES:
        raise _fail(path, Code.INVALID_INPUT, "input too large")
    try:
        return loads_object(raw)
    except DecodeError as exc:
        raise _fail(path, Code.INVALID_INPUT, str(exc), exc) from exc


def _grant(path: Path, obj: Any) -> ChannelInitGrant:
    if not isinstance(obj, dict):
        raise _fail(path, Code.INVALID_INPUT, "grant is not a JSON object")
    try:
        return grant_from_obj(obj)
    except DecodeError as exc:
        raise _fail(path, Code.INVALID_INPUT, str(exc), exc) from exc


def decode_grant_json(data: JsonInput) -> ChannelInitGrant:
    """Decode a bare grant (no wrapper, no role check)."""
    return _grant(Path.TUNNEL, _load(Path.TUNNEL, data))


def _decode_role(data: JsonInput, wrapper: str, role: int) -> ChannelInitGrant:
    obj: Any = _load(Path.TUNNEL, data)
    if wrapper in obj:
        obj = obj[wrapper]
        if obj is None:
            raise _fail(Path.TUNNEL, Code.MISSING_GRANT, f"{wrapper} is null")
    grant = _grant(Path.TUNNEL, obj)
    if grant.role != role:
        expected = "client" if role == ROLE_CLIENT else "server"
        raise _fail(Path.TUNNEL, Code.ROLE_MISMATCH, f"expected role {expected}")
    return grant


def decode_grant_client_json(data: JsonInput) -> ChannelInitGrant:
    """Decode a client grant, bare or as ``{"grant_client": …}`` (role 1)."""
    return _decode_role(data, "grant_client", ROLE_CLIENT)


def decode_grant_server_json(data: JsonInput) -> ChannelInitGrant:
    """Decode a server grant, bare or as ``{"grant_server": …}`` (role 2)."""
    return _decode_role(data, "grant_server", ROLE_SERVER)


def decode_direct_connect_info_json(data: JsonInput) -> DirectConnectInfo:
    """Decode a bare DirectConnectInfo; extra members are ignored."""
    obj = _load(Path.DIRECT, data)
    try:
        return direct_info_from_obj(obj)
    except DecodeError as exc:
        raise _fail(Path.DIRECT, Code.INVALID_INPUT, str(exc), exc) from exc
