"""Single-use enforcement for attach tokens (tunnel.md §7).

Tokens are bearer credentials, so each ``token_id`` may attach once until
the token could no longer verify (``exp + skew``). The store sits behind a
small protocol so that a deployment with several tunnel instances can put a
shared store (Redis, a database) in place of the in-memory one.
"""

from __future__ import annotations

from typing import Protocol

from flowersec_endpoint.encoding import INT64_MAX


class ReplayStore(Protocol):
    """Remembers used token IDs until their expiry."""

    def check_and_mark(self, token_id: str, used_until: int, now: int) -> bool:
        """Mark ``token_id`` used until ``used_until``; False if already used.

        ``now`` is the wall clock in whole seconds. Check and mark are one
        atomic step. An empty ``token_id`` is never accepted.
        """
        ...

    def purge(self, now: int) -> int:
        """Forget entries with ``used_until < now``; return how many."""
        ...

    def __len__(self) -> int: ...


def used_until(exp: int, skew_seconds: int) -> int:
    """Return ``exp + skew`` clamped to the int64 maximum."""
    return min(exp + skew_seconds, INT64_MAX)


class MemoryReplayStore:
    """The per-process store of the reference: a dict, purged by the cleanup loop.

    There is no capacity bound beyond the tokens' own lifetimes, as in the
    reference: entries can only be added with validly signed tokens, and
    each leaves at ``exp + skew``.
    """

    __slots__ = ("_used",)

    def __init__(self) -> None:
        self._used: dict[str, int] = {}

    def check_and_mark(self, token_id: str, used_until: int, now: int) -> bool:
        if not token_id:
            return False
        previous = self._used.get(token_id)
        if previous is not None and previous >= now:
            return False
        self._used[token_id] = used_until
        return True

    def purge(self, now: int) -> int:
        expired = [k for k, until in self._used.items() if until < now]
        for key in expired:
            del self._used[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._used)
