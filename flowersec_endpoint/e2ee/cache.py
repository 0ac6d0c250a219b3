"""Server handshake cache: same init, same resp (e2ee.md §12).

Keyed by the init fingerprint so a retried init gets back the very same
server key, nonce and handshake id. Not thread-safe; one event loop may share
one cache between connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flowersec_endpoint.e2ee.constants import (
    DEFAULT_CACHE_MAX_ENTRIES,
    DEFAULT_CACHE_TTL,
    Suite,
)
from flowersec_endpoint.e2ee.errors import handshake_failed
from flowersec_endpoint.e2ee.keyschedule import EphemeralKey


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """Server values fixed when the first matching init arrives."""

    suite: Suite
    key: EphemeralKey
    nonce_s: bytes
    handshake_id: str
    server_features: int
    created_at: float


class HandshakeCache:
    """Pending server handshake states with a lifetime and a capacity.

    ``ttl`` and ``max_entries`` of 0 turn the respective limit off. Expired
    entries are purged only when an entry is looked up or created, as the
    reference does; a full cache refuses new entries ("too many pending
    handshakes", ``handshake_failed``) rather than evicting live ones.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_entries < 0:
            raise ValueError("ttl and max_entries must not be negative")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, CacheEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup_or_create(
        self, fingerprint: bytes, create: Callable[[float], CacheEntry]
    ) -> CacheEntry:
        """Return the live entry for ``fingerprint``, creating it if absent.

        ``create`` receives the current clock value to stamp the entry.
        """
        now = self._clock()
        self._purge(now)
        entry = self._entries.get(fingerprint)
        if entry is not None:
            return entry
        if self.max_entries and len(self._entries) >= self.max_entries:
            raise handshake_failed("too many pending handshakes")
        entry = create(now)
        self._entries[fingerprint] = entry
        return entry

    def delete(self, fingerprint: bytes) -> None:
        """Forget an entry after its handshake succeeded."""
        self._entries.pop(fingerprint, None)

    def _purge(self, now: float) -> None:
        if not self.ttl:
            return
        # Insertion order is creation order, so the expired ones come first.
        expired: list[bytes] = []
        for fp, entry in self._entries.items():
            if now - entry.created_at < self.ttl:
                break
            expired.append(fp)
        for fp in expired:
            del self._entries[fp]
