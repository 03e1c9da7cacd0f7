"""Reference profiles: a compact, versioned summary of training data to measure drift against.

Per numeric feature: inner bin edges at the reference deciles (duplicates collapsed),
the reference share of each bin, the missing share, count, mean, std (``ddof=0``),
min, max and a quantile summary at :data:`~modelmon.drift.REFERENCE_QUANTILE_PROBS`.
Bins are right-closed: ``(-inf, e0], (e0, e1], ..., (e_last, +inf)``, i.e. the bin of
``x`` is ``np.searchsorted(edges, x, side="left")``.

Per categorical feature (strings, booleans, or named in ``categorical=``): the most
frequent categories (ties broken by name), at most ``max_categories``, then
``__other__`` (always present, always last) pooling the rest and any unknown value.
These are the exported bins. The drift *test* uses the full category distribution:
``full_categories`` / ``full_counts`` keep up to :data:`MAX_TEST_CATEGORIES` categories
in the same order (the exported ones first), then ``__other__`` with the rest.

Format version 2 added ``full_categories``/``full_counts``; version 1 profiles still load
(their test categories are the exported ones). Every field is validated at load
(:func:`FeatureProfile.from_json`): a hostile or corrupt profile raises
:class:`ProfileFormatError` naming the field, never a raw ``OverflowError``.

The same summaries describe the model's outputs: ``prediction`` (numeric, or
categorical for class labels), ``confidence``, and one numeric output per class when
predictions are a probability matrix.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = ReferenceProfile.from_data(rng.normal(size=(1000, 2)), feature_names=["a", "b"])
>>> p.features["a"].kind, p.features["a"].n_bins
('numeric', 10)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cached import cached_property  # no lock: safe across fork (see there)

# private: the profile's parts, split by job into two modules (one owner each)
from ._profile_data import (
    _categorical,
    _check,
    _columns,
    _frame_outputs,
    _numeric,
    _profile_column,
    _profile_outputs,
    categorical_from_counts,
    reference_sketch,
)

# private: the JSON text of dumps() (json.dumps' own bytes, faster)
from ._profile_json import dumps_indented

# private: the member format and its validation
from ._profile_member import (
    CONFIDENCE,
    FORMAT_VERSION,
    MAX_BINS,
    MAX_CATEGORIES,
    MAX_FEATURES_IN_PROFILE,
    MAX_NAME_CHARS,
    MAX_PROFILE_CHARS,
    MAX_SKETCH_BUCKETS,
    MAX_TEST_CATEGORIES,
    PREDICTION,
    READABLE_VERSIONS,
    REFERENCE_SKETCH_ACCURACY,
    FeatureProfile,
    Kind,
    ProfileFormatError,
    _finite,
    _read_members,
    sketch_center,
)
from .batch import FeatureFrame, OutputFrame
from .errors import ConfigurationError
from .outliers import OutlierFormatError, OutlierReference, joint_of_columns, read_outliers

__all__ = [
    "CONFIDENCE",
    "FORMAT_VERSION",
    "MAX_BINS",
    "MAX_CATEGORIES",
    "MAX_FEATURES_IN_PROFILE",
    "MAX_NAME_CHARS",
    "MAX_PROFILE_CHARS",
    "MAX_SKETCH_BUCKETS",
    "MAX_TEST_CATEGORIES",
    "PREDICTION",
    "READABLE_VERSIONS",
    "REFERENCE_SKETCH_ACCURACY",
    "FeatureProfile",
    "Kind",
    "ProfileFormatError",
    "ReferenceProfile",
    "categorical_from_counts",
    "reference_sketch",
    "sketch_center",
]


def _numeric_stds(features: Mapping[str, FeatureProfile]) -> dict[str, float | None]:
    return {n: f.std for n, f in features.items() if f.kind == "numeric"}


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class ReferenceProfile:
    """Reference summaries of features and outputs (see the module doc)."""

    features: dict[str, FeatureProfile]
    outputs: dict[str, FeatureProfile] = field(default_factory=dict)
    created_at: float = 0.0
    format_version: int = FORMAT_VERSION
    outliers: OutlierReference | None = None

    # --- building ------------------------------------------------------------------
    @classmethod
    def from_data(
        cls,
        X: Any,
        predictions: Any = None,
        feature_names: Sequence[str] | None = None,
        bins: int = 10,
        categorical: Iterable[str] | None = None,
        max_categories: int = 20,
        confidence: Any = None,
        created_at: float | None = None,
        *,
        task: str | None = None,
        classes: Sequence[str] | None = None,
    ) -> ReferenceProfile:
        """Profile training data: a 2-D numpy array, a pandas DataFrame or a list of dicts.

        ``predictions``: a float vector (numeric ``prediction``), a vector of class
        labels (int, bool or str: categorical ``prediction``, unless
        ``task="regression"``), or a probability matrix (categorical ``prediction``
        from the argmax, ``confidence`` from the max, one numeric output per class named
        by ``classes`` or ``"0"``, ``"1"``...). ``confidence``: a float vector.
        """
        _check(bins, max_categories)
        columns = _columns(X, feature_names)
        cats = set(categorical or ())
        unknown = cats - set(columns)
        if unknown:
            raise ConfigurationError(f"categorical features not in the data: {sorted(unknown)}")
        features = {
            name: _profile_column(name, values, bins, max_categories, name in cats)
            for name, values in columns.items()
        }
        outputs = _profile_outputs(predictions, confidence, bins, max_categories, task, classes)
        joint = joint_of_columns(_numeric_stds(features), lambda n: columns[n])
        when = time.time() if created_at is None else float(created_at)
        return cls(features, outputs, when, outliers=OutlierReference(joint))

    @classmethod
    def from_frame(
        cls,
        frame: FeatureFrame,
        outputs: OutputFrame | None = None,
        *,
        bins: int = 10,
        max_categories: int = 20,
        created_at: float | None = None,
    ) -> ReferenceProfile:
        """Profile already-extracted rows (the warm-up mode of a monitor)."""
        _check(bins, max_categories)
        features: dict[str, FeatureProfile] = {}
        for j, name in enumerate(frame.names):
            if j in frame.categorical:
                features[name] = _categorical(name, frame.categorical[j], max_categories)
            else:
                col = frame.numeric[:, j]
                features[name] = _numeric(name, col, bins, missing=int(frame.missing[:, j].sum()))
        outs: dict[str, FeatureProfile] = {}
        if outputs is not None and outputs.n_rows:
            outs = _frame_outputs(outputs, bins, max_categories)
        index = {n: j for j, n in enumerate(frame.names)}
        joint = joint_of_columns(_numeric_stds(features), lambda n: frame.numeric[:, index[n]])
        when = time.time() if created_at is None else float(created_at)
        return cls(features, outs, when, outliers=OutlierReference(joint))

    # --- persistence ---------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out = {
            "format_version": self.format_version,
            "created_at": self.created_at,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "feature_order": list(self.features),
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
            "output_order": list(self.outputs),
        }
        if self.outliers is not None:
            out["outliers"] = self.outliers.to_json()
        return out

    def dumps(self) -> str:
        """Deterministic JSON text: sorted keys, ``repr`` floats, indent 2, final newline."""
        return dumps_indented(self.to_json()) + "\n"

    def save(self, path: str | Path) -> None:
        """Write :meth:`dumps` to ``path`` (same profile, same bytes)."""
        Path(path).write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def loads(cls, text: str) -> ReferenceProfile:
        """Parse and validate a profile (raises :class:`ProfileFormatError` naming the field)."""
        if len(text) > MAX_PROFILE_CHARS:
            raise ProfileFormatError(
                f"reference profile too large: {len(text)} characters > {MAX_PROFILE_CHARS}"
            )
        try:
            d = json.loads(text)
        except RecursionError as exc:
            raise ProfileFormatError(
                "not a modelmon reference profile (nested too deeply)"
            ) from exc
        except ValueError as exc:
            raise ProfileFormatError(
                f"not a modelmon reference profile (invalid JSON: {exc})"
            ) from exc
        if not isinstance(d, dict) or "format_version" not in d:
            raise ProfileFormatError("not a modelmon reference profile (no format_version)")
        version = d["format_version"]
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ProfileFormatError(
                f"unsupported reference profile format_version {version!r}; "
                f"this modelmon reads versions {READABLE_VERSIONS} (upgrade modelmon or rebuild "
                "the profile with `modelmon profile`)"
            )
        try:
            features = _read_members(d, "features", "feature_order")
            outputs = _read_members(d, "outputs", "output_order")
            created = _finite(d.get("created_at"), "created_at")
            numeric = {n for n, f in features.items() if f.kind == "numeric"}
            section = d.get("outliers")  # absent in profiles made before outliers existed
            outliers = None if section is None else read_outliers(section, numeric)
            return cls(features, outputs, created, FORMAT_VERSION, outliers)
        except ProfileFormatError:
            raise
        except OutlierFormatError as exc:
            raise ProfileFormatError(str(exc)) from exc
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ProfileFormatError(f"invalid reference profile: {exc!r}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save` (raises :class:`ProfileFormatError`)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileFormatError(f"cannot read reference profile {str(path)!r}: {exc}") from exc
        return cls.loads(text)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the profile's content (equal profiles, equal fingerprints)."""
        import hashlib

        return hashlib.sha256(self.dumps().encode()).hexdigest()[:16]
