"""The drift fold's result does not depend on how its values are cut into chunks.

The chunk size (``modelmon.sketches.columns._CHUNK``) is a speed setting only, and the
temporaries live in reused arrays (``modelmon.sketches.scratch``): every exported
series, score, decision and count must stay what it was, bit for bit, whatever the
chunk size and whether the arrays are fresh or reused (left dirty by another fold).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelmon.aggregates.drift import DriftAggregate
from modelmon.aggregates.drift_layout import _numeric_bins
from modelmon.batch import Batch, FeatureFrame, RenderContext
from modelmon.points import ScalarPoint
from modelmon.profile import ReferenceProfile
from modelmon.sketches import columns
from modelmon.sketches.scratch import MAX_VALUES, Scratch, borrowed

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


def test_chunk_rows() -> None:
    assert columns.chunk_rows(20) == MAX_VALUES // 20  # a 4,096-row part in one chunk
    assert columns.chunk_rows(500) == 262
    assert columns.chunk_rows(5000) == 64  # wide matrices keep whole chunks of rows


def test_dirty_scratch_arrays_give_what_fresh_arrays_give() -> None:
    """The reused arrays hold the last fold's values: nothing may read them first."""
    profile = _profile()
    x = _data(profile, 7, 3000)
    x[np.isinf(x)] = np.nan  # the bins count finite values (see _numeric_bins)
    cols = np.ascontiguousarray(x.T)
    shifts = np.array([profile.features[f"f{j}"].sketch_center for j in range(WIDTH)])
    edges = np.full((9, WIDTH), np.inf)
    for j in range(WIDTH):
        e = np.asarray(profile.features[f"f{j}"].edges, dtype=np.float64)
        edges[: e.size, j] = e
    valid = np.isfinite(x).sum(axis=0)
    dirty = Scratch()
    garbage = (
        ("cells", np.intp, 5),
        ("diff", np.float64, np.nan),
        ("keys", np.float64, -3.0),
        ("bins", np.uint8, 7),
        ("above", np.bool_, True),
        ("bin_index", np.intp, 2),
    )
    for name, dtype, value in garbage:
        dirty.get(name, (MAX_VALUES,), dtype).fill(value)
    fresh_sketch, dirty_sketch = columns.LogSketchColumns(WIDTH), columns.LogSketchColumns(WIDTH)
    for _ in range(2):  # the second time, the arrays hold the first pass's values
        fresh_sketch.add_columns(cols, shifts)
        dirty_sketch.add_columns(cols, shifts, dirty)
        np.testing.assert_array_equal(
            _numeric_bins(cols, edges, valid), _numeric_bins(cols, edges, valid, dirty)
        )
    assert (fresh_sketch.span, fresh_sketch.lo.tolist()) == (
        dirty_sketch.span,
        dirty_sketch.lo.tolist(),
    )
    np.testing.assert_array_equal(fresh_sketch.counts, dirty_sketch.counts)
    want = [
        np.bincount(np.searchsorted(edges[:, j], x[:, j][np.isfinite(x[:, j])]), minlength=10)
        for j in range(WIDTH)
    ]
    np.testing.assert_array_equal(_numeric_bins(cols, edges, valid, dirty), np.array(want))


def test_a_scratch_is_lent_to_one_fold_at_a_time() -> None:
    with borrowed() as a, borrowed() as b:
        assert a is not b
        assert a.get("x", (3, 4), np.float64).shape == (3, 4)
        big = a.get("x", (MAX_VALUES + 1,), np.float64)  # past the cap: a plain array
        assert big.base is None and a.get("x", (2,), np.float64).base is not big
