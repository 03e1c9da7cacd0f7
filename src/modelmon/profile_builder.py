"""Mergeable reference profiles: the same rows give the same profile however they are split.

A :class:`ProfileBuilder` reads the training data in two passes over any partitioning
(batches of one file, Spark partitions, Dask partitions), each pass mergeable:

1. **pass 1** fixes what the bins are: per numeric column a DDSketch-style
   :class:`~modelmon.sketches.ddsketch.LogSketch` (its bucket counts merge exactly), the
   exact count, missing count, min, max and the exact sum; per categorical column the
   exact count of every category. :meth:`ProfileBuilder.second_pass` turns the merged
   pass-1 state into a plan: inner bin edges at the sketch's deciles, the mean;
2. **pass 2** counts every row into those fixed bins exactly (binned by the upper
   boundary of each edge's sketch bucket; the largest value of each bin becomes its
   edge, a data value) and sums the squared deviations from the mean exactly;
   :meth:`ProfileBuilder.finish` makes the :class:`~modelmon.profile.ReferenceProfile`.

Every number is computed without rounding that depends on the order of the rows: counts
are integers, sums are exact (each float is split into integer mantissa and exponent and
summed as a Python integer), the sketch's buckets are integers, edges are maxima. So any
partitioning of the same rows, merged in any order, gives the same profile, byte for byte
(same :attr:`~modelmon.profile.ReferenceProfile.fingerprint`, for the same ``created_at``).

How it relates to :meth:`ReferenceProfile.from_data` on the same rows: categorical
features, counts, missing shares, min and max are identical; mean and std are the
correctly rounded exact values (``from_data`` uses numpy's pairwise sums: equal within a
few units in the last place); each bin edge is a data value within one sketch bucket
(about 2%) of ``from_data``'s exact decile, the bin shares are the exact shares of the
rows in those bins, and the quantile summary is within ``relative_accuracy`` (1%) of the
exact value of rank ``floor(q (n - 1))``. See ``docs/scale-out.md``.

>>> import numpy as np
>>> rows = {"x": np.arange(1000.0), "c": np.array(["a", "b"] * 500, dtype=object)}
>>> b = ProfileBuilder()
>>> b.update(rows)
>>> b = b.second_pass()
>>> b.update(rows)
>>> p = b.finish(created_at=0.0)
>>> p.features["x"].n_bins, p.features["c"].categories
(10, ('a', 'b', '__other__'))
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .batch import FloatArray, IntArray
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ConfigurationError
from .exact_sums import SCALE as _SCALE
from .exact_sums import exact_sum
from .extract import bounded_category
from .outlier_moments import OutlierCounts
from .outliers import MAX_JOINT_FEATURES, OutlierReference

# Private names shared on purpose: this module is the streaming half of ``profile``
# (split off for length) and uses its checks.
from .profile import (
    CONFIDENCE,
    PREDICTION,
    FeatureProfile,
    ReferenceProfile,
    _check,
    _num_str,
    _object_column,
    categorical_from_counts,
)

# Private on purpose: the sketch's key layout, so the builder's bins line up with it.
from .sketches.ddsketch import _ORD, LogSketch

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "prediction", "confidence"]
STATE_FORMAT = "modelmon-profile-builder"


# --- columns of a batch ------------------------------------------------------------------


class Column:
    """One column of one batch: float64 (NaN missing) or object (``None`` missing).

    ``dtype`` is the source's kind: ``"i"`` integer, ``"f"`` float, ``"b"`` boolean,
    ``"O"`` anything else (strings, dates...). An Arrow string column keeps its Arrow
    array (``arrow``) and builds the object array only when asked: categories are
    counted by Arrow directly.
    """

    __slots__ = ("_values", "arrow", "dtype", "size")

    def __init__(self, values: npt.NDArray[Any] | None, dtype: str, arrow: Any = None) -> None:
        self._values = values
        self.dtype = dtype
        self.arrow = arrow
        self.size = len(arrow) if values is None else int(values.shape[0])

    @property
    def values(self) -> npt.NDArray[Any]:
        if self._values is None:
            self._values = np.asarray(self.arrow.to_numpy(zero_copy_only=False), dtype=object)
        return self._values


def batch_columns(batch: Any) -> dict[str, Column]:
    """Columns of a pyarrow ``RecordBatch``/``Table``, a pandas DataFrame or a mapping."""
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return {str(n): _arrow_column(batch.column(i)) for i, n in enumerate(batch.schema.names)}
    if module.startswith("pandas") and type(batch).__name__ == "DataFrame":
        return {str(c): _pandas_column(batch[c]) for c in batch.columns}
    if isinstance(batch, Mapping):
        return {str(k): _array_column(v) for k, v in batch.items()}
    raise ConfigurationError(
        "a profile batch must be a pyarrow RecordBatch/Table, a pandas DataFrame or a "
        f"mapping of column name to values, got {type(batch).__name__}"
    )


def _arrow_column(col: Any) -> Column:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        kind = "f" if pa.types.is_floating(t) or pa.types.is_decimal(t) else "i"
        return Column(np.asarray(values, dtype=np.float64), kind)
    if pa.types.is_boolean(t):
        return Column(np.asarray(col.to_pylist(), dtype=object), "b")
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col = pc.cast(col, pa.string())
    return Column(None, "O", arrow=col)


def _pandas_column(series: Any) -> Column:
    kind = series.dtype.kind
    if kind in "fiu":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return Column(np.asarray(values, dtype=np.float64), "f" if kind == "f" else "i")
    present = series.notna().to_numpy(dtype=bool)
    values = np.array(series.astype(object).to_numpy(dtype=object), dtype=object)
    values[~present] = None  # NaN, None, pd.NA, NaT: one missing marker
    return _list_column(values.tolist())


def _array_column(values: Any) -> Column:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        return _pandas_column(values)
    a = np.asarray(values)
    if a.dtype.kind in "fiu":
        return Column(a.astype(np.float64).reshape(-1), "f" if a.dtype.kind == "f" else "i")
    if a.dtype.kind == "b":
        return Column(a.astype(object).reshape(-1), "b")
    return _list_column(list(a.reshape(-1).tolist()))


def _list_column(values: list[Any]) -> Column:
    obj = _object_column(values)
    if obj.dtype.kind == "f":
        return Column(obj, "f")
    present = [v for v in obj.tolist() if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return Column(obj, "b")
    return Column(obj, "O")


def _ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` correctly rounded (Python's int division is)."""
    return numerator / denominator


# --- per-column state -------------------------------------------------------------------


@dataclass
class _NumericStats:
    """Pass 1 of a numeric column (all exact, all mergeable)."""

    count: int = 0
    missing: int = 0
    total: int = 0  # exact sum * 2**_SCALE
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

    def merge(self, other: _NumericStats) -> None:
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
    def from_state(cls, s: Mapping[str, Any]) -> _NumericStats:
        return cls(
            int(s["count"]),
            int(s["missing"]),
            int(s["total"]),
            math.inf if s["min"] is None else float(s["min"]),
            -math.inf if s["max"] is None else float(s["max"]),
            LogSketch.from_state(s["sketch"]),
        )


@dataclass
class _CategoryStats:
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

    def merge(self, other: _CategoryStats) -> None:
        self.missing += other.missing
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c

    def state(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "missing": self.missing}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> _CategoryStats:
        return cls({str(k): int(v) for k, v in s["counts"].items()}, int(s["missing"]))


@dataclass
class _ColumnState:
    """Pass 1 of one column whose kind may be unknown yet (only missing values seen)."""

    role: Role
    kind: Kind | None = None
    nulls: int = 0  # rows seen while the kind was unknown (all missing)
    numeric: _NumericStats | None = None
    categories: _CategoryStats | None = None

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
            self.numeric = _NumericStats(missing=self.nulls)
        else:
            self.categories = _CategoryStats(missing=self.nulls)
        self.nulls = 0

    def merge(self, other: _ColumnState, name: str) -> None:
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
    def from_state(cls, s: Mapping[str, Any]) -> _ColumnState:
        return cls(
            s["role"],
            s["kind"],
            int(s["nulls"]),
            None if s["numeric"] is None else _NumericStats.from_state(s["numeric"]),
            None if s["categories"] is None else _CategoryStats.from_state(s["categories"]),
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
class _NumericPlan:
    """What pass 2 needs of one numeric column, fixed by the merged pass 1.

    ``bounds``: the upper boundary of the sketch bucket holding the rank of each inner
    edge. Pass 2 bins every value by ``searchsorted(bounds, x, side="left")`` and keeps
    the largest value of each bin below the last: that value becomes the edge. So every
    edge is a data value in (or just below) the decile's bucket, and
    ``searchsorted(edges, x, side="left")`` puts every row in the bin it was counted in.
    """

    bounds: FloatArray
    mean: float


class ProfileBuilder:
    """Build a :class:`~modelmon.profile.ReferenceProfile` from batches, mergeably.

    Pass 1: :meth:`update` with every batch (on any number of builders, then
    :meth:`merge` them). ``second_pass()`` returns the pass-2 builder (copy it to each
    partition); :meth:`update` it with the same rows, :meth:`merge`, :meth:`finish`.
    :meth:`state` / :meth:`from_state` move a builder between processes as plain data.

    Keyword arguments are those of :class:`ProfileSpec`.
    """

    def __init__(
        self, spec: ProfileSpec | None = None, *, threads: int = 1, **options: Any
    ) -> None:
        if spec is not None and options:
            raise ConfigurationError("pass either a ProfileSpec or keyword options, not both")
        if spec is None:
            for key in ("features", "exclude", "categorical"):
                if options.get(key) is not None:
                    options[key] = _names(options[key], key)
            spec = ProfileSpec(**options)
        self.spec = spec
        self.stage = 1
        self.rows = 0
        self.columns: dict[str, _ColumnState] = {}
        # pass 2 only:
        self._plans: dict[str, _NumericPlan] = {}
        self._bins: dict[str, IntArray] = {}
        self._squares: dict[str, int] = {}
        self._edge_max: dict[str, FloatArray] = {}
        self._outliers: OutlierCounts | None = None
        self.threads = int(threads)
        self._pool: Any = None

    # --- pass 1 and 2 -------------------------------------------------------------------
    def update(self, batch: Any) -> None:
        """Add one batch of rows (see :func:`batch_columns` for the accepted types)."""
        cols = batch_columns(batch)
        roles = self.spec.roles(list(cols))
        n = _n_rows(cols)
        if self.stage == 1:
            self._check_columns(roles)
            self._each(lambda name: self._update_column(name, roles[name], cols[name]), roles)
        else:
            if list(roles) != list(self.columns):
                raise ConfigurationError(
                    f"pass 2 sees columns {list(roles)}, pass 1 saw {list(self.columns)}"
                )
            plans = self._plans
            self._each(lambda name: self._count_column(name, plans[name], cols[name]), plans)
            if self._outliers is not None and self._outliers.joint:
                joint = self._outliers.joint
                self._outliers.add_rows({n: self._numeric_values(n, cols[n]) for n in joint})
        self.rows += n

    def _each(self, work: Callable[[str], None], names_: Iterable[str]) -> None:
        """Run ``work`` on every column; on ``threads`` threads (numpy releases the GIL)."""
        if self.threads <= 1:
            for name in names_:
                work(name)
            return
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="modelmon-profile")
        list(self._pool.map(work, list(names_)))  # each column's state is its own: no lock

    def _check_columns(self, roles: Mapping[str, Role]) -> None:
        if not self.columns:
            self.columns = {name: _ColumnState(role) for name, role in roles.items()}
        elif list(roles) != list(self.columns):
            raise ConfigurationError(
                f"batch columns {list(roles)} differ from earlier batches' {list(self.columns)}"
            )

    def _update_column(self, name: str, role: Role, col: Column) -> None:
        state = self.columns[name]
        if col.arrow is not None and role == "feature":  # strings: Arrow counts them
            if col.arrow.null_count == col.size and name not in self.spec.categorical:
                state._add_nulls(col.size)
                return
            state.set_kind("categorical", name)
            assert state.categories is not None
            state.categories.add_arrow(col.arrow)
            return
        kind, values = self._kind_and_values(name, role, col)
        if kind is None:
            state._add_nulls(values.size)
            return
        state.set_kind(kind, name)
        if kind == "numeric":
            assert state.numeric is not None
            state.numeric.add(values)
        else:
            assert state.categories is not None
            state.categories.add(values)

    def _kind_and_values(
        self, name: str, role: Role, col: Column
    ) -> tuple[Kind | None, npt.NDArray[Any]]:
        """How this column is profiled, and its values in that form."""
        v, dtype = col.values, col.dtype
        if role == "confidence":
            return "numeric", _as_float(name, v)
        if role == "prediction":
            categorical = (
                dtype in "ib" and self.spec.task != "regression"
            ) or self.spec.task == "classification"
        else:
            categorical = name in self.spec.categorical or dtype == "b"
        if v.dtype.kind == "f":
            if not categorical:
                return "numeric", v
            labels = [None if math.isnan(x) else _num_str(x) for x in v.tolist()]
            return "categorical", np.asarray(labels, dtype=object)
        if not categorical and dtype == "O":
            present = v[np.asarray(v != None, dtype=bool)]  # noqa: E711
            if present.size == 0:
                return None, v
        if role == "prediction" and dtype == "b":
            labels = [None if x is None else ("1" if x else "0") for x in v.tolist()]
            return "categorical", np.asarray(labels, dtype=object)
        return "categorical", v

    def _count_column(self, name: str, plan: _NumericPlan, col: Column) -> None:
        kind, values = self._kind_and_values(name, self.columns[name].role, col)
        if kind is None:
            return
        valid = values[np.isfinite(values)]
        if valid.size == 0:
            return
        k = plan.bounds.size
        idx = np.searchsorted(plan.bounds, valid, side="left")
        self._bins[name] += np.bincount(idx, minlength=k + 1)
        if k:
            tops = np.full(k + 1, -math.inf)
            np.maximum.at(tops, idx, valid)
            np.maximum(self._edge_max[name], tops[:k], out=self._edge_max[name])
        d = valid - plan.mean
        self._squares[name] += exact_sum(d * d)
        if self._outliers is not None:
            self._outliers.count(name, valid)

    def _numeric_values(self, name: str, col: Column) -> FloatArray:
        kind, values = self._kind_and_values(name, self.columns[name].role, col)
        return values if kind == "numeric" else np.full(col.size, math.nan)

    # --- merging ------------------------------------------------------------------------
    def merge(self, other: ProfileBuilder) -> ProfileBuilder:
        """Add ``other`` (same spec and stage; in pass 2, same plan) into this builder."""
        if other.spec != self.spec or other.stage != self.stage:
            raise ConfigurationError("cannot merge profile builders of different specs or passes")
        if self.stage == 2 and self.plan_digest() != other.plan_digest():
            raise ConfigurationError("cannot merge pass-2 builders made from different pass 1s")
        if not other.columns:
            return self
        if not self.columns:
            self.columns = {n: _ColumnState(c.role) for n, c in other.columns.items()}
        if list(other.columns) != list(self.columns):
            raise ConfigurationError(
                f"cannot merge builders of columns {list(self.columns)} and {list(other.columns)}"
            )
        self.rows += other.rows
        if self.stage == 1:
            for name, state in other.columns.items():
                self.columns[name].merge(state, name)
        else:
            for name in self._plans:
                self._bins[name] += other._bins[name]
                self._squares[name] += other._squares[name]
                np.maximum(self._edge_max[name], other._edge_max[name], out=self._edge_max[name])
            if self._outliers is not None and other._outliers is not None:
                self._outliers.merge(other._outliers)
        return self

    # --- between the passes -------------------------------------------------------------
    def second_pass(self) -> ProfileBuilder:
        """The empty pass-2 builder for this (merged) pass 1."""
        if self.stage != 1:
            raise ConfigurationError("second_pass() is called on a pass-1 builder")
        out = ProfileBuilder(self.spec, threads=self.threads)
        out._pool, self._pool = self._pool, None  # the threads move on to pass 2
        out.stage = 2
        out.columns = {n: _ColumnState.from_state(c.state()) for n, c in self.columns.items()}
        for name, col in out.columns.items():
            if col.kind == "numeric" and col.numeric is not None and col.numeric.count:
                plan = _plan(col.numeric, self.spec.bins)
                out._plans[name] = plan
                out._bins[name] = np.zeros(plan.bounds.size + 1, dtype=np.int64)
                out._edge_max[name] = np.full(plan.bounds.size, -math.inf)
                out._squares[name] = 0
        out._outliers = _outlier_plan(out.columns, out._plans)
        return out

    def plan_digest(self) -> str:
        """A digest of the pass-1 result a pass-2 builder counts against."""
        first = {n: c.state() for n, c in self.columns.items()}
        text = json.dumps(_jsonable(first), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- the result ---------------------------------------------------------------------
    def finish(self, created_at: float | None = None) -> ReferenceProfile:
        """The profile (pass 2, after every batch was counted and merged)."""
        if self.stage != 2:
            raise ConfigurationError("finish() needs the pass-2 builder (see second_pass())")
        if not self.columns:
            raise ConfigurationError("no rows were profiled")
        features: dict[str, FeatureProfile] = {}
        outputs: dict[str, FeatureProfile] = {}
        for name, col in self.columns.items():
            target = features if col.role == "feature" else outputs
            key = {"feature": name, "prediction": PREDICTION, "confidence": CONFIDENCE}[col.role]
            target[key] = self._column_profile(key, name, col)
        ordered = {k: outputs[k] for k in (PREDICTION, CONFIDENCE) if k in outputs}
        when = time.time() if created_at is None else float(created_at)
        joint = self._outliers.joint_reference() if self._outliers is not None else None
        return ReferenceProfile(features, ordered, when, outliers=OutlierReference(joint))

    def _column_profile(self, key: str, name: str, col: _ColumnState) -> FeatureProfile:
        if col.kind == "categorical" and col.categories is not None:
            cats = col.categories
            names_ = np.asarray(sorted(cats.counts), dtype=str)
            counts = np.asarray([cats.counts[c] for c in names_.tolist()], dtype=np.int64)
            return categorical_from_counts(
                key, names_, counts, cats.missing, self.spec.max_categories
            )
        stats = col.numeric if col.numeric is not None else _NumericStats(missing=col.nulls)
        total = stats.count + stats.missing
        missing_share = stats.missing / total if total else 0.0
        if stats.count == 0:
            return FeatureProfile(key, "numeric", (1.0,), 0, missing_share, (), quantiles=())
        tops = self._edge_max[name]
        keep = tops > -math.inf  # an empty bin (rounding at a bucket boundary) merges up
        k = tops.size
        counts = np.concatenate([self._bins[name][:k][keep], self._bins[name][k:]])
        n = stats.count
        denominator = n << _SCALE
        quantiles = _quantile_summary(stats)
        fence = self._outliers.fence(name, n) if self._outliers is not None else None
        return FeatureProfile(
            key,
            "numeric",
            shares=tuple(float(c) for c in counts / n),
            count=n,
            missing_share=float(missing_share),
            edges=tuple(float(e) for e in tops[keep]),
            mean=self._plans[name].mean,
            std=math.sqrt(_ratio(self._squares[name], denominator)),
            min=stats.min,
            max=stats.max,
            quantiles=tuple(float(q) for q in quantiles),
            fence=fence,
        )

    def close(self) -> None:
        """Stop the worker threads (``threads`` > 1), if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- moving builders between processes ----------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain data (str, int, float, lists, dicts, numeric numpy arrays)."""
        return {
            "format": STATE_FORMAT,
            "spec": self.spec.to_json(),
            "stage": self.stage,
            "rows": self.rows,
            "columns": [[n, c.state()] for n, c in self.columns.items()],
            "bins": [[n, b] for n, b in self._bins.items()],
            "squares": [[n, str(s)] for n, s in self._squares.items()],
            "edge_max": [[n, e] for n, e in self._edge_max.items()],
            "plans": [[n, p.bounds, repr(p.mean)] for n, p in self._plans.items()],
            "outliers": None if self._outliers is None else self._outliers.state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProfileBuilder:
        """Inverse of :meth:`state`."""
        if state.get("format") != STATE_FORMAT:
            raise ConfigurationError("not a modelmon profile builder state")
        out = cls(ProfileSpec.from_json(state["spec"]))
        out.stage = int(state["stage"])
        out.rows = int(state["rows"])
        out.columns = {str(n): _ColumnState.from_state(s) for n, s in state["columns"]}
        if out.stage == 2:
            out._plans = {  # as the driver fixed them: never recomputed elsewhere
                str(n): _NumericPlan(np.asarray(b, dtype=np.float64).copy(), float(m))
                for n, b, m in state["plans"]
            }
            out._bins = {str(n): np.asarray(b, dtype=np.int64).copy() for n, b in state["bins"]}
            out._squares = {str(n): int(s) for n, s in state["squares"]}
            saved = state.get("outliers")  # absent in states written before outliers
            out._outliers = None if saved is None else OutlierCounts.from_state(saved)
            out._edge_max = {
                str(n): np.asarray(e, dtype=np.float64).copy() for n, e in state["edge_max"]
            }
        return out


def _plan(stats: _NumericStats, bins: int) -> _NumericPlan:
    """Edge buckets at the sketch's ranks ``floor(q * (n - 1))``, as ``from_data``'s."""
    probs = np.arange(1, bins) / bins
    ordinals, counts, _ = stats.sketch.buckets()
    cum = np.cumsum(counts)
    pos = np.searchsorted(cum, np.floor(probs * (int(cum[-1]) - 1)), side="right")
    edge_ordinals = np.unique(ordinals[np.minimum(pos, ordinals.size - 1)])
    bounds = _upper_bounds(stats.sketch, edge_ordinals)
    return _NumericPlan(bounds, _ratio(stats.total, stats.count << _SCALE))


def _upper_bounds(sketch: LogSketch, ordinals: IntArray) -> FloatArray:
    """The upper boundary of each bucket (``gamma**k`` above 0, ``-gamma**(k-1)`` below)."""
    o = ordinals.astype(np.int64)
    key = np.abs(o) - _ORD
    with np.errstate(over="ignore"):
        pos = np.power(sketch.gamma, key.astype(np.float64))
        neg = -np.power(sketch.gamma, (key - 1).astype(np.float64))
    out = np.where(o > 0, pos, np.where(o < 0, neg, 0.0))
    return np.asarray(np.unique(out), dtype=np.float64)


def _quantile_summary(stats: _NumericStats) -> FloatArray:
    """The profile's quantile summary of a numeric column (ends: the exact min and max)."""
    quantiles = _clip(stats.sketch.quantiles(np.asarray(REFERENCE_QUANTILE_PROBS)), stats)
    quantiles[0], quantiles[-1] = stats.min, stats.max
    return quantiles


def _outlier_plan(columns: Mapping[str, _ColumnState], plans: Mapping[str, _NumericPlan]) -> Any:
    """Fences from the pass-1 quantiles; the first numeric features with a spread, centred
    on their pass-1 means, for the Mahalanobis moments (see :mod:`modelmon.outlier_moments`).
    """
    stats = {n: c.numeric for n, c in columns.items() if n in plans and c.numeric is not None}
    quantiles = {n: tuple(_quantile_summary(s).tolist()) for n, s in stats.items()}
    spread = [n for n, s in stats.items() if columns[n].role == "feature" and s.max > s.min]
    joint = spread[:MAX_JOINT_FEATURES]
    return OutlierCounts.plan(quantiles, joint, [plans[n].mean for n in joint])


def _clip(values: FloatArray, stats: _NumericStats) -> FloatArray:
    return np.asarray(np.clip(values, stats.min, stats.max), dtype=np.float64)


def _as_float(name: str, v: npt.NDArray[Any]) -> FloatArray:
    if v.dtype.kind == "f":
        return v
    try:
        return np.asarray([math.nan if x is None else float(x) for x in v.tolist()])
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"column {name!r} must be numeric: {exc}") from exc


def _n_rows(cols: Mapping[str, Column]) -> int:
    sizes = {c.size for c in cols.values()}
    if len(sizes) > 1:
        raise ConfigurationError(f"columns of one batch differ in length: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigurationError(f"{what}= takes a list of column names, got the string {value!r}")
    return tuple(str(v) for v in value)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def build_profile(
    batches: Callable[[], Iterable[Any]],
    spec: ProfileSpec | None = None,
    *,
    created_at: float | None = None,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
    **options: Any,
) -> ReferenceProfile:
    """Both passes on one machine: ``batches()`` must yield the same rows each time.

    ``progress(rows)`` is called after each batch of each pass (for progress bars);
    ``threads`` > 1 works on that many columns at once.

    >>> import numpy as np
    >>> data = [{"x": np.arange(500.0)}, {"x": np.arange(500.0, 1000.0)}]
    >>> build_profile(lambda: data, created_at=0.0).features["x"].count
    1000
    """
    builder = ProfileBuilder(spec, threads=threads, **options)
    for stage in (1, 2):
        if stage == 2:
            builder = builder.second_pass()
        for batch in batches():
            before = builder.rows
            builder.update(batch)
            if progress is not None:
                progress(builder.rows - before)
    try:
        return builder.finish(created_at)
    finally:
        builder.close()


def merge_all(builders: Sequence[ProfileBuilder]) -> ProfileBuilder:
    """Merge builders pairwise, as a balanced tree (the result does not depend on order)."""
    if not builders:
        raise ConfigurationError("nothing to merge: no partition produced a builder")
    level = list(builders)
    while len(level) > 1:
        nxt = [level[i].merge(level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
