"""LogSketchColumns against LogSketch, and the vectorised drift scores against drift.*."""

from __future__ import annotations

import numpy as np
import pytest

from modelmon.drift import (
    REFERENCE_QUANTILE_PROBS,
    BinnedReference,
    QuantileReference,
    binned_scores,
    chi2,
    js_distance,
    ks_columns,
    psi,
    wasserstein_columns,
)
from modelmon.sketches.columns import LogSketchColumns
from modelmon.sketches.ddsketch import LogSketch

from ._drift_oracle import ks_statistic, wasserstein_normed
from ._sketch_values import quantile_property

QS = np.linspace(0.0, 1.0, 101)


def _data(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.column_stack(
        [
            rng.normal(3.0, 2.0, n),
            rng.lognormal(0.0, 2.0, n),
            -rng.pareto(1.2, n) - 1e-3,
            rng.poisson(4, n).astype(float),
        ]
    )
    x[::9, 1] = np.nan
    x[::13, 2] = np.inf
    return x


def test_columns_equal_one_log_sketch_per_column() -> None:
    rng = np.random.default_rng(0)
    x = _data(rng, 20_000)
    shifts = np.array([3.0, 0.0, -2.0, 4.0])
    cols = LogSketchColumns(4)
    for part in np.array_split(x, 9):  # layouts grow between parts
        cols.add(part, shifts)
    est = cols.quantiles(QS)
    for j in range(4):
        one = LogSketch()
        one.add(x[:, j] - shifts[j])
        assert cols.count[j] == one.count
        np.testing.assert_array_equal(est[j], one.quantiles(QS))
        np.testing.assert_array_equal(cols.column(j).quantiles(QS), one.quantiles(QS))


def test_values_at_equals_the_full_value_grid() -> None:
    rng = np.random.default_rng(5)
    cols = LogSketchColumns(4)
    assert cols.values_at(np.array([[0], [2]]), np.array([[0]])).tolist() == [[0.0], [0.0]]
    x = _data(rng, 5_000)
    x[::7, 3] = 0.0  # the zero cell
    cols.add(x, np.array([3.0, 0.0, -2.0, 4.0]))
    grid = cols.values()
    cells = np.arange(grid.shape[1])
    for rows in (np.arange(4), np.array([3, 1])):
        np.testing.assert_array_equal(cols.values_at(rows[:, None], cells[None, :]), grid[rows])


def test_merge_and_state_equal_one_sketch_of_everything() -> None:
    rng = np.random.default_rng(1)
    x, y = _data(rng, 5000), _data(rng, 7000) * 50.0
    a, b, whole = LogSketchColumns(4), LogSketchColumns(4), LogSketchColumns(4)
    a.add(x)
    b.add(y)
    whole.add(x)
    whole.add(y)
    a.merge(b)
    np.testing.assert_array_equal(a.quantiles(QS), whole.quantiles(QS))
    np.testing.assert_array_equal(a.count, whole.count)
    back = LogSketchColumns.from_state(a.state())
    np.testing.assert_array_equal(back.quantiles(QS), whole.quantiles(QS))
    legacy = LogSketchColumns.from_sketches([whole.column(j) for j in range(4)])
    np.testing.assert_array_equal(legacy.quantiles(QS), whole.quantiles(QS))
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(LogSketchColumns(3))


def test_collapse_keeps_high_quantiles_accurate() -> None:
    x = np.concatenate([np.full(100, 1e-30), np.geomspace(1.0, 1e6, 10_000)]).reshape(-1, 1)
    s = LogSketchColumns(1, 0.01, max_buckets=1024)  # spans 2**16 (see test_ddsketch)
    s.add(x)
    assert s.count[0] == x.size
    hi = np.quantile(x[:, 0], [0.5, 0.9, 1.0], method="lower")
    np.testing.assert_allclose(s.quantiles([0.5, 0.9, 1.0])[0], hi, rtol=0.0101)


@quantile_property
def test_property_quantile_within_relative_accuracy(values: list[float], q: float) -> None:
    x = np.asarray(values)
    s = LogSketchColumns(2)
    s.add(np.column_stack([x, -x]))
    for j, col in enumerate((x, -x)):
        exact = float(np.quantile(col, q, method="lower"))
        assert abs(s.quantiles([q])[j, 0] - exact) <= 0.01 * (1 + 1e-9) * abs(exact) + 1e-300


def test_ks_and_wasserstein_columns_equal_the_one_sketch_functions() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(20_000, 5)) * [1.0, 5.0, 0.01, 100.0, 1.0] + [0, 50, 0, 1e3, 0]
    cur = rng.normal(0.3, 1.2, size=(6000, 5)) * [1.0, 5.0, 0.01, 100.0, 1.0] + [0, 50, 0, 1e3, 0]
    cur[:, 4] = np.round(cur[:, 4])  # discrete values, exact zeros after the shift
    q = np.quantile(ref, REFERENCE_QUANTILE_PROBS, axis=0).T
    centers = np.array([np.interp(0.5, REFERENCE_QUANTILE_PROBS, q[j]) for j in range(5)])
    centers[4] = 0.0
    cols = LogSketchColumns(5)
    for part in np.array_split(cur, 4):
        cols.add(part, centers)
    reference = QuantileReference.of(q, ref.std(axis=0), centers)
    rows = np.arange(5)
    bounds = (cur.min(axis=0) - centers, cur.max(axis=0) - centers)
    ks = ks_columns(reference, cols, rows)
    w = wasserstein_columns(reference, cols, rows, bounds)
    for j in range(5):
        one = LogSketch()
        one.add(cur[:, j] - centers[j])
        assert ks[j] == pytest.approx(ks_statistic(q[j], one, shift=centers[j]), abs=1e-12)
        want = wasserstein_normed(
            q[j], ref[:, j].std(), one, shift=centers[j], bounds=(cur[:, j].min(), cur[:, j].max())
        )
        assert w[j] == pytest.approx(want, rel=1e-9)


def test_binned_scores_equal_the_one_row_functions() -> None:
    rng = np.random.default_rng(3)
    shares = [rng.dirichlet(np.ones(k)) for k in (3, 10, 7)]
    shares[2][1] = 0.0
    counts = np.zeros((3, 10), dtype=np.int64)
    for i, s in enumerate(shares):
        counts[i, : len(s)] = rng.integers(0, 50, len(s))
    got_psi, got_js, got_chi = binned_scores(BinnedReference.of(shares), counts)
    for i, s in enumerate(shares):
        c = counts[i, : len(s)]
        assert got_psi[i] == pytest.approx(psi(s, c), abs=1e-12)
        assert got_js[i] == pytest.approx(js_distance(s, c), abs=1e-12)
        assert got_chi[i] == pytest.approx(chi2(s, c), rel=1e-12)
