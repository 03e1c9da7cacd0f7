"""Hostile outlier sections of a profile: refused at load, or bounded and harmless."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelmon.aggregates.outliers import OutlierAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ProfileFormatError, ReferenceProfile


def _profile_json(p: int = 2) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(p)]
    profile = ReferenceProfile.from_data(rng.normal(size=(500, p)), feature_names=names)
    out: dict[str, Any] = json.loads(profile.dumps())
    return out


def test_an_indefinite_covariance_loads_regularised_and_gives_finite_distances() -> None:
    d = _profile_json()
    d["outliers"]["joint"]["covariance"] = [[1.0, 2.0], [2.0, 1.0]]  # eigenvalues 3 and -1
    profile = ReferenceProfile.loads(json.dumps(d))
    agg = OutlierAggregate.of(profile)
    x = np.random.default_rng(1).normal(size=(100, 2))
    no = np.zeros_like(x, bool)
    e = np.zeros(0)
    agg.fold(
        Batch(0.0, e, e.astype(np.int64), (), e, (), FeatureFrame(("f0", "f1"), x, no, no, {}))
    )
    assert agg.rows_checked == 100 and 0 <= agg.rows <= 100


@pytest.mark.parametrize(
    "mutate",
    [
        lambda j: j.update(features=[f"f{i}" for i in range(1001)]),
        lambda j: j.update(mean=["NaN", 0.0]),
        lambda j: j.update(covariance=[[1e400, 0.0], [0.0, 1.0]]),
        lambda j: j.update(covariance=[[0.0, 0.0], [0.0, 1.0]]),
        lambda j: j.update(alpha=0.9),
        lambda j: j.update(ratio=2.0),
        lambda j: j.update(method="isolation_forest"),
    ],
)
def test_hostile_joint_sections_are_refused(mutate: Any) -> None:
    d = _profile_json()
    mutate(d["outliers"]["joint"])
    text = json.dumps(d).replace('"NaN"', "NaN").replace("1e+400", "1e400")
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.loads(text)


def test_only_numeric_members_get_outlier_counters() -> None:
    rng = np.random.default_rng(2)
    rows = [{"c": c, "x": float(v)} for c, v in zip("ab" * 50, rng.normal(size=100), strict=True)]
    profile = ReferenceProfile.from_data(rows)
    assert profile.features["c"].kind == "categorical"
    assert [f[0] for f in OutlierAggregate.of(profile).feature_spec] == ["x"]
