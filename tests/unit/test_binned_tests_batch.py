"""The drift tests of many members at once equal the one-member test, pooling included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelmon.drift_decision import BinnedTest, binned_test, binned_tests


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    cells = int(rng.integers(1, 14))
    shares = rng.dirichlet(np.full(cells, float(rng.choice([0.2, 1.0, 5.0]))))
    kind = rng.integers(0, 6)
    if kind == 0:
        shares[rng.integers(0, cells)] = 0.0  # a category the reference never saw
    n = int(rng.choice([0, 3, 20, 200, 5000]))
    counts = rng.multinomial(n, rng.dirichlet(np.ones(cells))) if n else np.zeros(cells, int)
    if kind == 1:
        shares = np.zeros(cells)  # no reference share at all
    ref_rows = float(rng.choice([0.0, 50.0, 1000.0, 1e6])) if kind == 2 else 1000.0
    return counts, shares, ref_rows


def _same(a: BinnedTest, b: BinnedTest) -> None:
    assert (a.df, a.cells) == (b.df, b.cells)
    for x, y in ((a.statistic, b.statistic), (a.z, b.z), (a.pvalue, b.pvalue), (a.psi, b.psi)):
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_binned_tests_equal_binned_test_member_by_member(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [_case(rng) for _ in range(300)]
    got = binned_tests([c for c, _, _ in cases], [s for _, s, _ in cases], [n for *_, n in cases])
    kinds = set()
    for (counts, shares, ref_rows), test in zip(cases, got, strict=True):
        want = binned_test(counts, shares, ref_rows)
        _same(test, want)
        kinds.add((want.df >= 1, want.cells))
    assert len(kinds) > 10  # pooled and unpooled, testable and not


def test_binned_tests_of_no_member() -> None:
    assert binned_tests([], [], []) == []
