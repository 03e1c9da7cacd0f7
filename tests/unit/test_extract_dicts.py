"""Dict rows with categorical features: the C-level path gives the per-value path's frame."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import pytest

from modelmon.category_vocabulary import CodedColumns
from modelmon.extract import (
    MAX_CATEGORY_CHARS,
    Chunk,
    FeatureSchema,
    _block,
    _mixed_dicts,
    _object_block,
    features_frame,
)


class Colour(str, enum.Enum):  # equal to "red" and hashed like it, but str() differs
    RED = "red"


class Text(str):
    """A str subclass: the per-value rules read it with str()."""


def _schema(n_num: int, n_cat: int, interleave: bool = False) -> FeatureSchema:
    names = [f"x{i}" for i in range(n_num)] + [f"c{i}" for i in range(n_cat)]
    if interleave:  # categorical columns between numeric ones
        names = sorted(names, key=lambda n: (int(n[1:]), n[0]))
    return FeatureSchema(names, categorical=[n for n in names if n.startswith("c")])


def _rows(rng: np.random.Generator, n: int, schema: FeatureSchema) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for name in schema.names or ():
            if name.startswith("c"):
                row[name] = f"v{int(rng.integers(0, 12))}"
            else:
                row[name] = float(rng.normal()) if rng.random() < 0.8 else int(rng.integers(-5, 5))
        out.append(row)
    return out


def _per_value(chunk: Chunk, schema: FeatureSchema) -> tuple[Any, ...]:
    """The exact per-value rules of the slow path, on the same rows."""
    cat_cols = [j for j, n in enumerate(schema.names or ()) if n in schema.categorical]
    return _object_block(schema._rows(chunk), len(schema.names or ()), cat_cols)


def _assert_same(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    assert sorted(got[3]) == sorted(want[3])
    for j in want[3]:
        assert got[3][j].tolist() == want[3][j].tolist()
        assert all(type(v) in (str, type(None)) for v in got[3][j].tolist())


def _cat_cols(schema: FeatureSchema) -> list[int]:
    return [j for j, n in enumerate(schema.names or ()) if n in schema.categorical]


@pytest.mark.parametrize(
    ("n_num", "n_cat", "interleave"),
    [(10, 10, False), (3, 4, True), (1, 1, False), (0, 3, False), (0, 1, False), (5, 1, True)],
)
def test_clean_dicts_take_the_c_level_path_and_match_the_per_value_rules(
    n_num: int, n_cat: int, interleave: bool
) -> None:
    rng = np.random.default_rng(n_num * 10 + n_cat)
    schema = _schema(n_num, n_cat, interleave)
    rows = _rows(rng, 200, schema)
    rows[3][f"c{n_cat - 1}"] = None  # a missing category
    if n_num:
        rows[5]["x0"] = math.inf  # invalid
        rows[6]["x0"] = math.nan  # missing
        rows[7]["x0"] = True  # a bool is a number
    chunk = Chunk("dicts", rows)
    fast = _mixed_dicts(rows, schema.names or (), _cat_cols(schema))
    assert fast is not None  # the clean case must not fall back
    want = _per_value(chunk, schema)
    _assert_same(fast, want)
    coded = _block(chunk, schema, schema.vocabulary)  # as in a fold: values coded
    assert isinstance(coded[3], CodedColumns)
    _assert_same(coded, want)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("c1", float("nan")),  # NaN as a missing category
        ("c1", 3),  # a number in a categorical column: read as "3"
        ("c1", Colour.RED),  # str subclass with its own str()
        ("c1", Text("v1")),  # str subclass
        ("c1", "y" * (MAX_CATEGORY_CHARS + 1)),  # cut and hashed
        ("c1", b"v1"),  # bytes
        ("x1", None),  # a missing number
        ("x1", "1.5"),  # a str in a numeric column: invalid
        ("x1", 10**400),  # an int beyond float range
    ],
)
def test_odd_values_fall_back_to_the_exact_rules(column: str, value: Any) -> None:
    schema = _schema(3, 3)
    rows = _rows(np.random.default_rng(7), 50, schema)
    rows[0]["c1"] = "red"  # the Enum member below must not be read as this str
    rows[10][column] = value
    assert _mixed_dicts(rows, schema.names or (), _cat_cols(schema)) is None
    chunk = Chunk("dicts", rows)
    _assert_same(_block(chunk, schema), _per_value(chunk, schema))


def test_a_category_at_the_length_cap_stays_on_the_fast_path() -> None:
    schema = _schema(2, 2)
    rows = _rows(np.random.default_rng(3), 20, schema)
    rows[4]["c0"] = "z" * MAX_CATEGORY_CHARS
    rows[5]["c1"] = ""
    fast = _mixed_dicts(rows, schema.names or (), _cat_cols(schema))
    assert fast is not None
    _assert_same(fast, _per_value(Chunk("dicts", rows), schema))


@pytest.mark.parametrize("broken", ["missing key", "not a dict", "extra key"])
def test_irregular_dicts_give_the_exact_frame(broken: str) -> None:
    schema = _schema(3, 2)
    rows: list[Any] = list(_rows(np.random.default_rng(5), 30, schema))
    if broken == "missing key":
        del rows[2]["c0"]
        del rows[3]["x2"]
    elif broken == "not a dict":
        rows[4] = None
    else:
        rows[6]["other"] = 1.0
    frame = features_frame([Chunk("dicts", rows)], schema)
    want = _per_value(Chunk("dicts", rows), schema)
    got = (frame.numeric, frame.missing, frame.invalid, dict(frame.categorical))
    _assert_same(got, want)
    assert frame.not_exported == (1 if broken == "extra key" else 0)


def test_random_batches_match_the_per_value_rules() -> None:
    """Clean and odd values mixed at random, 300 batches: both paths agree on every one."""
    rng = np.random.default_rng(11)
    odd: list[Any] = [None, float("nan"), 7, "w" * 200, Text("v2"), Colour.RED, math.inf]
    schema = _schema(4, 3, interleave=True)
    fast_taken = 0
    for _ in range(300):
        rows = _rows(rng, int(rng.integers(1, 30)), schema)
        for _ in range(int(rng.integers(0, 3))):
            row = rows[int(rng.integers(0, len(rows)))]
            name = (schema.names or ())[int(rng.integers(0, 7))]
            row[name] = odd[int(rng.integers(0, len(odd)))]
        chunk = Chunk("dicts", rows)
        fast_taken += _mixed_dicts(rows, schema.names or (), _cat_cols(schema)) is not None
        _assert_same(_block(chunk, schema), _per_value(chunk, schema))
    assert 50 < fast_taken < 300  # both paths were exercised
