"""The drift fold's result does not depend on how its values are cut into chunks.

The chunk size (``modelmon.sketches.columns._CHUNK``) is a speed setting only: keeping
each temporary under malloc's mmap threshold changed it, and every exported series,
score, decision and count must stay what it was, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame, RenderContext
from modelmon.points import ScalarPoint
from modelmon.profile import ReferenceProfile
from modelmon.sketches import columns

WIDTH = 7


def _frame(x: np.ndarray) -> FeatureFrame:
    missing = np.isnan(x)
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    return FeatureFrame(names, x, missing, np.zeros_like(missing), {})


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(11)
    x = rng.standard_t(3, size=(4000, WIDTH)) * [1.0, 1e4, 1e-4, 1.0, 1.0, 1.0, 3.0]
    x[:, 3] = np.round(x[:, 3])  # ties: whole numbers, edges on them
    rows = [{f"f{j}": float(r[j]) for j in range(WIDTH)} for r in x]
    return ReferenceProfile.from_data(rows, created_at=0.0)


def _data(profile: ReferenceProfile, seed: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=(rows, WIDTH)) * [1.2, 1e4, 1e-4, 1.0, 1.0, 1.0, 1e3]
    x[:, 3] = np.round(x[:, 3])
    x[rng.random(x.shape) < 0.03] = np.nan
    x[rng.integers(0, rows, 4), 4] = np.inf
    x[rng.integers(0, rows, 4), 4] = -np.inf
    x[rng.integers(0, rows, 40), 5] = 0.0
    for j in range(WIDTH):  # values exactly on the reference's bin edges
        edges = np.asarray(profile.features[f"f{j}"].edges, dtype=np.float64)
        if edges.size:
            x[rng.integers(0, rows, 30), j] = rng.choice(edges, 30)
    return x


def _fold_all(profile: ReferenceProfile, parts: list[np.ndarray]) -> DriftAggregate:
    agg = DriftAggregate(profile, min_samples=50)
    empty = np.zeros(0)
    for i, x in enumerate(parts):
        # +inf and -inf in one chunk: Extremes' finite check sums them to NaN, warning
        # (an existing behaviour this test does not judge).
        with np.errstate(invalid="ignore"):
            agg.fold(Batch(1.0 + i, empty, np.zeros(0, np.int64), (), empty, (), _frame(x)))
    return agg


def _exported(
    agg: DriftAggregate, now: float
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    ctx = RenderContext("modelmon", {"model": "m", "version": "1"}, now)
    out = {}
    for fam in agg.families(ctx):
        for p in fam.points:
            if isinstance(p, ScalarPoint):
                out[(fam.name, tuple(sorted(p.labels.items())))] = p.value
    return out


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("seed", [0, 1])
def test_the_drift_fold_is_the_same_whatever_the_chunk_size(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = _profile()
    parts = [_data(profile, seed * 10 + i, rows) for i, rows in enumerate((5000, 37, 9000, 1))]
    parts[2] *= 30.0  # new extremes: the layout grows between and within folds
    results = []
    for chunk, min_rows in ((1 << 15, 1), (16_000, 64), (97, 1), (500, 64)):
        monkeypatch.setattr(columns, "_CHUNK", chunk)
        monkeypatch.setattr(columns, "_MIN_CHUNK_ROWS", min_rows)
        agg = _fold_all(profile, parts)
        results.append((_exported(agg, 10.0), agg.decisions(10.0), agg.drift_scores(10.0)))
    first, decisions, scores = results[0]
    assert len(first) > 100 and scores["features"]  # something was exported and scored
    for got, got_decisions, got_scores in results[1:]:
        assert got.keys() == first.keys()
        assert all(_same(got[k], first[k]) for k in first), [
            (k, first[k], got[k]) for k in first if not _same(got[k], first[k])
        ][:5]
        assert got_scores == scores
        assert repr(got_decisions) == repr(decisions)


def test_chunk_rows_keeps_temporaries_under_the_mmap_threshold() -> None:
    for width in (1, 3, 20, 100, 250):
        assert columns.chunk_rows(width) * width * 8 < 128 * 1024
    assert columns.chunk_rows(500) == 64  # wide matrices keep whole chunks of rows
