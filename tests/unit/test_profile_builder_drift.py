"""Builder profiles drive drift like ``from_data`` profiles: the same decisions.

The builder's reference sketch (``sketch_values``/``sketch_counts``) is mergeable and
partition-independent; its centre comes from the builder's quantile summary, so each
stored value is within the sketch's 1% of ``|x - centre|`` of the rows it stands for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelmon import Monitor, ReferenceProfile
from modelmon.profile_builder import ProfileBuilder, build_profile, merge_all

ACCURACY = 0.01
N_REF, N_WINDOW = 20_000, 2_000
NUMERIC = ("wide", "offset", "skewed", "count")


def draw(rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0) -> pd.DataFrame:
    """Four numeric features of different shapes and one categorical; ``shift`` moves
    ``wide`` and ``offset`` by that many standard deviations, ``scale`` stretches
    ``skewed``."""
    return pd.DataFrame(
        {
            "wide": rng.normal(0.0, 1.0, n) + shift,
            "offset": rng.normal(1000.0, 5.0, n) + 5.0 * shift,  # centred at its median
            "skewed": rng.lognormal(0.0, 1.0, n) * scale,
            "count": rng.poisson(4, n).astype(float),
            "colour": rng.choice(np.array(["red", "green", "blue"], dtype=object), n),
        }
    )


TRAIN = draw(np.random.default_rng(3), N_REF)


@pytest.fixture(scope="module")
def profiles() -> tuple[ReferenceProfile, ReferenceProfile]:
    exact = ReferenceProfile.from_data(TRAIN, created_at=0.0)
    built = build_profile(lambda: [TRAIN], created_at=0.0)
    return exact, built


def _split_profile(parts: int) -> str:
    chunks = np.array_split(np.arange(N_REF), parts)
    firsts = []
    for rows in chunks:
        b = ProfileBuilder()
        b.update(TRAIN.iloc[rows])
        firsts.append(b)
    plan = merge_all(firsts)
    seconds = []
    for rows in chunks[::-1]:
        b = plan.second_pass()
        b.update(TRAIN.iloc[rows])
        seconds.append(b)
    return merge_all(seconds).finish(created_at=0.0).fingerprint


def test_the_reference_sketch_is_filled_and_partition_independent(
    profiles: tuple[ReferenceProfile, ReferenceProfile],
) -> None:
    _, built = profiles
    assert len({_split_profile(k) for k in (1, 3, 7)}) == 1
    assert built.features["offset"].sketch_center != 0.0  # a sketch of pass 2
    assert built.features["wide"].sketch_center == 0.0  # pass 1's sketch, reused
    for name in NUMERIC:
        member = built.features[name]
        values = np.asarray(member.sketch_values)
        counts = np.asarray(member.sketch_counts)
        assert values.size > 1 and np.all(np.diff(values) > 0), name
        assert int(counts.sum()) == member.count == N_REF, name
        # Each stored value stands for its rows within 1% of |x - c'|, where the
        # sketch's centre c' came from pass 1's summary (within 2% of the median,
        # ``c`` here): so the sketch's quantile of every rank is that close to the exact.
        exact = np.sort(TRAIN[name].to_numpy())
        ranks = np.arange(0, N_REF, 97)
        sketch_q = values[np.searchsorted(np.cumsum(counts), ranks, side="right")]
        c = member.sketch_center
        bound = ACCURACY * (np.abs(exact[ranks] - c) + 2 * ACCURACY * abs(c)) + 1e-12
        assert np.all(np.abs(sketch_q - exact[ranks]) <= bound), name


def _window(profile: ReferenceProfile, frame: pd.DataFrame) -> tuple[dict[str, Any], ...]:
    monitor = Monitor("m", "1", reference=profile, registry=False, min_samples=1)
    try:
        monitor.observe(frame, np.zeros(len(frame)))
        monitor.fold(1.0)
        assert monitor.drift is not None
        decisions = monitor.drift.decisions(1.0)["features"]
        scores = monitor.drift.drift_scores(1.0)["features"]
    finally:
        monitor.close()
    return {k: d.detected for k, d in decisions.items()}, scores


CASES = [
    ("no drift", 0.0, 1.0, 101),
    ("no drift", 0.0, 1.0, 102),
    ("no drift", 0.0, 1.0, 103),
    ("shifted 0.5 sd", 0.5, 1.0, 104),
    ("shifted 0.2 sd, below the PSI floor", 0.2, 1.0, 105),
    ("skewed stretched 1.5x", 0.0, 1.5, 106),
]


@pytest.mark.parametrize(("case", "shift", "scale", "seed"), CASES)
def test_drift_decisions_equal_those_of_a_from_data_profile(
    profiles: tuple[ReferenceProfile, ReferenceProfile],
    case: str,
    shift: float,
    scale: float,
    seed: int,
) -> None:
    exact, built = profiles
    frame = draw(np.random.default_rng(seed), N_WINDOW, shift, scale)
    flags_exact, scores_exact = _window(exact, frame)
    flags_built, scores_built = _window(built, frame)
    assert flags_built == flags_exact, case
    assert set(flags_exact) == {*NUMERIC, "colour"}
    if shift >= 0.5:
        assert flags_exact["wide"] and flags_exact["offset"], flags_exact
    if scale != 1.0:
        assert flags_exact["skewed"], flags_exact
    for name, by_method in scores_exact.items():
        for method, value in by_method.items():
            other = scores_built[name][method]
            assert other == pytest.approx(value, rel=0.05, abs=0.005), (case, name, method)
