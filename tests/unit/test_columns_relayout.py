"""Re-laying out only the columns that move gives exactly the counts of a full re-layout."""

from __future__ import annotations

import numpy as np
import pytest

from modelmon.sketches import columns
from modelmon.sketches.columns import LogSketchColumns

QS = np.linspace(0.0, 1.0, 101)


@pytest.mark.parametrize("max_buckets", [64, 256, 2048])
def test_many_columns_at_the_bucket_cap_equal_one_column_each(max_buckets: int) -> None:
    rng = np.random.default_rng(max_buckets)
    d = 60
    # Normal values reach ever closer to zero (the low end keeps growing) and new tops
    # appear in some column in almost every chunk: many partial re-layouts.
    x = rng.normal(0.0, rng.uniform(0.1, 10.0, d), size=(30_000, d))
    x[:, 7] = rng.lognormal(0.0, 3.0, 30_000)
    parts = np.array_split(x, 97)
    cols = LogSketchColumns(d, 0.01, max_buckets=max_buckets)
    for part in parts:
        cols.add(part)
    est = cols.quantiles(QS)
    for j in range(d):
        # A one-column sketch fed the same chunks always re-lays out its whole matrix.
        one = LogSketchColumns(1, 0.01, max_buckets=max_buckets)
        for part in parts:
            one.add(part[:, j : j + 1])
        assert cols.count[j] == one.count[0]
        np.testing.assert_array_equal(est[j], one.quantiles(QS)[0])
        a, b = cols.column(j), one.column(0)
        np.testing.assert_array_equal(a.quantiles(QS), b.quantiles(QS))


def test_wide_columns_re_lay_out_only_the_columns_that_move() -> None:
    """A new extreme in one of 400 columns re-lays out that column, not the matrix: the
    rows re-laid out stay a few times the width (a full re-layout per new extreme made
    the fold super-linear in features), and the span stays that of the widest column."""
    rng = np.random.default_rng(5)
    d = 400
    x = rng.normal(loc=rng.normal(size=d), size=(4096, d))
    centers = np.median(x, axis=0)
    relaid: list[int] = []
    original = columns._relayout

    def counting(counts: np.ndarray, *args: object) -> np.ndarray:
        relaid.append(counts.shape[0])
        return original(counts, *args)  # type: ignore[arg-type]

    cols = LogSketchColumns(d)
    singles = [LogSketchColumns(1) for _ in range(0, d, 40)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columns, "_relayout", counting)
        for start in range(0, x.shape[0], 64):
            cols.add(x[start : start + 64], centers)
        assert sum(relaid) <= 6 * d, relaid
    for k, one in enumerate(singles):
        j = 40 * k
        for start in range(0, x.shape[0], 64):
            one.add(x[start : start + 64, j : j + 1], centers[j : j + 1])
        np.testing.assert_array_equal(cols.quantiles(QS)[j], one.quantiles(QS)[0])
    assert cols.span <= 2 * max(one.span for one in singles)
