"""Strict base64url and JSON field readers shared by every wire format.

The stdlib decoders are too lenient for a protocol (``urlsafe_b64decode``
drops foreign characters, ``json.loads`` accepts ``NaN`` and lets ``True``
pass as an integer), so every message and file goes through these helpers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_B64U_CHARS = re.compile(r"[A-Za-z0-9_-]*")

INT8_MAX = 2**8 - 1
INT16_MAX = 2**16 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class DecodeError(ValueError):
    """Input that is not well-formed for the field or format it claims."""


def b64u_encode(data: bytes) -> str:
    """Encode as base64url without padding (the only form producers emit)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str, *, canonical: bool = False) -> bytes:
    """Decode base64url without padding.

    With ``canonical=False`` the rules are the tunnel's (tunnel.md §0.1):
    CR/LF skipped, non-zero trailing bits tolerated. With ``canonical=True``
    the text must be exactly what :func:`b64u_encode` would produce, the
    stricter rule the E2EE layer uses for keys and PSKs.
    """
    if not canonical:
        text = text.replace("\r", "").replace("\n", "")
    if not _B64U_CHARS.fullmatch(text):
        raise DecodeError("invalid base64url character")
    if len(text) % 4 == 1:
        raise DecodeError("invalid base64url length")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("invalid base64url") from exc
    if canonical and b64u_encode(data) != text:
        raise DecodeError("non-canonical base64url")
    return data


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"invalid JSON constant {name}")


def loads_object(data: bytes | str) -> dict[str, Any]:
    """Parse JSON whose top level must be an object (tunnel.md §0.2).

    Duplicate members keep the last value; trailing garbage, ``NaN`` and
    invalid UTF-8 are errors. Messages never carry the parser's own text:
    ``empty input`` for nothing but whitespace, otherwise ``invalid JSON``
    with the place of the first error when known.
    """
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        if not data.strip():
            raise DecodeError("empty input")
        value = json.loads(data, parse_constant=_reject_constant)
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        place = f"line {exc.lineno} column {exc.colno}"
        raise DecodeError(f"invalid JSON at {place}") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid JSON: not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's digit limit, or nesting too deep.
        raise DecodeError(f"invalid JSON: {exc.__class__.__name__}") from exc
    if not isinstance(value, dict):
        raise DecodeError("JSON top level is not an object")
    return value


def read_str(obj: dict[str, Any], name: str) -> str:
    """Read a string member; absent or ``null`` reads as ``""``.

    JSON escapes can smuggle in lone surrogates, which have no UTF-8 form
    for byte-length limits, signatures or transcripts, so they are rejected.
    """
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{name}: expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError(f"{name}: not valid Unicode") from exc
    return value


def read_int(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    """Read an integer member in ``[low, high]``; absent or ``null`` reads 0.

    Booleans and floats (``1.0``, ``1e3``) are rejected, as the reference's
    typed decoder does.
    """
    value = obj.get(name)
    if value is None:
        return 0
    if type(value) is not int:
        raise DecodeError(f"{name}: expected an integer")
    if not low <= value <= high:
        raise DecodeError(f"{name}: out of range")
    return value


def read_int_list(obj: dict[str, Any], name: str, low: int, high: int) -> list[int]:
    """Read an array of integers in ``[low, high]``; absent or ``null`` is []."""
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{name}: expected an array")
    items: list[int] = []
    for item in value:
        if type(item) is not int or not low <= item <= high:
            raise DecodeError(f"{name}: expected integers in range")
        items.append(item)
    return items


def dumps_compact(obj: dict[str, Any]) -> bytes:
    """Serialise like Go's ``encoding/json``: compact, UTF-8, HTML-escaped.

    Byte equality with reference producers matters only for test vectors and
    signatures over encoded text, but matching them costs nothing. NaN and
    infinities raise ``ValueError`` as in Go: they are not JSON, and a
    strict reader (the TypeScript RPC client) would stop for good on them.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
