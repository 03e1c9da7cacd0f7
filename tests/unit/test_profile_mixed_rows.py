"""Reference rows that mix numbers and strings keep their numeric columns numeric."""

from __future__ import annotations

import numpy as np

from modelmon import ReferenceProfile


def test_numbers_beside_a_string_column_stay_numeric() -> None:
    rng = np.random.default_rng(4)
    rows = [[float(a), int(b), str(c)] for a, b, c in zip(
        rng.normal(size=500), rng.integers(0, 1000, 500), rng.choice(["n", "s"], 500),
        strict=True)]  # fmt: skip
    ref = ReferenceProfile.from_data(rows, feature_names=["a", "b", "site"], categorical=["site"])
    kinds = {name: f.kind for name, f in ref.features.items()}
    # numpy turns such rows into one string array: every column used to be categorical.
    assert kinds == {"a": "numeric", "b": "numeric", "site": "categorical"}
    assert sorted(c for c in ref.features["site"].categories if c != "__other__") == ["n", "s"]
    same = ReferenceProfile.from_data(
        [{"a": r[0], "b": r[1], "site": r[2]} for r in rows], categorical=["site"]
    )
    assert {n: f.kind for n, f in same.features.items()} == kinds
