"""The Origin allow-list of tunnel.md §4.3.

Browsers can open a WebSocket to any host, so the tunnel only upgrades
requests whose ``Origin`` the operator listed. The matching rules are the
reference's, byte for byte: no case folding and no default-port
normalisation (§11.9), because an operator's existing list must keep
meaning exactly what it meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PORT = re.compile(r"[0-9]*")


def split_host_port(text: str) -> tuple[str, str] | None:
    """Split ``host:port`` like Go's ``net.SplitHostPort``; None if invalid.

    The port may be empty (``example.com:``); IPv6 hosts need brackets.
    """
    colon = text.rfind(":")
    if colon < 0:
        return None
    after_host = 0
    after_bracket = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 == len(text) or end + 1 != colon:
            return None
        host = text[1:end]
        after_host, after_bracket = 1, end + 1
    else:
        host = text[:colon]
        if ":" in host:
            return None
    if "[" in text[after_host:] or "]" in text[after_bracket:]:
        return None
    return host, text[colon + 1 :]


def origin_authority(origin: str) -> tuple[str, str]:
    """Return ``(host, hostname)`` of an Origin value; both empty if unparsable.

    ``host`` is the authority as written (``[::1]:5173``), ``hostname`` the
    same without port and brackets. Values without ``scheme://`` (such as
    ``null``) have no authority.
    """
    scheme, sep, rest = origin.partition("://")
    if not sep or not scheme or not _valid_scheme(scheme):
        return "", ""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in origin):
        return "", ""
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if 0 <= index < end:
            end = index
    host = rest[:end].rpartition("@")[2]
    if host.startswith("["):
        close = host.find("]")
        if close < 0:
            return "", ""
        hostname, port_part = host[1:close], host[close + 1 :]
    elif ":" in host:
        # Go splits at the last colon: an unbracketed "::1:5173" is host "::1".
        hostname, _, port = host.rpartition(":")
        port_part = ":" + port
    else:
        hostname, port_part = host, ""
    if port_part and (port_part[0] != ":" or not _PORT.fullmatch(port_part[1:])):
        return "", ""
    return host, hostname


def _valid_scheme(scheme: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme))


class OriginPolicy:
    """Decides whether an upgrade request's Origin is allowed."""

    __slots__ = ("_allow_no_origin", "_entries")

    def __init__(self, entries: Iterable[str], *, allow_no_origin: bool) -> None:
        self._entries = tuple(e.strip() for e in entries if e.strip())
        self._allow_no_origin = allow_no_origin

    @property
    def entries(self) -> tuple[str, ...]:
        """The non-blank, trimmed entries in list order."""
        return self._entries

    def allows(self, origin: str | None) -> bool:
        """Apply §4.3 to the first Origin header value (None when absent)."""
        if not origin:
            return self._allow_no_origin
        host, hostname = origin_authority(origin)
        return any(_entry_allows(e, origin, host, hostname) for e in self._entries)


def _entry_allows(entry: str, origin: str, host: str, hostname: str) -> bool:
    if "://" in entry:
        return origin == entry
    if entry.startswith("*."):
        base = entry[2:]
        return bool(hostname and base) and (
            hostname == base or hostname.endswith("." + base)
        )
    if host and split_host_port(entry) is not None:
        return host == entry
    if hostname and hostname == entry:
        return True
    return origin == entry
