"""Drift statistics are computed once per change of the data, and never shown stale when
they must not be (after an explicit fold, below min_samples, a slide, > 1% new rows)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon import fold
from modelmon._internal import folder
from modelmon.aggregates.drift import DriftAggregate, _batch
from modelmon.aggregates.stats_cache import StatsCache
from modelmon.batch import FeatureFrame
from modelmon.profile import ReferenceProfile
from tests.conftest import scrape, value

NAMES = ["a", "b", "c"]


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.from_data(rng.normal(size=(2000, 3)), feature_names=NAMES)


def _frame(x: np.ndarray) -> FeatureFrame:
    return FeatureFrame(tuple(NAMES), x, np.isnan(x), np.isnan(x), {})


def _scores_fresh(agg: DriftAggregate, now: float) -> dict[str, dict[str, float]]:
    """What a computation from scratch gives (no cache involved)."""
    views, _ = agg._compute_views(now)
    assert views is not None
    return {
        m.name: dict(s)
        for m, s in zip(agg.features.members, views[0].scores, strict=True)
        if s is not None
    }


def test_a_read_without_new_data_reuses_the_statistics() -> None:
    agg = DriftAggregate(_profile(), min_samples=50)
    agg.fold(_batch(_frame(np.random.default_rng(1).normal(size=(400, 3))), now=10.0))
    first = agg._views_at(10.0)
    assert agg._views_at(10.5) is first  # same data, same slot: not recomputed
    agg.fold(_batch(_frame(np.random.default_rng(2).normal(2.0, 1.0, size=(400, 3))), now=11.0))
    second = agg._views_at(11.0)
    assert second is not first
    assert agg.drift_scores(11.0)["features"] == _scores_fresh(agg, 11.0)


def test_stale_only_while_pending_small_and_not_after_an_explicit_fold() -> None:
    agg = DriftAggregate(_profile(), min_samples=50)
    rng = np.random.default_rng(3)
    agg.fold(_batch(_frame(rng.normal(size=(1000, 3))), now=10.0))
    first = agg._views_at(10.0)
    # A background fold of 5 rows (0.5% of the 1000 covered), a refresh pending: stale.
    agg.fold(_batch(_frame(rng.normal(3.0, 1.0, size=(5, 3))), now=10.0))
    agg.statistics_pending(1e9)
    assert agg._views_at(10.0) is first
    # An explicit fold asks for everything folded so far: computed now.
    agg.require_fresh_statistics()
    assert agg._views_at(10.0) is not first
    assert agg.drift_scores(10.0)["features"] == _scores_fresh(agg, 10.0)


def test_never_stale_past_one_percent_below_min_samples_or_after_a_slide() -> None:
    agg = DriftAggregate(_profile(), min_samples=50, window_seconds=60.0, slots=6)
    rng = np.random.default_rng(4)
    agg.fold(_batch(_frame(rng.normal(size=(1000, 3))), now=10.0))
    first = agg._views_at(10.0)
    agg.fold(_batch(_frame(rng.normal(size=(20, 3))), now=10.0))  # 2% > 1%
    agg.statistics_pending(1e9)
    assert agg._views_at(10.0) is not first
    second = agg._views_at(10.0)
    agg.fold(_batch(_frame(rng.normal(size=(1, 3))), now=25.0))  # next slot: a slide
    agg.statistics_pending(1e9)
    assert agg._views_at(25.0) is not second

    small = DriftAggregate(_profile(), min_samples=100)
    small.fold(_batch(_frame(rng.normal(size=(99, 3))), now=10.0))
    assert small.drift_scores(10.0)["features"] == {}
    small.fold(_batch(_frame(rng.normal(size=(1, 3))), now=10.0))
    small.statistics_pending(1e9)
    assert set(small.drift_scores(10.0)["features"]) == set(NAMES)  # not the stale empty one


def test_pending_mark_expires() -> None:
    cache: StatsCache[str] = StatsCache()
    assert cache.get(1, 0, 100, lambda: ("one", 10_000)) == "one"
    cache.mark_pending(-10.0)  # a refresh that should have happened long ago
    assert cache.get(2, 0, 101, lambda: ("two", 10_000)) == "two"
    cache.mark_pending(1e9)
    assert cache.get(3, 0, 102, lambda: ("three", 10_000)) == "two"


def test_the_folder_refresh_computes_what_a_scrape_would() -> None:
    mon = modelmon.Monitor("stats_cache", "1", reference=_profile(), min_samples=50)
    try:
        rng = np.random.default_rng(5)
        for row in rng.normal(1.0, 1.0, size=(600, 3)):
            mon.observe(dict(zip(NAMES, map(float, row), strict=True)), 0.5)
        fold.fold(mon, fresh=False)  # as the background folder folds
        agg = mon.drift
        assert agg is not None
        folder._refresh(mon)
        entry = agg._stats._entry
        assert entry is not None and entry[0] == agg.generation
        t = time.time()
        assert agg.drift_scores(t)["features"] == _scores_fresh(agg, t)
        assert set(agg.drift_scores(t)["features"]) == set(NAMES)
    finally:
        mon.close()


def test_the_folder_refresh_never_slides_a_window_folded_at_another_time() -> None:
    """A batch job folds at its own ``now``: a refresh at the wall clock would expire it."""
    past = 1_700_000_000.0
    mon = modelmon.Monitor("stats_cache_past", "1", reference=_profile(), min_samples=50)
    try:
        rng = np.random.default_rng(6)
        for row in rng.normal(1.0, 1.0, size=(300, 3)):
            mon.observe(dict(zip(NAMES, map(float, row), strict=True)), 0.5)
        mon.fold(past)
        folder._refresh(mon)
        assert mon.drift is not None
        assert set(mon.drift.drift_scores(past)["features"]) == set(NAMES)
    finally:
        mon.close()


def _scraped_psi(registry: CollectorRegistry, model: str) -> dict[str, float]:
    samples = scrape(registry)
    out = {}
    for name in NAMES:
        got = value(
            samples, "modelmon_feature_drift", model=model, version="1", feature=name, method="psi"
        )
        assert got is not None
        out[name] = got
    return out


def test_a_scrape_right_after_an_explicit_fold_or_outcomes_shows_every_row() -> None:
    """Stale statistics of a background refresh (99.8% of the rows) are never what a scrape
    shows after ``monitor.fold()`` or ``record_outcomes``: whatever the folder's timing."""
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "stats_cache_sync", "1", reference=_profile(), min_samples=50, registry=registry
    )
    try:

        @mon
        def predict(row: dict[str, float]) -> int:
            return int(row["a"] > 0)

        rng = np.random.default_rng(7)

        def feed(n: int, shift: float) -> list[str]:
            ids = []
            for row in rng.normal(shift, 1.0, size=(n, 3)):
                predict(dict(zip(NAMES, map(float, row), strict=True)))
                ids.append(modelmon.last_prediction_id())
            return ids

        feed(3000, 0.0)
        fold.fold(mon, fresh=False)  # as the background folder folds, then refreshes
        folder._refresh(mon)
        agg = mon.drift
        assert agg is not None
        before = _scraped_psi(registry, "stats_cache_sync")

        # A few far-shifted rows (0.17%: within the stale share), then an explicit fold.
        feed(5, 6.0)
        fold.fold(mon, fresh=False)
        agg.statistics_pending(1e9)  # a background refresh is due: stale may be served...
        mon.fold()  # ...but not after an explicit fold
        after = _scraped_psi(registry, "stats_cache_sync")
        assert after == _psi_fresh(agg)
        assert after != before  # the 5 rows moved every score: the check can fail

        ids = feed(5, 6.0)
        fold.fold(mon, fresh=False)
        agg.statistics_pending(1e9)
        assert set(mon.record_outcomes(ids, [1] * len(ids))) == {"matched"}
        latest = _scraped_psi(registry, "stats_cache_sync")
        assert latest == _psi_fresh(agg)
        assert latest != after
    finally:
        mon.close()


def _psi_fresh(agg: DriftAggregate) -> dict[str, float]:
    return {name: s["psi"] for name, s in _scores_fresh(agg, time.time()).items()}


@pytest.mark.parametrize("raw", ["1s", "-2", "nan", "inf"])
def test_a_bad_refresh_setting_is_logged_and_the_default_used(
    raw: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODELMON_DRIFT_REFRESH_S", raw)
    with caplog.at_level("WARNING", logger="modelmon"):
        assert folder._refresh_setting() == 1.0
    assert "MODELMON_DRIFT_REFRESH_S" in caplog.text and repr(raw) in caplog.text


@pytest.mark.parametrize(("raw", "value"), [("", 1.0), ("0", 0.0), (" 2.5 ", 2.5)])
def test_a_good_refresh_setting_is_taken_silently(
    raw: str, value: float, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODELMON_DRIFT_REFRESH_S", raw)
    with caplog.at_level("WARNING", logger="modelmon"):
        assert folder._refresh_setting() == value
    assert not caplog.text
