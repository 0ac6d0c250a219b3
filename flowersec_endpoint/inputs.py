"""What a connect call accepts, and the input checks every flow shares.

Sans-I/O: decides the path for :func:`~flowersec_endpoint.connecting.connect`
(api.md §1.4, Go ``Connect`` rules) and validates PSKs, suites and
endpoint instance ids with the codes of api.md §9.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from flowersec_endpoint import grants
from flowersec_endpoint.attach import (
    check_endpoint_instance_id,
    new_endpoint_instance_id,
)
from flowersec_endpoint.encoding import DecodeError, b64u_decode, loads_object
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage
from flowersec_endpoint.grants import ChannelInitGrant, DirectConnectInfo

MAX_INPUT_BYTES = 1024 * 1024
PSK_BYTES = 32
SUITES = frozenset({1, 2})
_TUNNEL_KEYS = ("grant_client", "tunnel_url", "token", "role")

ConnectInput = (
    ChannelInitGrant | DirectConnectInfo | Mapping[str, Any] | str | bytes | IO[Any]
)


def fail(path: Path, code: Code, message: str) -> FlowersecError:
    """A ``<path>/validate/<code>`` error."""
    return FlowersecError(path, Stage.VALIDATE, code, message)


def decode_psk(path: Path, text: str) -> bytes:
    """Decode a grant's PSK: base64url without padding, exactly 32 bytes.

    Decoded with Go's lenient rules (line breaks skipped, stray trailing
    bits ignored) so a PSK the Go client accepts is accepted here too.
    """
    try:
        psk = b64u_decode(text)
    except DecodeError as exc:
        raise FlowersecError(
            path, Stage.VALIDATE, Code.INVALID_PSK, "psk is not base64url", exc
        ) from exc
    if len(psk) != PSK_BYTES:
        raise fail(path, Code.INVALID_PSK, "psk must be 32 bytes")
    return psk


def check_suite(path: Path, suite: int) -> int:
    """The suite both sides use must be 1 (X25519) or 2 (P-256)."""
    if suite not in SUITES:
        raise fail(path, Code.INVALID_SUITE, "default_suite must be 1 or 2")
    return suite


def endpoint_instance_id(path: Path, given: str | None) -> str:
    """The caller's id if the tunnel would accept it, else a fresh one."""
    if given is None:
        try:
            return new_endpoint_instance_id()
        except OSError as exc:
            raise FlowersecError(
                path, Stage.VALIDATE, Code.RANDOM_FAILED, "no randomness", exc
            ) from exc
    try:
        return check_endpoint_instance_id(given)
    except DecodeError as exc:
        raise FlowersecError(
            path,
            Stage.VALIDATE,
            Code.INVALID_ENDPOINT_INSTANCE_ID,
            str(exc),
            exc,
        ) from exc


def detect(input: ConnectInput | None) -> ChannelInitGrant | DirectConnectInfo:
    """Decide the path for ``input`` and decode it (Go ``Connect`` rules)."""
    if isinstance(input, ChannelInitGrant | DirectConnectInfo):
        return input
    obj = _as_object(input)
    if "ws_url" in obj:
        try:
            return grants.direct_info_from_obj(dict(obj))
        except DecodeError as exc:
            raise _invalid(Path.DIRECT, exc) from exc
    if not any(key in obj for key in _TUNNEL_KEYS):
        if "grant_server" in obj:
            return _wrapped(obj, "grant_server")
        raise fail(Path.AUTO, Code.INVALID_INPUT, "not a grant or direct info")
    if "grant_client" in obj:
        return _wrapped(obj, "grant_client")
    return _grant(obj)


def _wrapped(obj: Mapping[str, Any], key: str) -> ChannelInitGrant:
    inner = obj[key]
    if inner is None or inner == "":
        raise fail(Path.TUNNEL, Code.MISSING_GRANT, f"{key} is empty")
    if not isinstance(inner, Mapping):
        raise fail(Path.TUNNEL, Code.INVALID_INPUT, f"{key} is not an object")
    return _grant(inner)


def _grant(obj: Mapping[str, Any]) -> ChannelInitGrant:
    try:
        return grants.grant_from_obj(dict(obj))
    except DecodeError as exc:
        raise _invalid(Path.TUNNEL, exc) from exc


def _invalid(path: Path, exc: Exception) -> FlowersecError:
    return FlowersecError(path, Stage.VALIDATE, Code.INVALID_INPUT, str(exc), exc)


def _as_object(input: object) -> Mapping[str, Any]:
    """Turn the accepted input forms into a JSON object (1 MiB cap)."""
    if isinstance(input, Mapping):
        return input
    data: object = input
    read = getattr(input, "read", None)
    if callable(read):
        data = read(MAX_INPUT_BYTES + 1)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowersecError(
                Path.AUTO, Stage.VALIDATE, Code.INVALID_INPUT, "not UTF-8", exc
            ) from exc
    if not isinstance(data, str):
        raise fail(Path.AUTO, Code.INVALID_INPUT, "unsupported input type")
    if len(data.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
        raise fail(Path.AUTO, Code.INVALID_INPUT, "input too large")
    text = data.strip()
    if not text:
        raise fail(Path.AUTO, Code.INVALID_INPUT, "empty input")
    if not text.startswith(("{", "[")):
        raise fail(Path.AUTO, Code.INVALID_INPUT, "input is not JSON")
    try:
        return loads_object(text)
    except DecodeError as exc:
        raise _invalid(Path.AUTO, exc) from exc
