"""A sliding time window built from mergeable sub-window slots.

Slots are keyed by their absolute index ``int(now // slot_seconds)``, so the windows of
different processes (and replicas) line up and merge slot by slot. The window at time
``now`` holds the slots ``current - slots + 1 .. current``: between ``slots - 1`` and
``slots`` slot lengths of history (the current slot is partly filled). Older slots are
dropped whenever the window is touched.

A wall clock that steps back never brings old slots back: by less than the window, the
window stands still (new data goes to the newest slot) until the clock catches up; by
more, the slots ahead of the clock are dropped and the window restarts on the new clock.

>>> from modelmon.sketches.moments import Moments
>>> import numpy as np
>>> w = SlidingWindow(Moments, Moments.from_state, window_seconds=60.0, slots=6)
>>> w.current(now=0.0).add(np.array([1.0, 2.0]))
>>> w.current(now=30.0).add(np.array([3.0]))
>>> w.merged(now=30.0).count, w.merged(now=65.0).count, w.merged(now=200.0)
(3, 1, None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from ..errors import ConfigurationError


class Mergeable(Protocol):
    """What a slot must offer: exact in-place merge and a plain state."""

    def merge(self, other: Any) -> None: ...

    def state(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Mergeable)


class SlidingWindow(Generic[T]):
    """``slots`` slots of ``window_seconds / slots`` seconds each, keyed by absolute index."""

    def __init__(
        self,
        factory: Callable[[], T],
        loader: Callable[[Mapping[str, Any]], T],
        window_seconds: float = 900.0,
        slots: int = 15,
    ) -> None:
        if window_seconds <= 0 or slots < 1:
            raise ConfigurationError(
                f"window_seconds must be > 0 and slots >= 1, got {window_seconds!r}, {slots!r}"
            )
        self.factory = factory
        self.loader = loader
        self.window_seconds = float(window_seconds)
        self.n_slots = int(slots)
        self.slot_seconds = self.window_seconds / self.n_slots
        self.slots: dict[int, T] = {}
        self._reset_cache()

    def _reset_cache(self) -> None:
        # Version of each slot (bumped whenever it may change) and the last snapshots:
        # the merge of the slots before the newest one, and the whole window.
        self._tick = 0
        self._versions: dict[int, int] = {}
        self._closed: tuple[tuple[tuple[int, int], ...], T] | None = None
        self._full: tuple[tuple[tuple[int, int], ...], T] | None = None

    def _bump(self, k: int) -> None:
        self._tick += 1
        self._versions[k] = self._tick

    def index(self, now: float) -> int:
        """Absolute slot index of ``now``."""
        return int(now // self.slot_seconds)

    def _expire(self, now: float) -> int:
        current = self.index(now)
        ahead = [k for k in self.slots if k > current]
        if ahead:  # the wall clock stepped back
            newest = max(ahead)
            if newest - current < self.n_slots:
                current = newest  # by less than the window: it stands still till then
            else:  # by more: those slots would come back into the window as if fresh
                for k in ahead:
                    del self.slots[k]
                    self._versions.pop(k, None)
        oldest = current - self.n_slots + 1
        for k in [k for k in self.slots if k < oldest]:
            del self.slots[k]
            self._versions.pop(k, None)
        return current

    def current(self, now: float) -> T:
        """The slot ``now`` falls in (created when missing)."""
        current = self._expire(now)
        slot = self.slots.get(current)
        if slot is None:
            slot = self.slots[current] = self.factory()
        self._bump(current)
        return slot

    def touch(self, now: float) -> None:
        """Record that the slot of ``now`` changed (after writing to :meth:`current`)."""
        self._bump(self._expire(now))

    def merged(self, now: float) -> T | None:
        """A fresh merge of the slots inside the window at ``now``; ``None`` when empty."""
        current = self._expire(now)
        keys = sorted(k for k in self.slots if k <= current)
        if not keys:
            return None
        out = self.factory()
        for k in keys:
            out.merge(self.slots[k])
        return out

    def snapshot(self, now: float) -> T | None:
        """The merge of the window at ``now``, shared and cached: do not modify it.

        Unchanged slots are not merged again: the slots before the newest are merged
        once (until one of them changes or expires), then the newest is added to a copy.
        """
        current = self._expire(now)
        keys = sorted(k for k in self.slots if k <= current)
        if not keys:
            return None
        full = tuple((k, self._versions.get(k, 0)) for k in keys)
        if self._full is not None and self._full[0] == full:
            return self._full[1]
        closed = full[:-1]
        if self._closed is None or self._closed[0] != closed:
            base = self.factory()
            for k in keys[:-1]:
                base.merge(self.slots[k])
            self._closed = (closed, base)
        out = self.factory()
        out.merge(self._closed[1])
        out.merge(self.slots[keys[-1]])
        self._full = (full, out)
        return out

    def merge(self, other: SlidingWindow[T], now: float | None = None) -> None:
        """Merge ``other`` slot by slot (same index -> merged); expired slots dropped.

        ``now`` defaults to the newest slot either window holds.
        """
        if other.slot_seconds != self.slot_seconds or other.n_slots != self.n_slots:
            raise ValueError("cannot merge windows with different slot layouts")
        for k, slot in other.slots.items():
            mine = self.slots.get(k)
            if mine is None:
                mine = self.slots[k] = self.factory()
            mine.merge(slot)
            self._bump(k)
        if now is None and self.slots:
            now = (max(self.slots) + 0.5) * self.slot_seconds
        if now is not None:
            self._expire(now)

    def state(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window_seconds,
            "slots": self.n_slots,
            "data": {str(k): v.state() for k, v in sorted(self.slots.items())},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.window_seconds = float(state["window_seconds"])
        self.n_slots = int(state["slots"])
        self.slot_seconds = self.window_seconds / self.n_slots
        self.slots = {int(k): self.loader(v) for k, v in state["data"].items()}
        self._reset_cache()
