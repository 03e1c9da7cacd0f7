from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from modelmon import names
from modelmon.batch import FeatureFrame, OutputFrame
from modelmon.drift import REFERENCE_QUANTILE_PROBS
from modelmon.errors import ConfigurationError
from modelmon.profile import ProfileFormatError, ReferenceProfile


def _cancer() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target.to_numpy()


def test_numeric_feature_summary_matches_numpy() -> None:
    X, y = _cancer()
    p = ReferenceProfile.from_data(X, predictions=y, created_at=1.0)
    col = X["mean radius"].to_numpy()
    f = p.features["mean radius"]
    edges = np.unique(np.quantile(col, np.arange(1, 10) / 10, method="lower"))
    assert f.kind == "numeric" and f.edges == tuple(edges)
    counts = np.bincount(np.searchsorted(edges, col, side="left"), minlength=edges.size + 1)
    np.testing.assert_allclose(f.shares, counts / col.size)
    assert f.mean == pytest.approx(col.mean()) and f.std == pytest.approx(col.std())
    assert (f.min, f.max) == (col.min(), col.max())
    np.testing.assert_allclose(f.quantiles, np.quantile(col, REFERENCE_QUANTILE_PROBS))
    assert len(f.quantiles) >= 101
    assert p.outputs["prediction"].kind == "categorical"  # int labels
    assert p.outputs["prediction"].categories == ("1", "0", names.POOLED)


def test_bins_are_right_closed_and_consistent_with_searchsorted() -> None:
    p = ReferenceProfile.from_data(np.arange(100.0).reshape(-1, 1), bins=4)
    f = p.features["f0"]
    assert f.edges == (24.0, 49.0, 74.0)
    np.testing.assert_array_equal(f.bin_index([24.0, 24.5, 49.0, 1e9, -1e9]), [0, 1, 1, 3, 0])


def test_duplicate_edges_collapse_for_discrete_data() -> None:
    x = np.array([0.0] * 70 + [1.0] * 30)
    f = ReferenceProfile.from_data(x.reshape(-1, 1)).features["f0"]
    assert f.edges == (0.0, 1.0)
    np.testing.assert_allclose(f.shares, [0.7, 0.3, 0.0])


def test_categorical_top_categories_ties_and_pooling() -> None:
    rows = [{"c": c, "x": float(i)} for i, c in enumerate("aaabbbccd" * 10)]
    rows.append({"c": None, "x": None})
    p = ReferenceProfile.from_data(rows, max_categories=2)
    f = p.features["c"]
    assert f.kind == "categorical"
    assert f.categories == ("a", "b", names.POOLED)  # a and b tie, broken by name
    np.testing.assert_allclose(f.shares, [0.3333333333, 0.3333333333, 0.3333333333])
    assert f.missing_share == pytest.approx(1 / 91)
    idx = f.bin_index(np.array(["a", "b", "c", "zzz", None], dtype=object))
    np.testing.assert_array_equal(idx, [0, 1, 2, 2, -1])
    assert p.features["x"].kind == "numeric"
    assert p.features["x"].missing_share == pytest.approx(1 / 91)


def test_booleans_and_named_categoricals() -> None:
    df = pd.DataFrame(
        {"flag": [True, False, True, True], "code": [1, 2, 2, 3], "v": [0.1, 0.2, 0.3, 0.4]}
    )
    p = ReferenceProfile.from_data(df, categorical=["code"])
    assert p.features["flag"].categories == ("True", "False", names.POOLED)
    assert p.features["code"].categories == ("2", "1", "3", names.POOLED)
    with pytest.raises(ConfigurationError):
        ReferenceProfile.from_data(df, categorical=["nope"])


def test_numpy_pandas_and_dicts_agree() -> None:
    X, _ = _cancer()
    cols = list(X.columns[:4])
    a = ReferenceProfile.from_data(X[cols], created_at=0.0)
    b = ReferenceProfile.from_data(X[cols].to_numpy(), feature_names=cols, created_at=0.0)
    c = ReferenceProfile.from_data(X[cols].to_dict("records"), created_at=0.0)
    assert a.dumps() == b.dumps() == c.dumps()


def test_outputs_numeric_probabilities_and_confidence() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    reg = ReferenceProfile.from_data(
        X, predictions=rng.normal(size=500), confidence=rng.random(500)
    )
    assert reg.outputs["prediction"].kind == "numeric"
    assert reg.outputs["confidence"].kind == "numeric"
    proba = rng.dirichlet([1, 1, 1], size=500)
    clf = ReferenceProfile.from_data(X, predictions=proba, classes=["x", "y", "z"])
    assert set(clf.outputs) == {"prediction", "confidence", "x", "y", "z"}
    assert clf.outputs["prediction"].kind == "categorical"
    labels = ReferenceProfile.from_data(X, predictions=np.array(["a", "b"] * 250))
    assert labels.outputs["prediction"].categories == ("a", "b", names.POOLED)


def test_save_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    X, y = _cancer()
    p1 = ReferenceProfile.from_data(X, predictions=y, created_at=1700000000.5)
    p2 = ReferenceProfile.from_data(X, predictions=y, created_at=1700000000.5)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    p1.save(a)
    p2.save(b)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert text.endswith("}\n") and '\n  "created_at"' in text
    loaded = ReferenceProfile.load(a)
    assert loaded == p1
    loaded.save(b)
    assert a.read_bytes() == b.read_bytes()
    assert list(loaded.features) == list(X.columns)


def test_load_refuses_unknown_version_and_bad_files(tmp_path: Path) -> None:
    p = ReferenceProfile.from_data(np.arange(20.0).reshape(-1, 2), created_at=0.0)
    d = p.to_json()
    d["format_version"] = 99
    path = tmp_path / "v99.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ProfileFormatError, match="format_version 99"):
        ReferenceProfile.load(path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileFormatError, match="invalid JSON"):
        ReferenceProfile.load(bad)
    with pytest.raises(ProfileFormatError, match="cannot read"):
        ReferenceProfile.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ValueError, match="invalid reference profile"):
        ReferenceProfile.load(broken)


def test_from_frame_matches_from_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    x[::10, 0] = np.nan
    cats = np.array(["u", "v", None] * 100, dtype=object)
    frame = FeatureFrame(
        ("a", "b", "c"),
        np.column_stack([x, np.full(300, np.nan)]),
        np.column_stack([np.isnan(x), cats == None]),  # noqa: E711
        np.zeros((300, 3), dtype=bool),
        {2: cats},
    )
    out = OutputFrame(300, values=rng.normal(size=300))
    p = ReferenceProfile.from_frame(frame, out, created_at=0.0)
    q = ReferenceProfile.from_data(
        [{"a": x[i, 0], "b": x[i, 1], "c": cats[i]} for i in range(300)],
        predictions=out.values,
        created_at=0.0,
    )
    assert p.dumps() == q.dumps()
