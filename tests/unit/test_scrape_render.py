"""The scrape's cheap paths give prometheus-client's bytes for every kind of value.

Counters whose values are ints go through ``str(n) + ".0"``, finite floats below 1e6
through ``repr``, everything else through ``go_float``; histograms are kept by content;
derived label sets are the same mappings scrape after scrape.
"""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generic_openmetrics

from modelmon import names
from modelmon.aggregates.series_memo import (
    SeriesMemo,
    child_labels,
    extended_labels,
    stable_labels,
)
from modelmon.exporters.exposition import TextRenderer
from modelmon.exporters.prometheus import to_prometheus
from modelmon.points import Family, HistogramPoint, ScalarPoint, scalar_points

BASE = {"model": "m", "version": "1"}
ODD_FLOATS = [
    0.0, -0.0, 1.0, -1.5, 0.1, 1e-9, 999999.0, 999999.9999, 1e6, 1234567.0, -1234567.0,
    1e16, 1e22, -1e22, 5e-324, math.inf, -math.inf, math.nan, 2.0**53, 1e308, 1e308,
]  # fmt: skip
ODD_INTS = [0, 1, -1, 999_999, 1_000_000, 1_234_567, -1_234_567, 2**53, 2**53 + 1, -(2**60)]


def _generic(families: list[Family], openmetrics: bool = False) -> str:
    registry = CollectorRegistry()

    class _All:
        def collect(self):  # type: ignore[no-untyped-def]
            return to_prometheus(families)

    registry.register(_All())  # type: ignore[arg-type]
    if openmetrics:
        text: bytes = generic_openmetrics(registry)  # type: ignore[no-untyped-call]
        return text.decode().removesuffix("# EOF\n")
    return generate_latest(registry).decode()


def _family(spec: names.MetricSpec, values: list[float] | list[int]) -> Family:
    labels = [child_labels(BASE, names.FEATURE, f"f{i}") for i in range(len(values))]
    return Family(spec, "modelmon", scalar_points(labels, values))


def test_odd_values_render_as_prometheus_client_writes_them() -> None:
    rng = np.random.default_rng(3)
    randoms = (rng.standard_normal(300) * 10.0 ** rng.integers(-8, 9, 300)).tolist()
    cases: list[list[float] | list[int]] = [
        ODD_FLOATS,
        ODD_INTS,
        [*ODD_INTS[:4], 0.5],  # ints and floats in one family
        [1, 2, math.nan],
        [-(2**53) + 1, 5, 999_999],  # the fast path's edges
        [True, 2],  # a bool is not an int to the fast path
        randoms,
        rng.integers(0, 999_999, 200).tolist(),
        [float(x) for x in rng.integers(0, 10**7, 50)],
        [],
    ]
    for openmetrics in (False, True):
        renderer = TextRenderer(openmetrics=openmetrics)
        for values in cases:
            for spec in (names.FEATURE_BIN, names.FEATURE_DRIFT):  # a counter, a gauge
                families = [_family(spec, values)]
                if values:
                    assert renderer.render(families) == _generic(families, openmetrics), values


def test_values_change_between_renders_and_the_text_follows() -> None:
    renderer = TextRenderer()
    labels = [child_labels(BASE, names.FEATURE, f"f{i}") for i in range(50)]
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 1000, 50)
    for step in range(6):
        counts = counts + rng.integers(0, 3, 50)
        values: list[float] | list[int] = counts.tolist()
        if step % 2:
            values = [float(v) * 1.5 for v in values]
        families = [Family(names.FEATURE_BIN, "modelmon", scalar_points(labels, values))]
        assert renderer.render(families) == _generic(families)


def test_histograms_kept_by_content_follow_new_counts() -> None:
    renderer = TextRenderer()
    bounds = (0.1, 1.0, 1e6)
    seen = set()
    cases = [((1, 2, 3, 0), 4.5), ((1, 2, 3, 0), 4.5), ((1, 2, 4, 1), 2e6)]
    cases += [((0, 0, 0, 0), 0.0), ((0, 0, 0, 0), -0.0)]  # equal floats, different text
    for counts, total in cases:
        # a fresh point of the same content each time (aggregates build them per scrape)
        point = HistogramPoint(dict(BASE), bounds, counts, total)
        families = [Family(names.REQUEST_DURATION, "modelmon", (point,))]
        text = renderer.render(families)
        assert text == _generic(families)
        seen.add(text)
    assert len(seen) == 4


def test_derived_label_sets_are_the_same_mappings_every_time() -> None:
    base = stable_labels({"model": "m", "version": "1"})
    assert stable_labels({"model": "m", "version": "1"}) is base
    assert stable_labels({"model": "m", "version": "2"}) is not base
    child = child_labels(base, "reason", "late")
    assert child == {"model": "m", "version": "1", "reason": "late"}
    assert child_labels(base, "reason", "late") is child
    assert child_labels(base, "reason", "early") is not child
    other = {"model": "m", "version": "1"}  # equal content, another mapping: another child
    assert child_labels(other, "reason", "late") == child
    info = extended_labels(base, (("task", "t"), ("sdk_version", "0")))
    assert info == {**base, "task": "t", "sdk_version": "0"}
    assert extended_labels(base, (("task", "t"), ("sdk_version", "0"))) is info


def test_series_memo_columns_reuse_the_tuple_only_when_nothing_changed() -> None:
    memo = SeriesMemo()
    labels = [child_labels(BASE, names.FEATURE, f"f{i}") for i in range(3)]
    first = memo.columns("k", labels, [0.1, math.nan, 0.3])
    assert memo.columns("k", labels, [0.1, math.nan, 0.3]) is first  # nan equals itself
    assert first == tuple(map(ScalarPoint, labels, [0.1, first[1].value, 0.3]))
    changed = memo.columns("k", labels, [0.1, math.nan, -0.0])
    assert changed is not first and changed[2].value == 0.0
    assert memo.columns("k", labels, [0.1, math.nan, 0.0]) is not changed  # -0.0 != 0.0
    fresh = [dict(lb) for lb in labels]  # equal mappings, not the same ones
    assert memo.columns("k", fresh, [0.1, math.nan, 0.0]) is not changed


def test_openmetrics_histograms_follow_their_exemplars() -> None:
    from modelmon.points import Exemplar

    renderer = TextRenderer(openmetrics=True)
    bounds = (0.1, 1.0)
    first = Exemplar({"prediction_id": "a"}, 0.05, 1000.0)
    texts = []
    for exemplars in [
        (first, None, None),
        (first, None, None),  # the same objects: kept
        (Exemplar({"prediction_id": "b"}, 0.07, 1001.0), None, None),  # replaced
        (first, Exemplar({"prediction_id": "c"}, 0.5, 1002.0), None),
    ]:
        point = HistogramPoint(dict(BASE), bounds, (1, 1, 0), 0.55, exemplars)
        families = [Family(names.REQUEST_DURATION, "modelmon", (point,))]
        text = renderer.render(families)
        assert text == _generic(families, openmetrics=True)
        texts.append(text)
    assert texts[0] == texts[1] and len(set(texts)) == 3
