"""Drift statistics computed once per change of the data, not once per scrape.

A :class:`StatsCache` holds the last computed statistics of an aggregate with the key
they were computed at: the aggregate's *fold generation* (a counter bumped whenever a
fold, a merge or a state load changes the data) and the window's slot index (the
window slides when it changes). A read with the same key reuses them.

When the key differs the statistics are stale. They are served anyway only when they
cover enough rows that the rows folded since are at most :data:`STALE_SHARE` of them
(the aggregate says how many they cover: for drift, the fewest values of any member,
0 while a member is below ``min_samples``, so a score about to appear never waits), while
a refresh is pending (:meth:`StatsCache.mark_pending`: the background folder folded and
will refresh within ``drift_refresh_s``, see :mod:`modelmon._internal.folder`), the
window has not slid, and no explicit fold asked for fresh ones since
(:meth:`StatsCache.require_fresh`: ``monitor.fold()`` then a scrape shows everything
folded). Otherwise the read computes them synchronously. A pending mark older than
:data:`STALE_LIMIT_S` plus the refresh interval is ignored (a folder that stopped never
freezes the statistics).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

STALE_LIMIT_S = 5.0  # beyond the refresh interval: a pending refresh this late is ignored
STALE_SHARE = 0.01  # stale statistics are served only while new rows are <= 1% of theirs


class StatsCache(Generic[T]):
    """The last statistics of one aggregate and the key they were computed at."""

    __slots__ = ("_entry", "_must_show", "_pending_since", "_stale_for")

    def __init__(self) -> None:
        self._entry: tuple[int, int, T, int, int] | None = None  # key, value, rows, cover
        self._must_show = 0  # the oldest generation a read may show
        self._pending_since: float | None = None  # time.monotonic() of the first mark
        self._stale_for = 0.0  # how long a pending refresh may take

    def clear(self) -> None:
        """Forget the statistics (a new layout: the next read computes)."""
        self._entry = None
        self._pending_since = None

    def mark_pending(self, refresh_s: float) -> None:
        """A background fold changed the data; a refresh within ``refresh_s`` is due."""
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._stale_for = refresh_s + STALE_LIMIT_S

    def require_fresh(self, generation: int) -> None:
        """The next read shows at least ``generation`` (an explicit fold happened)."""
        self._must_show = max(self._must_show, generation)

    def get(
        self, generation: int, index: int, rows: int, compute: Callable[[], tuple[T, int]]
    ) -> T:
        """The statistics at this key: cached, stale while a refresh is pending, or new.

        ``rows`` counts every row folded so far; ``compute`` returns the statistics and
        how many rows they cover (see the module doc).
        """
        entry = self._entry
        if (
            entry is not None
            and entry[1] == index
            and (entry[0] == generation or self._may_be_stale(entry, rows))
        ):
            return entry[2]
        return self.refresh(generation, index, rows, compute)

    def refresh(
        self, generation: int, index: int, rows: int, compute: Callable[[], tuple[T, int]]
    ) -> T:
        """Compute the statistics at this key now (unless they are already current)."""
        entry = self._entry
        if entry is not None and entry[0] == generation and entry[1] == index:
            self._pending_since = None
            return entry[2]
        value, cover = compute()
        self._entry = (generation, index, value, rows, cover)
        self._pending_since = None
        return value

    def _may_be_stale(self, entry: tuple[int, int, T, int, int], rows: int) -> bool:
        since = self._pending_since
        generation, _, _, then, cover = entry
        return (
            since is not None
            and generation >= self._must_show
            and rows - then <= STALE_SHARE * cover
            and time.monotonic() - since <= self._stale_for
        )
