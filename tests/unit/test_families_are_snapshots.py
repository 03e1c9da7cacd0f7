"""What ``Monitor.collect`` returns is a snapshot: later folds do not change it.

``collect`` folds and builds every aggregate's families while it holds the fold lock as
a reader; the text is rendered after the lock is released (by prometheus-client's
registry, the multi-process writer or the OTel bridge). A family holding a live array
or list of an aggregate would be read there while the background folder writes to it,
so a scrape could show a histogram whose buckets disagree with its count. Each test
renders a collection, folds much more traffic (shifted data, other categories,
labels fed back, errors), and renders the *same* collection again with a fresh
renderer: the two texts must be equal, and a new collection must differ.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

import modelmon
from modelmon import Monitor, ReferenceProfile
from modelmon.exporters.exposition import TextRenderer
from modelmon.points import Family

NUMERIC = [f"x{i}" for i in range(6)]


def _rows(
    rng: np.random.Generator, n: int, shift: float, colors: list[str]
) -> list[dict[str, Any]]:
    values = rng.normal(loc=shift, size=(n, len(NUMERIC)))
    return [
        {
            **dict(zip(NUMERIC, row.tolist(), strict=True)),
            "color": colors[i % len(colors)],
            "tier": ("gold", "free")[i % 2],
        }
        for i, row in enumerate(values)
    ]


def _text(families: list[Family]) -> str:
    return TextRenderer().render(families) + TextRenderer(openmetrics=True).render(families)


def _monitor(registry: CollectorRegistry) -> tuple[Monitor, Any]:
    rng = np.random.default_rng(3)
    reference = _rows(rng, 2000, 0.0, ["red", "blue"])
    profile = ReferenceProfile.from_data(
        reference,
        feature_names=[*NUMERIC, "color", "tier"],
        categorical=["color", "tier"],
        predictions=rng.uniform(size=2000),
    )
    mon = Monitor(
        "m", "1", registry=registry, reference=profile, classes=["neg", "pos"],
        segment="tier", segments=["gold", "free"], min_samples=10,
    )  # fmt: skip

    def model(rows: list[dict[str, Any]]) -> np.ndarray:
        if rows and rows[0].get("fail"):
            raise RuntimeError("model failed")
        p = np.array([1 / (1 + np.exp(-r["x0"])) for r in rows])
        return np.column_stack([1 - p, p])

    return mon, mon.wrap(model)


def _traffic(mon: Monitor, predict: Any, rng: np.random.Generator, shift: float) -> None:
    colors = ["red", "blue"] if shift == 0 else ["green", "red", "violet"]
    ids: list[str] = []
    for _ in range(40):
        predict(_rows(rng, int(rng.integers(1, 9)), shift, colors))
        ids += modelmon.last_prediction_ids()
    with contextlib.suppress(RuntimeError):
        predict([{"fail": True}])
    mon.record_outcomes(ids, ["pos" if rng.uniform() < 0.5 else "neg" for _ in ids])
    mon.fold()


def test_a_collection_does_not_change_when_more_traffic_is_folded() -> None:
    registry = CollectorRegistry()
    mon, predict = _monitor(registry)
    rng = np.random.default_rng(4)
    try:
        _traffic(mon, predict, rng, shift=0.0)
        first = mon.collect()
        before = _text(first)
        assert "modelmon_feature_drift" in before and "modelmon_outcomes_total" in before
        for shift in (1.5, 3.0):
            _traffic(mon, predict, rng, shift=shift)
        later = _text(mon.collect())
        assert later != before  # the later traffic shows in a new collection ...
        assert _text(first) == before  # ... and not in the one taken before it
    finally:
        mon.close()
