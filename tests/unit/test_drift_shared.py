"""Drift layouts and label sets are built once per profile and shared, never stale."""

from __future__ import annotations

import numpy as np

from modelmon.aggregates.drift import DriftAggregate
from modelmon.aggregates.drift_shared import KEPT_PROFILES, shared_groups
from modelmon.batch import RenderContext
from modelmon.profile import ReferenceProfile


def _profile(seed: int, features: int = 3) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(features)]
    return ReferenceProfile.from_data(
        rng.normal(size=(400, features)), feature_names=names, created_at=0.0
    )


def test_aggregates_of_one_profile_share_its_layout_and_labels() -> None:
    profile = _profile(0)
    a, b = DriftAggregate(profile), DriftAggregate(profile)
    assert a.features is b.features and a.outputs is b.outputs
    narrow = DriftAggregate(profile, max_features=2)
    assert narrow.features is not a.features and len(narrow.features.members) == 2
    ctx = RenderContext("modelmon", {"model": "m", "version": "1"}, 0.0)
    ratios_a = {f.name: f.points for f in a.families(ctx)}
    ratios_b = {f.name: f.points for f in b.families(ctx)}
    name = "modelmon_feature_reference_ratio"
    assert ratios_a[name] is ratios_b[name]  # constants: one tuple, rendered once
    other = DriftAggregate(_profile(1))  # an equal-looking profile is another layout
    assert other.features is not a.features


def test_the_table_is_bounded_and_a_dropped_layout_is_rebuilt_equal() -> None:
    profiles = [_profile(10 + i, 2) for i in range(KEPT_PROFILES + 2)]
    first = shared_groups(profiles[0], 100)
    for p in profiles[1:]:
        shared_groups(p, 100)
    again = shared_groups(profiles[0], 100)
    assert again[0] is not first[0]  # dropped (oldest first), then built again
    assert again[0].members == first[0].members and again[0].total_bins == first[0].total_bins
    assert np.array_equal(again[0].edges, first[0].edges)
