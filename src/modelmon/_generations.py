"""A cache that keeps what its last round used: memory bounded by one round's worth."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


class TwoGenerations:
    """Entries used (or put) since the last :meth:`turn` survive one more round.

    A round is a render (the text renderer's caches) or a merge (the multi-process
    aggregates built per worker entry): what a round did not use is dropped at the end
    of the next, so the cache never outgrows two rounds' worth.

    >>> cache = TwoGenerations()
    >>> cache.put("a", 1)
    >>> cache.turn()
    >>> cache.get("a")
    1
    >>> cache.turn(); cache.turn()
    >>> cache.get("a") is None
    True
    """

    def __init__(self) -> None:
        self.old: dict[Hashable, Any] = {}
        self.new: dict[Hashable, Any] = {}

    def get(self, key: Hashable) -> Any:
        hit = self.new.get(key)
        if hit is None:
            hit = self.old.get(key)
            if hit is not None:
                self.new[key] = hit
        return hit

    def put(self, key: Hashable, value: Any) -> None:
        self.new[key] = value

    def turn(self) -> None:
        self.old, self.new = self.new, {}
