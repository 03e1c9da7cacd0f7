"""Series handed out again while unchanged, and the renderer's kept prefixes, never show a
stale or wrong sample: every render equals prometheus-client's, value for value."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelmon import names
from modelmon.aggregates.series_memo import SeriesMemo
from modelmon.exporters.exposition import TextRenderer
from modelmon.exporters.prometheus import to_prometheus
from modelmon.points import Family, ScalarPoint

BASE = {"model": "m", "version": "1"}
SPECIAL = [0.0, -0.0, 1.0, -2.5, 999999.0, 1e6, 1234567.0, -1234567.0, 1.7e9, 1e16, 1e22]
SPECIAL += [5e-324, math.inf, -math.inf, math.nan, 123456.789]


class _Fixed:
    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self):  # type: ignore[no-untyped-def]
        return to_prometheus(self.families)


def _generic(families: list[Family]) -> str:
    registry = CollectorRegistry()
    registry.register(_Fixed(families))
    return generate_latest(registry).decode()


def _labels(base: Mapping[str, str], n: int) -> list[dict[str, str]]:
    return [{**base, names.FEATURE: f"f{i}", names.METHOD: "psi"} for i in range(n)]


def test_kept_prefixes_render_every_value_as_prometheus_client() -> None:
    renderer = TextRenderer()
    labels = _labels(BASE, len(SPECIAL))
    rng = np.random.default_rng(0)
    for round_ in range(6):
        values = list(SPECIAL) if round_ == 0 else rng.permutation(SPECIAL).tolist()
        if round_ == 3:  # equal label sets, other mappings: the same text
            labels = _labels(BASE, len(SPECIAL))
        if round_ == 4:  # other label values under the same first mapping
            labels = [labels[0], *_labels({**BASE, "version": "2"}, len(SPECIAL) - 1)]
        if round_ == 5:  # fewer series
            labels, values = labels[:5], values[:5]
        points = tuple(map(ScalarPoint, labels, values))
        families = [
            Family(names.FEATURE_DRIFT, "modelmon", points),
            Family(names.FEATURE_BIN, "modelmon", points),  # a counter: "_total"
        ]
        assert renderer.render(families) == _generic(families), round_


def test_points_are_reused_only_while_every_value_is_the_same() -> None:
    memo = SeriesMemo()

    def make(base: Mapping[str, str]) -> list[dict[str, str]]:
        return _labels(base, 3)

    first = memo.points("k", BASE, make, np.array([1, 2, 3]))
    assert [p.value for p in first] == [1, 2, 3]
    assert all(type(p.value) is int for p in first)  # ints stay ints (OTLP as_int)
    assert memo.points("k", BASE, make, np.array([1, 2, 3])) is first
    second = memo.points("k", BASE, make, np.array([1, 2, 4]))
    assert second is not first and [p.value for p in second] == [1, 2, 4]
    assert all(a.labels is b.labels for a, b in zip(first, second, strict=True))
    # -0.0 renders differently from 0.0: not the same value.
    zero = memo.points("z", BASE, make, np.array([0.0, 1.0, 2.0]))
    assert memo.points("z", BASE, make, np.array([-0.0, 1.0, 2.0])) is not zero
    # Other base labels: other label sets.
    other = memo.points("k", {**BASE, "version": "2"}, make, np.array([1, 2, 4]))
    assert other[0].labels["version"] == "2"
    # Another number of series: label sets rebuilt.
    assert len(memo.points("k", BASE, lambda b: _labels(b, 4), np.arange(4))) == 4


def test_settle_swaps_in_the_last_tuple_only_when_equal() -> None:
    memo = SeriesMemo()
    labels = _labels(BASE, 3)
    first = memo.settle("d", tuple(map(ScalarPoint, labels, [0.1, math.nan, 0.3])))
    again = memo.settle("d", tuple(map(ScalarPoint, labels, [0.1, math.nan, 0.3])))
    assert again is first  # NaN equals itself bit for bit
    moved = tuple(map(ScalarPoint, labels, [0.1, math.nan, 0.31]))
    assert memo.settle("d", moved) is moved
    relabelled = tuple(map(ScalarPoint, _labels(BASE, 3), [0.1, math.nan, 0.31]))
    assert memo.settle("d", relabelled) is relabelled  # other mappings: not swapped
    shorter = moved[:2]
    assert memo.settle("d", shorter) is shorter


def test_segment_drift_follows_new_data_in_one_segment_and_keeps_the_other() -> None:
    import modelmon
    from modelmon import ReferenceProfile
    from modelmon.exporters.exposition import generate_text
    from tests.conftest import scrape, value

    rng = np.random.default_rng(3)
    rows = [{"country": str(c), "x": float(x)} for c, x in zip(
        rng.choice(["fr", "de"], size=3000), rng.normal(size=3000), strict=True
    )]  # fmt: skip
    profile = ReferenceProfile.from_data(rows, categorical=["country"])
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "seg", "1", reference=profile, registry=registry, segment="country",
        segments=["fr", "de"], min_samples=50,
    )  # fmt: skip
    try:

        @mon
        def predict(row: dict[str, object]) -> float:
            return float(row["x"])  # type: ignore[arg-type]

        def feed(country: str, n: int, shift: float) -> None:
            for x in rng.normal(shift, 1.0, size=n):
                predict({"country": country, "x": float(x)})

        def fast_scrape() -> dict:  # type: ignore[type-arg]
            out = {}
            for family in text_string_to_metric_families(generate_text(registry).decode()):
                for sample in family.samples:
                    out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            return out

        def psi(samples: dict, segment: str) -> float | None:  # type: ignore[type-arg]
            return value(
                samples, "modelmon_segment_feature_drift", model="seg", version="1",
                segment=segment, feature="x", method="psi",
            )  # fmt: skip

        feed("fr", 400, 0.0)
        feed("de", 400, 0.0)
        mon.fold()
        first = fast_scrape()  # a first render: the kept texts
        feed("de", 400, 2.0)
        mon.fold()
        second, generic = fast_scrape(), scrape(registry)
        assert psi(second, "fr") == psi(first, "fr")
        assert psi(second, "de") != psi(first, "de")
        assert mon.segments is not None
        expected = {
            mon.segments.segment_label(code): agg.drift_scores(time.time())["features"]["x"]
            for code, agg in mon.segments.drift.items()
        }
        for samples in (second, generic):
            assert psi(samples, "de") == expected["de"]["psi"]
            assert psi(samples, "fr") == expected["fr"]["psi"]
    finally:
        mon.close()
