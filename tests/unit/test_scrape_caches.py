"""Every cache of the scrape path is keyed so that a change shows in the next scrape.

The text renderer keeps a family's block by the identity of its point tuple or columns
(and the spec it was rendered under), each metric spec's name and header by the spec's identity
and namespace, and a run of label sets' ``%`` templates by the run; the drift labels
keep the points of the last window view they read. Each test here changes one thing a
cache is keyed on (or must not be fooled by) and compares with prometheus-client.
"""

from __future__ import annotations

import gc
import math
from dataclasses import replace

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generic_openmetrics

from modelmon import names
from modelmon.aggregates.drift import DriftAggregate
from modelmon.aggregates.series_memo import SeriesMemo, child_labels, stable_labels
from modelmon.batch import FeatureFrame, RenderContext
from modelmon.exporters.exposition import TextRenderer
from modelmon.exporters.prometheus import to_prometheus
from modelmon.points import (
    NO_COLUMNS,
    ColumnFamily,
    Family,
    ScalarColumns,
    ScalarPoint,
    scalar_points,
)
from modelmon.profile import ReferenceProfile

BASE = {"model": "m", "version": "1"}


def _generic(families: list[Family], openmetrics: bool = False) -> str:
    registry = CollectorRegistry()

    class _All:
        def collect(self):  # type: ignore[no-untyped-def]
            return to_prometheus(families)

    registry.register(_All())
    if openmetrics:
        text: bytes = generic_openmetrics(registry)  # type: ignore[no-untyped-call]
        return text.decode().removesuffix("# EOF\n")
    return generate_latest(registry).decode()


def _labels(n: int, key: str = names.FEATURE) -> list[dict[str, str]]:
    return [dict(child_labels(BASE, key, f"f{i}")) for i in range(n)]


def test_a_percent_sign_in_a_label_renders_as_itself() -> None:
    # Values go through a "%" template made of the label texts: a "%" there is escaped.
    labels = [{**BASE, names.FEATURE: name} for name in ("100%", "%d", "%r%%", "a%(b)s")]
    for openmetrics in (False, True):
        renderer = TextRenderer(openmetrics=openmetrics)
        for values in ([1, 2, 3, 4], [0.5, 1.5, 2.5, 3.5], [1, 2, 3, 4]):
            families = [Family(names.FEATURE_BIN, "modelmon", scalar_points(labels, values))]
            assert renderer.render(families) == _generic(families, openmetrics)


def test_a_run_whose_later_label_sets_change_gets_new_prefixes() -> None:
    # Same length, same first mapping: the run's key; a later mapping differs.
    renderer = TextRenderer()
    first = _labels(5)
    second = [first[0], *_labels(4, names.OUTPUT)]
    for labels in (first, second, first, second):
        families = [Family(names.FEATURE_BIN, "modelmon", scalar_points(labels, [1, 2, 3, 4, 5]))]
        assert renderer.render(families) == _generic(families)


def test_a_mapping_equal_in_content_but_new_is_rendered_from_its_content() -> None:
    renderer = TextRenderer()
    labels = _labels(3)
    renderer.render([Family(names.FEATURE_BIN, "modelmon", scalar_points(labels, [1, 2, 3]))])
    changed = [dict(lb) for lb in labels]
    changed[2][names.FEATURE] = "renamed"
    families = [Family(names.FEATURE_BIN, "modelmon", scalar_points(changed, [1, 2, 3]))]
    text = renderer.render(families)
    assert text == _generic(families) and 'feature="renamed"' in text


def test_one_point_tuple_under_two_names_is_rendered_under_each() -> None:
    # The block cache is keyed by the tuple's identity: the spec must be part of it.
    points = scalar_points(_labels(3), [1, 2, 3])
    for openmetrics in (False, True):
        renderer = TextRenderer(openmetrics=openmetrics)
        for _ in range(3):
            families = [
                Family(names.FEATURE_BIN, "modelmon", points),
                Family(names.PREDICTION_BIN, "modelmon", points),
                Family(names.FEATURE_BIN, "other", points),
            ]
            assert renderer.render(families) == _generic(families, openmetrics)


def test_namespaces_alternating_keep_their_own_names_and_headers() -> None:
    renderer = TextRenderer()
    labels = stable_labels(BASE)
    for namespace in ("a", "b", "a", "modelmon", "b"):
        families = [Family(names.REQUESTS, namespace, (ScalarPoint(labels, 3),))]
        text = renderer.render(families)
        assert text == _generic(families)
        assert text.startswith(f"# HELP {namespace}_requests_total ")


def test_specs_made_anew_at_each_render_get_their_own_names() -> None:
    # Specs built on the fly and freed: the renderer keys them by id, so it must keep
    # each one it has seen (or check identity) for a new spec never to take a dead one's.
    renderer = TextRenderer()
    labels = stable_labels(BASE)
    for i in range(40):
        spec = replace(names.REQUESTS, name=f"made_{i}", help=f"Made {i}.")
        kind_spec = spec if i % 2 else replace(spec, kind="gauge")
        families = [Family(kind_spec, "modelmon", (ScalarPoint(labels, float(i)),))]
        assert renderer.render(families) == _generic(families)
        del spec, kind_spec, families
        gc.collect()


def test_a_block_follows_its_values_when_the_tuple_is_new() -> None:
    renderer = TextRenderer()
    labels = _labels(4)
    cases: list[list[float] | list[int]] = [
        [1, 2, 3, 4],
        [1, 2, 3, 4],  # a new tuple, equal values
        [1, 2, 3, 5],  # one value changed
        [1.0, 2.0, 3.0, 5.0],  # ints become floats: "%r" template, not "%d.0"
        [1.0, 2.0, math.inf, 5.0],  # not finite: go_float one by one
        [1.0, 2.0, 3.0, 2e6],  # Go's exponent form
        [1, 2, 3, 4],
    ]
    texts = []
    for values in cases:
        families = [Family(names.FEATURE_DRIFT, "modelmon", scalar_points(labels, values))]
        text = renderer.render(families)
        assert text == _generic(families), values
        texts.append(text)
    assert texts[0] == texts[1] == texts[-1] and texts[2] == texts[3]  # 5 and 5.0: "5.0"
    assert len(set(texts)) == 4


def _drift_with_window() -> tuple[DriftAggregate, RenderContext]:
    rng = np.random.default_rng(4)
    ref = ReferenceProfile.from_data(rng.normal(size=(1000, 3)), feature_names=["a", "b", "c"])
    agg = DriftAggregate(ref, min_samples=10)
    return agg, RenderContext("modelmon", stable_labels(BASE), 100.0)


def _fold(agg: DriftAggregate, rng: np.random.Generator, shift: float, now: float) -> None:
    from modelmon.aggregates.drift import _batch

    x = rng.normal(shift, 1.0, size=(200, 3))
    frame = FeatureFrame(("a", "b", "c"), x, np.isnan(x), np.isnan(x), {})
    agg.fold(_batch(frame, now=now))


def _drift_values(families: list[Family]) -> dict[str, list[float]]:
    specs = (names.FEATURE_DRIFT, names.FEATURE_DRIFT_PVALUE, names.FEATURE_QUANTILE)
    wanted = {spec.name for spec in specs}
    return {
        f.spec.name: [p.value for p in f.points]  # type: ignore[union-attr]
        for f in families
        if f.spec.name in wanted
    }


def test_drift_points_follow_each_new_view_and_are_kept_for_the_same_one() -> None:
    agg, ctx = _drift_with_window()
    rng = np.random.default_rng(5)
    _fold(agg, rng, 0.0, 100.0)
    first = list(agg.families(ctx))
    again = list(agg.families(ctx))  # nothing folded: the same view, the same tuples
    assert [f.points for f in first] == [f.points for f in again]
    assert all(a.points is b.points for a, b in zip(first, again, strict=True))
    _fold(agg, rng, 2.0, 100.0)  # a shifted batch: a new view with other scores
    moved = list(agg.families(ctx))
    before, after = _drift_values(first), _drift_values(moved)
    for name in before:
        assert after[name] != before[name], name
    assert after == _drift_values(list(agg.families(ctx)))
    registry_text = TextRenderer().render(moved)
    assert registry_text == _generic(moved)


def test_column_families_render_as_their_points_would() -> None:
    labels = tuple(_labels(5))
    cases: list[tuple[float, ...]] = [
        (1, 2, 3, 4, 5),
        (0.5, -0.0, 1e-9, 999999.5, 3.0),
        (1.0, math.nan, math.inf, -math.inf, 2e6),
        (1, 2.5, 3, 4, 5),  # ints and floats mixed
    ]
    for openmetrics in (False, True):
        renderer = TextRenderer(openmetrics=openmetrics)
        for values in cases:
            columns = ScalarColumns(labels, values)
            families: list[Family] = [
                ColumnFamily(names.FEATURE_BIN, "modelmon", columns),
                ColumnFamily(names.FEATURE_DRIFT, "modelmon", columns),  # same columns
                ColumnFamily(names.FEATURE_DRIFT, "modelmon", NO_COLUMNS),
            ]
            as_points = [Family(f.spec, f.namespace, f.points) for f in families]
            text = renderer.render(families)
            assert text == renderer.render(as_points) == _generic(as_points, openmetrics)
            assert _generic(families, openmetrics) == text  # other readers get the points


def test_columns_build_their_points_once_and_only_when_read() -> None:
    labels = tuple(_labels(3))
    columns = ScalarColumns(labels, (1, 2.5, 3))
    assert columns._points is None  # nothing built for a render
    TextRenderer().render([ColumnFamily(names.FEATURE_BIN, "modelmon", columns)])
    assert columns._points is None
    family = ColumnFamily(names.FEATURE_BIN, "modelmon", columns)
    points = family.points
    assert points == tuple(map(ScalarPoint, labels, (1, 2.5, 3)))
    assert family.points is points is columns.points
    assert ColumnFamily(names.FEATURE_BIN, "modelmon", columns).points is points


def test_memo_columns_are_the_same_object_only_while_nothing_changed() -> None:
    memo = SeriesMemo()
    labels = _labels(3)
    first = memo.scalar_columns("k", labels, [0.1, math.nan, 0.0])
    assert memo.scalar_columns("k", labels, [0.1, math.nan, 0.0]) is first
    assert memo.scalar_columns("other", labels, [0.1, math.nan, 0.0]) is not first
    changed = memo.scalar_columns("k", labels, [0.1, math.nan, -0.0])  # -0.0 renders apart
    assert changed is not first and math.copysign(1.0, changed.values[2]) < 0
    renamed = [*labels[:2], dict(labels[2])]  # equal content, another mapping
    assert memo.scalar_columns("k", renamed, [0.1, math.nan, -0.0]) is not changed
    points = memo.columns("c", labels, [1.0, 2.0, 3.0])  # the same, as points
    assert points is memo.columns("c", labels, [1.0, 2.0, 3.0])
    assert points == tuple(map(ScalarPoint, labels, [1.0, 2.0, 3.0]))


def test_a_scrape_shows_each_fold_of_the_drift_bins() -> None:
    agg, ctx = _drift_with_window()
    rng = np.random.default_rng(6)
    renderer = TextRenderer()
    seen = []
    for step in range(4):
        _fold(agg, rng, 0.5 * step, 100.0 + step)
        families = list(agg.families(ctx))
        bins = [f for f in families if f.spec is names.FEATURE_BIN]
        assert len(bins) == 1 and isinstance(bins[0], ColumnFamily)
        text = renderer.render(families)
        assert text == _generic(families)
        seen.append(sum(bins[0].columns.values))
    assert seen == [600 * (step + 1) for step in range(4)]  # 200 rows x 3 features a fold


def test_histogram_templates_follow_counts_sums_and_odd_labels() -> None:
    from modelmon.points import HistogramPoint

    bounds = (0.1, 1.0, 10.0)
    labels = [dict(BASE), {**BASE, "model": "100%d"}]
    cases = [
        ((1, 2, 3, 0), 4.5),
        ((1, 2, 3, 1), 4.5),  # one bucket more
        ((1, 2, 3, 1), -0.0),  # the same counts, another sum
        ((999_990, 5, 4, 0), 1e7),  # cumulative counts reach 1e6: Go's exponent form
        ((2, 0, 0, 0), math.nan),
        ((2_000_000, -1_500_000, 0, 0), 1.0),  # the largest cumulative count is not the last
    ]
    for openmetrics in (False, True):
        renderer = TextRenderer(openmetrics=openmetrics)
        texts = set()
        for counts, total in cases:
            families = [
                Family(
                    names.REQUEST_DURATION, "modelmon", (HistogramPoint(lb, bounds, counts, total),)
                )
                for lb in labels
            ]
            text = renderer.render(families)
            assert text == _generic(families, openmetrics), (counts, total)
            texts.add(text)
        assert len(texts) == len(cases)


def test_exemplar_texts_follow_each_new_exemplar() -> None:
    from modelmon.points import Exemplar, HistogramPoint

    renderer = TextRenderer(openmetrics=True)
    kept = Exemplar({"prediction_id": "a%d"}, 0.05, 1000.0)
    texts = []
    for exemplars in [
        (kept, None, None),
        (kept, None, None),  # the same object: its text is kept
        (Exemplar({"prediction_id": "a%d"}, 0.05, 1000.0), None, None),  # equal, new
        (kept, Exemplar({"prediction_id": "b"}, 0.5, 1001.5), None),  # one more bucket
        (Exemplar({"prediction_id": "c"}, 0.07, 1002.0), None, None),  # replaced
    ]:
        point = HistogramPoint(dict(BASE), (0.1, 1.0), (1, 1, 0), 0.55, exemplars)
        families = [Family(names.REQUEST_DURATION, "modelmon", (point,))]
        text = renderer.render(families)
        assert text == _generic(families, openmetrics=True)
        texts.append(text)
    assert texts[0] == texts[1] == texts[2] and len(set(texts)) == 3


def test_the_collector_sees_monitors_come_and_go() -> None:
    import modelmon
    from modelmon.exporters.exposition import generate_text

    registry = CollectorRegistry()

    def versions() -> set[str]:
        text = generate_text(registry).decode()
        return {
            line.split('version="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("modelmon_requests_total{")
        }

    a = modelmon.Monitor("m", "1", registry=registry)
    assert versions() == {"1"}
    b = modelmon.Monitor("m", "2", registry=registry)
    assert versions() == {"1", "2"}  # attached after the last scrape's snapshot
    a.close()
    assert versions() == {"2"}
    del b  # freed, not closed: its weak reference is dead at the next scrape
    gc.collect()
    assert versions() == set()
    c = modelmon.Monitor("m", "3", registry=registry)
    assert versions() == {"3"}
    c.close()
