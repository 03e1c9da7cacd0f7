from __future__ import annotations

import numpy as np
import pytest

from modelmon.errors import ConfigurationError
from modelmon.sketches.moments import Moments
from modelmon.sketches.window import SlidingWindow


def _window() -> SlidingWindow[Moments]:
    return SlidingWindow(Moments, Moments.from_state, window_seconds=900.0, slots=15)


def test_slots_are_keyed_by_absolute_index() -> None:
    w = _window()
    assert w.slot_seconds == 60.0
    w.current(119.0).add(np.array([1.0]))
    w.current(120.0).add(np.array([2.0]))
    assert sorted(w.slots) == [1, 2]


def test_window_expiry() -> None:
    w = _window()
    w.current(0.0).add(np.array([1.0, 2.0]))
    w.current(600.0).add(np.array([3.0]))
    merged = w.merged(600.0)
    assert merged is not None and merged.count == 3
    merged = w.merged(900.0)  # slot 0 is now outside (slots 1..15)
    assert merged is not None and merged.count == 1
    assert w.merged(10_000.0) is None
    assert w.slots == {}


def test_merge_is_slot_wise() -> None:
    a, b = _window(), _window()
    a.current(60.0).add(np.array([1.0]))
    b.current(60.0).add(np.array([2.0]))
    b.current(180.0).add(np.array([3.0]))
    a.merge(b)
    assert a.slots[1].count == 2 and a.slots[3].count == 1
    merged = a.merged(200.0)
    assert merged is not None and merged.mean == pytest.approx(2.0)


def test_state_round_trip() -> None:
    a = _window()
    a.current(60.0).add(np.array([1.0, 5.0]))
    b = _window()
    b.load_state(a.state())
    merged = b.merged(60.0)
    assert merged is not None and merged.max == 5.0


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        SlidingWindow(Moments, Moments.from_state, window_seconds=0.0)
    with pytest.raises(ValueError):
        _window().merge(SlidingWindow(Moments, Moments.from_state, 900.0, 10))
