"""Hostile or corrupt reference profiles fail at load with a ConfigurationError naming the field.

Before profile format 2 these loaded (NaN or unsorted edges, wrong share counts, negative
shares, 200k edges that made a 35 MB /metrics) or escaped as a raw OverflowError /
RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import modelmon
from modelmon.errors import ConfigurationError
from modelmon.profile import ProfileFormatError, ReferenceProfile


def _good() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    rows = [
        {"x": float(v), "c": str(c)}
        for v, c in zip(rng.normal(size=500), rng.integers(0, 5, 500), strict=True)
    ]
    doc = ReferenceProfile.from_data(rows, created_at=0.0).to_json()
    return json.loads(json.dumps(doc))  # type: ignore[no-any-return]


def _load(doc: dict[str, Any]) -> ReferenceProfile:
    return ReferenceProfile.loads(json.dumps(doc))


Edit = Callable[[dict[str, Any]], None]

CASES: list[tuple[str, Edit, str]] = [
    ("NaN edge", lambda d: d["features"]["x"]["edges"].__setitem__(2, float("nan")), "'edges'"),
    (
        "infinite edge",
        lambda d: d["features"]["x"]["edges"].__setitem__(0, float("inf")),
        "'edges'",
    ),
    ("unsorted edges", lambda d: d["features"]["x"]["edges"].reverse(), "'edges'"),
    (
        "duplicate edges",
        lambda d: d["features"]["x"]["edges"].__setitem__(1, d["features"]["x"]["edges"][0]),
        "'edges'",
    ),
    ("a share too few", lambda d: d["features"]["x"]["shares"].pop(), "'shares'"),
    ("negative share", lambda d: d["features"]["x"]["shares"].__setitem__(0, -0.1), "'shares'"),
    (
        "shares not summing to 1",
        lambda d: d["features"]["x"]["shares"].__setitem__(0, 0.9),
        "'shares'",
    ),
    (
        "200k edges",
        lambda d: d["features"]["x"].update(
            edges=list(np.arange(200_000.0)), shares=[1 / 200_001] * 200_001
        ),
        "'edges'",
    ),
    ("string count", lambda d: d["features"]["x"].update(count="many"), "'count'"),
    ("negative count", lambda d: d["features"]["x"].update(count=-3), "'count'"),
    (
        "missing share above 1",
        lambda d: d["features"]["x"].update(missing_share=1.5),
        "'missing_share'",
    ),
    (
        "edge too large for a float",
        lambda d: d["features"]["x"]["edges"].__setitem__(0, 10**400),
        "'edges'",
    ),
    ("unsorted quantiles", lambda d: d["features"]["x"]["quantiles"].reverse(), "'quantiles'"),
    ("negative std", lambda d: d["features"]["x"].update(std=-1.0), "'std'"),
    (
        "category shares of the wrong length",
        lambda d: d["features"]["c"]["shares"].append(0.0),
        "'shares'",
    ),
    (
        "categories without __other__",
        lambda d: d["features"]["c"]["categories"].pop(),
        "'categories'",
    ),
    (
        "duplicate categories",
        lambda d: d["features"]["c"]["categories"].__setitem__(
            1, d["features"]["c"]["categories"][0]
        ),
        "'categories'",
    ),
    (
        "2,000 categories",
        lambda d: d["features"]["c"].update(
            categories=[f"k{i}" for i in range(2000)] + ["__other__"], shares=[1 / 2001] * 2001
        ),
        "'categories'",
    ),
    (
        "full counts not summing to count",
        lambda d: d["features"]["c"]["full_counts"].__setitem__(0, 10**6),
        "'full_counts'",
    ),
    (
        "full categories not starting with the exported ones",
        lambda d: d["features"]["c"]["full_categories"].reverse(),
        "'full_categories'",
    ),
    (
        "order naming an unknown member",
        lambda d: d["feature_order"].append("ghost"),
        "'feature_order'",
    ),
    (
        "a member that is not an object",
        lambda d: d["features"].__setitem__("x", [1, 2]),
        "'features'",
    ),
    ("kind unknown", lambda d: d["features"]["x"].update(kind="tensor"), "unknown kind"),
    ("non-finite created_at", lambda d: d.update(created_at=float("inf")), "'created_at'"),
]


@pytest.mark.parametrize(("why", "edit", "field"), CASES, ids=[c[0] for c in CASES])
def test_hostile_profile_fails_naming_the_field(why: str, edit: Edit, field: str) -> None:
    doc = _good()
    edit(doc)
    with pytest.raises(ConfigurationError, match=field) as info:
        _load(doc)
    assert isinstance(info.value, ProfileFormatError), why


def test_deep_nesting_is_a_configuration_error_not_a_recursion_error() -> None:
    text = '{"format_version": 2, "features": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(ProfileFormatError, match=r"nested too deeply|invalid"):
        ReferenceProfile.loads(text)


def test_huge_integer_is_a_configuration_error_not_an_overflow_error() -> None:
    doc = _good()
    doc["features"]["x"]["mean"] = 10**400  # json writes the integer; float() overflows
    text = json.dumps(doc)
    with pytest.raises(ProfileFormatError, match="'mean'"):
        ReferenceProfile.loads(text)


def test_monitor_refuses_a_hostile_profile_file_at_construction(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = _good()
    doc["features"]["x"]["edges"].reverse()
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match="'edges'"):
        modelmon.Monitor("m", "1", reference=str(path))


def test_a_valid_profile_round_trips() -> None:
    doc = _good()
    assert _load(doc).to_json() == doc


def test_a_format_1_profile_still_loads_with_the_exported_categories_as_test_cells() -> None:
    doc = _good()
    doc["format_version"] = 1
    for member in doc["features"].values():
        member.pop("full_categories", None)
        member.pop("full_counts", None)
    profile = _load(doc)
    c = profile.features["c"]
    assert c.test_categories == c.categories and c.test_shares == c.shares
