"""Categorical values coded at extraction count exactly as the values themselves.

* a drift aggregate fed coded frames (the schema's vocabulary) ends with the same counts
  as one fed the same rows as object columns, with unknown, missing, duplicate-category
  and odd values (which take the per-value path);
* a full vocabulary hands plain object columns (bounded memory), with the same frame;
* the fold codes (under its lock); other callers of ``features_frame`` get values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelmon import Monitor, category_vocabulary
from modelmon.aggregates.drift import DriftAggregate, _batch
from modelmon.aggregates.drift_layout import _select
from modelmon.category_vocabulary import CodedColumns, Vocabulary
from modelmon.extract import Chunk, FeatureSchema, features_frame
from modelmon.profile import ReferenceProfile

from .test_fold_values import _categorical_case

NOW = 1_000.0
NAMES = ["x", "c0", "c1", "c2"]


def _profile(rng: np.random.Generator) -> ReferenceProfile:
    # c0 with more categories than max_categories, c2 sharing values with c0
    return _categorical_case(int(rng.integers(0, 1000)))[0]


def _batches(rng: np.random.Generator, odd: bool) -> list[list[dict[str, Any]]]:
    out = []
    for _ in range(30):
        rows = []
        for _ in range(int(rng.integers(1, 200))):
            row: dict[str, Any] = {
                "x": float(rng.normal()),
                "c0": f"a{rng.integers(0, 40)}",
                "c1": f"b{rng.integers(0, 6)}",
                "c2": f"a{rng.integers(0, 9)}",
            }
            if rng.random() < 0.05:
                row["c1"] = None
            if rng.random() < 0.02:
                row["c2"] = "never-seen"
            if odd and rng.random() < 0.01:
                row["c0"] = [7, "z" * 300, float("nan")][int(rng.integers(0, 3))]
            rows.append(row)
        out.append(rows)
    return out


def _fold(profile: ReferenceProfile, batches: list[Any], coded: bool) -> tuple[DriftAggregate, int]:
    schema = FeatureSchema(NAMES, categorical=NAMES[1:])
    agg = DriftAggregate(profile, min_samples=10)
    coded_frames = 0
    for rows in batches:
        frame = features_frame([Chunk("dicts", rows, plain_dicts=True)], schema, coded=coded)
        coded_frames += isinstance(frame.categorical, CodedColumns)
        agg.fold(_batch(frame, NOW))
    return agg, coded_frames


@pytest.mark.parametrize(("seed", "odd"), [(0, False), (1, True), (2, True)])
def test_coded_frames_count_as_object_columns(seed: int, odd: bool) -> None:
    rng = np.random.default_rng(seed)
    profile = _profile(rng)
    batches = _batches(rng, odd)
    coded, n_coded = _fold(profile, batches, coded=True)
    plain, n_plain = _fold(_profile(np.random.default_rng(seed)), batches, coded=False)
    assert n_plain == 0
    assert n_coded >= (10 if odd else 30)  # the coded path was taken (not only the fallback)
    assert coded.cum_features.tolist() == plain.cum_features.tolist()
    a, b = coded.window.current(NOW).features, plain.window.current(NOW).features
    assert a.test_counts.tolist() == b.test_counts.tolist()
    assert a.missing.tolist() == b.missing.tolist()
    assert a.seen.tolist() == b.seen.tolist()


def test_coded_columns_read_as_the_values() -> None:
    schema = FeatureSchema(NAMES, categorical=NAMES[1:])
    rows = [
        {"x": 1.0, "c0": "p", "c1": None, "c2": "q"},
        {"x": 2.0, "c0": "q", "c1": "p", "c2": "q"},
    ]
    frame = features_frame([Chunk("dicts", rows)], schema, coded=True)
    cats = frame.categorical
    assert isinstance(cats, CodedColumns)
    assert sorted(cats) == [1, 2, 3] and 0 not in cats and 2 in cats
    assert {j: v.tolist() for j, v in cats.items()} == {
        1: ["p", "q"],
        2: [None, "p"],
        3: ["q", "q"],
    }
    assert frame.missing[:, 2].tolist() == [True, False]


def test_a_full_vocabulary_hands_object_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(category_vocabulary, "MAX_WORDS", 6)
    schema = FeatureSchema(["c"], categorical=["c"])
    first = features_frame([Chunk("dicts", [{"c": f"v{i}"} for i in range(4)])], schema, coded=True)
    assert isinstance(first.categorical, CodedColumns)
    rows = [{"c": f"w{i}"} for i in range(10)] + [{"c": "v1"}, {"c": None}]
    second = features_frame([Chunk("dicts", rows)], schema, coded=True)
    assert not isinstance(second.categorical, CodedColumns)
    assert second.categorical[0].tolist() == [f"w{i}" for i in range(10)] + ["v1", None]
    assert second.missing[:, 0].tolist() == [False] * 11 + [True]
    assert len(schema.vocabulary.table) <= 5 and schema.vocabulary.full
    third = features_frame([Chunk("dicts", [{"c": "v1"}])], schema, coded=True)
    assert not isinstance(third.categorical, CodedColumns)  # full: values from now on
    assert third.categorical[0].tolist() == ["v1"]


def test_a_monitor_codes_in_its_fold_and_other_readers_get_values() -> None:
    mon = Monitor("m", "1", registry=False, feature_names=["c"], categorical=["c"], strict=True)
    predict = mon.wrap(lambda x: 0.5)
    for i in range(50):
        predict({"c": f"v{i % 7}"})
    mon.fold()
    assert sorted(mon.schema.vocabulary.table) == sorted({f"v{i}" for i in range(7)})
    plain = features_frame([{"c": "new"}], mon.schema)  # outside a fold: no coding
    assert not isinstance(plain.categorical, CodedColumns)
    assert "new" not in mon.schema.vocabulary.table
    mon.close()


def test_codes_are_stable_and_words_cover_them() -> None:
    vocab = Vocabulary()
    first = vocab.codes(["b", "a", None, "b"], max_chars=4)
    second = vocab.codes(["c", "a", "b"], max_chars=4)
    assert first is not None and second is not None
    assert vocab.words()[first].tolist() == ["b", "a", None, "b"]
    assert vocab.words()[second].tolist() == ["c", "a", "b"]
    assert second[1:].tolist() == [first[1], first[0]]  # a code never changes


def test_coded_and_plain_blocks_of_one_fold_join_as_values() -> None:
    schema = FeatureSchema(["x", "c"], categorical=["c"])
    dicts = Chunk("dicts", [{"x": 1.0, "c": "p"}, {"x": 2.0, "c": None}])
    rows = Chunk("rows", [(3.0, "q"), (4.0, 5)])  # a list-of-rows call between dict calls
    frame = features_frame([dicts, rows, dicts], schema, coded=True)
    assert frame.categorical[1].tolist() == ["p", None, "q", "5", "p", None]
    assert frame.missing[:, 1].tolist() == [False, True, False, False, False, True]
    assert frame.numeric[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 1.0, 2.0]


def _segment_state(rows: list[dict[str, Any]], profile: ReferenceProfile) -> dict[str, Any]:
    mon = Monitor("m", "1", reference=profile, registry=False, segment="c1", strict=True)
    predict = mon.wrap(lambda x: 0.5)
    for row in rows:
        predict(row)
    mon.fold()
    assert mon.segments is not None
    state = mon.segments.state()
    words = len(mon.schema.vocabulary.table)
    mon.close()
    return {"state": state, "words": words}


def _arrays(x: Any) -> Any:
    """The counts of a state; the drift windows (slots of the wall clock) left out."""
    if isinstance(x, dict):
        return {k: _arrays(v) for k, v in x.items() if k != "window"}
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, list):
        return [_arrays(v) for v in x]
    return x


def test_segments_count_coded_frames_as_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    profile = _profile(rng)
    rows = [r for batch in _batches(rng, odd=False) for r in batch][:3000]
    coded = _segment_state(rows, profile)
    monkeypatch.setattr(category_vocabulary, "MAX_WORDS", 1)  # nothing coded: plain values
    plain = _segment_state(rows, profile)
    assert coded["words"] > 10 and plain["words"] == 0
    assert _arrays(coded["state"]) == _arrays(plain["state"])
    per_segment = coded["state"]["drift"]
    assert len(per_segment) >= 4 and all(d["cum_features"].sum() for d in per_segment.values())


def test_none_is_code_0_without_a_table_entry_and_the_empty_string_is_a_word() -> None:
    vocab = Vocabulary()
    assert vocab.codes([None, None], max_chars=4).tolist() == [0, 0]
    assert vocab.table == {}
    codes = vocab.codes(["", None, "a", ""], max_chars=4)
    assert codes is not None and codes[1] == 0 and codes[0] == codes[3] != 0
    assert vocab.words()[codes].tolist() == ["", None, "a", ""]
    again = vocab.codes(["a", "", "a"], max_chars=4)  # all known: no new word
    assert again is not None and again.all() and len(vocab.table) == 2
    assert vocab.words()[again].tolist() == ["a", "", "a"]


@pytest.mark.parametrize(
    "cols", [[0, 1, 2, 3, 4, 5], [1, 2, 3], [0, 1], [5], [2, 1], [3, -1, 4], [-1, 0], []]
)
def test_select_takes_a_run_of_columns_as_any_other_selection(cols: list[int]) -> None:
    matrix = np.random.default_rng(5).normal(size=(7, 6))
    expected = np.full((7, len(cols)), np.nan)
    for c, j in enumerate(cols):
        if j >= 0:
            expected[:, c] = matrix[:, j]
    out = _select(matrix, cols)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
