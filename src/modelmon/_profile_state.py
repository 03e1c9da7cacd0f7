"""Per-column state and the plan of the profile builder's two passes (internals).

Pass 1 keeps, per column, exact mergeable statistics (:class:`NumericStats`,
:class:`CategoryStats`); :func:`make_plan` turns a merged pass 1 into the fixed
:class:`NumericPlan` every partition's pass 2 counts against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._profile_centred import edge_positions, reference_sketch, sorted_unique
from ._profile_columns import SCALE, exact_sum, ratio

# Private on purpose: the same checks as ``profile``, and the sketch's key layout, so the
# builder's bins line up with its buckets.
from ._profile_data import _check
from .batch import FloatArray, IntArray
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ConfigurationError
from .extract import bounded_category
from .profile import MAX_SKETCH_BUCKETS, sketch_center

# private: the sketch's key layout, so the builder's bins line up with its buckets
from .sketches.ddsketch import _ORD, LogSketch

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "prediction", "confidence"]


# --- per-column state -------------------------------------------------------------------


@dataclass
class NumericStats:
    """Pass 1 of a numeric column (all exact, all mergeable)."""

    count: int = 0
    missing: int = 0
    total: int = 0  # exact sum * 2**SCALE
    min: float = math.inf
    max: float = -math.inf
    sketch: LogSketch = field(default_factory=LogSketch)

    def add(self, v: FloatArray) -> None:
        finite = np.isfinite(v)
        valid = v[finite]
        self.missing += int(v.size - valid.size)
        if valid.size == 0:
            return
        self.count += int(valid.size)
        self.total += exact_sum(valid)
        self.min = min(self.min, float(valid.min()))
        self.max = max(self.max, float(valid.max()))
        self.sketch.add(valid)

    def quantile_summary(self, sketch: LogSketch | None = None, center: float = 0.0) -> FloatArray:
        """Quantiles from ``sketch`` of ``x - center`` (default: pass 1's, of ``x``),
        within [min, max]; min and max exact."""
        of = self.sketch if sketch is None else sketch
        q = of.quantiles(np.asarray(REFERENCE_QUANTILE_PROBS)) + center
        out = np.asarray(np.clip(q, self.min, self.max), dtype=np.float64)
        out[0], out[-1] = self.min, self.max
        return out

    def merge(self, other: NumericStats) -> None:
        self.count += other.count
        self.missing += other.missing
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sketch.merge(other.sketch)

    def state(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "missing": self.missing,
            "total": str(self.total),
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sketch": self.sketch.state(),
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> NumericStats:
        return cls(
            int(s["count"]),
            int(s["missing"]),
            int(s["total"]),
            math.inf if s["min"] is None else float(s["min"]),
            -math.inf if s["max"] is None else float(s["max"]),
            LogSketch.from_state(s["sketch"]),
        )


@dataclass
class CategoryStats:
    """Pass 1 of a categorical column: the exact count of every category."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    def add(self, values: npt.NDArray[Any]) -> None:
        missing = np.asarray(values == None, dtype=bool)  # noqa: E711 - elementwise
        present = values[~missing]
        self.missing += int(missing.sum())
        if present.size == 0:
            return
        # Bounded as from_data and live traffic bound them (extract.bounded_category).
        bounded = np.array([bounded_category(v) for v in present], dtype=object)
        uniq, counts = np.unique(bounded.astype(str), return_counts=True)
        for k, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            self.counts[k] = self.counts.get(k, 0) + int(c)

    def add_arrow(self, array: Any) -> None:
        """Count an Arrow string array (as :meth:`add` would count its values)."""
        import pyarrow.compute as pc

        self.missing += int(array.null_count)
        counted = pc.value_counts(array)
        values = counted.field("values").to_pylist()
        counts = counted.field("counts").to_pylist()
        for k, c in zip(values, counts, strict=True):
            if k is not None:
                key = bounded_category(k)
                self.counts[key] = self.counts.get(key, 0) + int(c)

    def merge(self, other: CategoryStats) -> None:
        self.missing += other.missing
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c

    def state(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "missing": self.missing}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> CategoryStats:
        return cls({str(k): int(v) for k, v in s["counts"].items()}, int(s["missing"]))


@dataclass
class ColumnState:
    """Pass 1 of one column whose kind may be unknown yet (only missing values seen)."""

    role: Role
    kind: Kind | None = None
    nulls: int = 0  # rows seen while the kind was unknown (all missing)
    numeric: NumericStats | None = None
    categories: CategoryStats | None = None

    def set_kind(self, kind: Kind, name: str) -> None:
        if self.kind == kind:
            return
        if self.kind is not None:
            raise ConfigurationError(
                f"column {name!r} is {self.kind} in some batches and {kind} in others; "
                "name it in categorical= to profile it as categories"
            )
        self.kind = kind
        if kind == "numeric":
            self.numeric = NumericStats(missing=self.nulls)
        else:
            self.categories = CategoryStats(missing=self.nulls)
        self.nulls = 0

    def merge(self, other: ColumnState, name: str) -> None:
        if other.kind is None:
            self._add_nulls(other.nulls)
            return
        self.set_kind(other.kind, name)
        self._add_nulls(other.nulls)
        if self.numeric is not None and other.numeric is not None:
            self.numeric.merge(other.numeric)
        if self.categories is not None and other.categories is not None:
            self.categories.merge(other.categories)

    def _add_nulls(self, n: int) -> None:
        if self.numeric is not None:
            self.numeric.missing += n
        elif self.categories is not None:
            self.categories.missing += n
        else:
            self.nulls += n

    def state(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "kind": self.kind,
            "nulls": self.nulls,
            "numeric": None if self.numeric is None else self.numeric.state(),
            "categories": None if self.categories is None else self.categories.state(),
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> ColumnState:
        return cls(
            s["role"],
            s["kind"],
            int(s["nulls"]),
            None if s["numeric"] is None else NumericStats.from_state(s["numeric"]),
            None if s["categories"] is None else CategoryStats.from_state(s["categories"]),
        )


# --- the builder ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSpec:
    """What to profile and how (the same on every partition).

    ``features``: the feature columns in profile order (default: every column of the data
    in its order, less ``prediction``, ``confidence`` and ``exclude``). ``prediction`` /
    ``confidence``: columns holding the model's outputs. ``categorical``: columns to
    profile as categories even when numeric. ``task``: ``"classification"`` makes a
    numeric prediction column class labels; ``"regression"`` makes an integer one numeric.
    """

    features: tuple[str, ...] | None = None
    prediction: str | None = None
    confidence: str | None = None
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    bins: int = 10
    max_categories: int = 20
    task: Literal["classification", "regression"] | None = None
    relative_accuracy: float = 0.01

    def __post_init__(self) -> None:
        _check(self.bins, self.max_categories)
        if self.task not in (None, "classification", "regression"):
            raise ConfigurationError(
                f"task must be 'classification', 'regression' or None, got {self.task!r}"
            )
        if not 0.0 < self.relative_accuracy < 1.0:
            raise ConfigurationError(
                f"relative_accuracy must be in (0, 1), got {self.relative_accuracy!r}"
            )
        outputs = {c for c in (self.prediction, self.confidence) if c is not None}
        clash = outputs & set(self.exclude) | outputs & set(self.features or ())
        if clash:
            raise ConfigurationError(f"output columns also listed as features/excluded: {clash}")

    def roles(self, columns: Sequence[str]) -> dict[str, Role]:
        """Column name -> role, in profile order, for a batch with ``columns``."""
        present = set(columns)
        out: dict[str, Role] = {}
        wanted = self.features
        if wanted is None:
            skip = {*self.exclude, self.prediction, self.confidence}
            wanted = tuple(c for c in columns if c not in skip)
        else:
            missing = [c for c in wanted if c not in present]
            if missing:
                raise ConfigurationError(f"feature columns not in the data: {missing}")
        for c in wanted:
            out[c] = "feature"
        outputs: tuple[tuple[str | None, Role], ...] = (
            (self.prediction, "prediction"),
            (self.confidence, "confidence"),
        )
        for col, role in outputs:
            if col is not None:
                if col not in present:
                    raise ConfigurationError(
                        f"{role} column {col!r} not found; columns: {sorted(present)}"
                    )
                out[col] = role
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "features": None if self.features is None else list(self.features),
            "prediction": self.prediction,
            "confidence": self.confidence,
            "exclude": list(self.exclude),
            "categorical": list(self.categorical),
            "bins": self.bins,
            "max_categories": self.max_categories,
            "task": self.task,
            "relative_accuracy": self.relative_accuracy,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProfileSpec:
        return cls(
            features=None if d["features"] is None else tuple(d["features"]),
            prediction=d["prediction"],
            confidence=d["confidence"],
            exclude=tuple(d["exclude"]),
            categorical=tuple(d["categorical"]),
            bins=int(d["bins"]),
            max_categories=int(d["max_categories"]),
            task=d["task"],
            relative_accuracy=float(d["relative_accuracy"]),
        )


@dataclass(frozen=True)
class NumericPlan:
    """What pass 2 needs of one numeric column, fixed by the merged pass 1.

    ``bounds``: the upper boundary of the sketch bucket holding the rank of each inner
    edge. Pass 2 bins every value by ``searchsorted(bounds, x, side="left")`` and keeps
    the largest value of each bin below the last: that value becomes the edge. So every
    edge is a data value in (or just below) the decile's bucket, and
    ``searchsorted(edges, x, side="left")`` puts every row in the bin it was counted in.

    ``center``: where the reference sketch is centred, by the rule of
    :func:`~modelmon.profile.sketch_center` on pass 1's quantile summary. A non-zero
    centre (``centred``) makes pass 2 sketch ``x - center`` and choose the bins from
    that sketch (:class:`~modelmon._profile_centred.CentredBins`); with centre 0, pass
    1's sketch is the reference and ``bounds`` fix the bins.
    """

    bounds: FloatArray
    mean: float
    center: float = 0.0

    @property
    def centred(self) -> bool:
        return self.center != 0.0


def sketch_of_values(sketch: LogSketch) -> LogSketch:
    """``sketch`` collapsed to the reference sketch's bucket limit (the same buckets)."""
    out = reference_sketch()
    out.merge(LogSketch.from_state({**sketch.state(), "max_buckets": MAX_SKETCH_BUCKETS}))
    return out


def make_plan(stats: NumericStats, bins: int) -> NumericPlan:
    """Edge buckets at the sketch's ranks ``floor(q * (n - 1))``, as ``from_data``'s."""
    ordinals, counts, _ = stats.sketch.buckets()
    edge_ordinals = ordinals[edge_positions(counts, bins)]
    bounds = _upper_bounds(stats.sketch, edge_ordinals)
    q = np.interp((0.01, 0.5, 0.99), REFERENCE_QUANTILE_PROBS, stats.quantile_summary())
    center = sketch_center(float(q[0]), float(q[1]), float(q[2]))
    return NumericPlan(bounds, ratio(stats.total, stats.count << SCALE), center)


def _upper_bounds(sketch: LogSketch, ordinals: IntArray) -> FloatArray:
    """The upper boundary of each bucket (``gamma**k`` above 0, ``-gamma**(k-1)`` below)."""
    o = ordinals.astype(np.int64)
    key = np.abs(o) - _ORD
    with np.errstate(over="ignore"):
        pos = np.power(sketch.gamma, key.astype(np.float64))
        neg = -np.power(sketch.gamma, (key - 1).astype(np.float64))
    out = np.where(o > 0, pos, np.where(o < 0, neg, 0.0))
    return np.asarray(sorted_unique(out), dtype=np.float64)
