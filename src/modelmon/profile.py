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

import itertools
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import names
from .batch import FeatureFrame, FloatArray, IntArray, ObjArray, OutputFrame
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ConfigurationError, ReferenceError_
from .extract import bounded_category
from .outliers import (
    Fence,
    OutlierFormatError,
    OutlierReference,
    fence_from_data,
    fences_of,
    joint_of_columns,
    read_fence,
    read_outliers,
)
from .sketches.ddsketch import LogSketch

FORMAT_VERSION = 2
#: Profile format versions this modelmon reads.
READABLE_VERSIONS = (1, 2)
#: Categories kept for the drift test (the exported bins stay at ``max_categories``).
MAX_TEST_CATEGORIES = 1000
#: Caps checked at load: numeric bins, exported categories, test categories, name length.
MAX_BINS = 1000
MAX_CATEGORIES = 1000
MAX_NAME_CHARS = 1000
MAX_FEATURES_IN_PROFILE = 10_000
MAX_PROFILE_CHARS = 64 * 1024 * 1024
#: The reference sketch: relative accuracy and bucket cap (as the live sketch's).
REFERENCE_SKETCH_ACCURACY = 0.01
MAX_SKETCH_BUCKETS = 2048
PREDICTION = "prediction"
CONFIDENCE = "confidence"
Kind = Literal["numeric", "categorical"]


class ProfileFormatError(ReferenceError_):
    """A profile file is unreadable, invalid, or of an unknown ``format_version``."""


@dataclass(frozen=True)
class FeatureProfile:
    """The reference summary of one feature or output (see the module doc)."""

    name: str
    kind: Kind
    shares: tuple[float, ...]
    count: int
    missing_share: float = 0.0
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: tuple[float, ...] = ()
    full_categories: tuple[str, ...] = ()
    full_counts: tuple[int, ...] = ()
    sketch_values: tuple[float, ...] = ()
    sketch_counts: tuple[int, ...] = ()
    fence: Fence | None = None  # outlier fences (see modelmon.outliers); None: not stored

    @property
    def outlier_fence(self) -> Fence | None:
        """The stored fence, else one from the quantiles (reference ratio unknown)."""
        if self.fence is not None or self.kind != "numeric" or not self.quantiles:
            return self.fence
        return Fence(*fences_of(self.quantiles))

    @property
    def reference_rows(self) -> int:
        """The reference's non-missing rows (``count``)."""
        return self.count

    @property
    def reference_total(self) -> float:
        """The reference's rows, missing or not (from ``count`` and ``missing_share``)."""
        if self.missing_share >= 1.0:
            return float(self.count)
        return self.count / (1.0 - self.missing_share)

    @property
    def test_categories(self) -> tuple[str, ...]:
        """Categories of the drift test (``__other__`` last); the exported ones if unset."""
        return self.full_categories or self.categories

    @property
    def test_shares(self) -> tuple[float, ...]:
        """Reference shares over :attr:`test_categories`."""
        if not self.full_counts:
            return self.shares
        total = sum(self.full_counts)
        return tuple(c / total if total else 0.0 for c in self.full_counts)

    @property
    def n_bins(self) -> int:
        return len(self.shares)

    @property
    def median(self) -> float:
        """Reference median (from the quantile summary); 0 for categorical features."""
        if not self.quantiles:
            return 0.0
        return float(np.interp(0.5, REFERENCE_QUANTILE_PROBS, self.quantiles))

    @property
    def sketch_center(self) -> float:
        """The value the sketches hold distances from (see :func:`sketch_center`)."""
        if not self.quantiles:
            return 0.0
        q = np.interp((0.01, 0.5, 0.99), REFERENCE_QUANTILE_PROBS, self.quantiles)
        return sketch_center(float(q[0]), float(q[1]), float(q[2]))

    @cached_property
    def edges_array(self) -> FloatArray:
        return np.asarray(self.edges, dtype=np.float64)

    @cached_property
    def shares_array(self) -> FloatArray:
        return np.asarray(self.shares, dtype=np.float64)

    @cached_property
    def _sorted_categories(self) -> tuple[npt.NDArray[np.str_], IntArray]:
        cats = np.asarray(self.test_categories[:-1], dtype=str)
        order = np.argsort(cats, kind="stable")
        return cats[order], order.astype(np.int64)

    def test_index(self, values: npt.ArrayLike) -> IntArray:
        """Test cell of each categorical value (``__other__`` last; ``None``: -1)."""
        return self._category_index(np.asarray(values, dtype=object), len(self.test_categories))

    def bins_of_test_cells(self, cells: IntArray) -> IntArray:
        """Exported bin of each test cell (the exported categories come first)."""
        top = len(self.categories) - 1
        return np.where((cells >= 0) & (cells < top), cells, np.where(cells < 0, -1, top))

    def bin_index(self, values: npt.ArrayLike) -> IntArray:
        """Bin of each value: int64 in ``0 .. n_bins - 1``.

        Numeric: a float array; NaN is the caller's job (it lands in the last bin).
        Categorical: an array of ``str``; unknown values get the ``__other__`` index,
        ``None`` gets -1.
        """
        if self.kind == "numeric":
            v = np.asarray(values, dtype=np.float64)
            return np.searchsorted(self.edges_array, v, side="left").astype(np.int64)
        idx = self._category_index(np.asarray(values, dtype=object), len(self.test_categories))
        return self.bins_of_test_cells(idx)

    @cached_property
    def _category_table(self) -> dict[Any, int]:
        """Known test category -> cell (the first of duplicates), ``None`` -> -1 (missing)."""
        table: dict[Any, int] = {None: -1}
        for i, c in enumerate(self.test_categories[:-1]):
            table.setdefault(c, i)
        return table

    def _category_index(self, values: ObjArray, n_cells: int) -> IntArray:
        other = n_cells - 1
        items = values.reshape(-1).tolist()
        if set(map(type, items)) <= _TEXT_OR_NONE:  # the fold's case: one dict lookup each
            get = self._category_table.get
            found = np.fromiter(map(get, items, itertools.repeat(other)), np.int64, len(items))
            return found.reshape(values.shape)
        missing = _none_mask(values)
        text = np.where(missing, "", values).astype(str)
        cats, order = self._sorted_categories
        if cats.size == 0:
            idx = np.full(text.shape, other, dtype=np.int64)
        else:
            pos = np.minimum(np.searchsorted(cats, text), cats.size - 1)
            idx = np.where(cats[pos] == text, order[pos], other).astype(np.int64)
        idx[missing] = -1
        return idx

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "shares": list(self.shares),
            "count": self.count,
            "missing_share": self.missing_share,
        }
        if self.kind == "numeric":
            out.update(
                edges=list(self.edges),
                mean=self.mean,
                std=self.std,
                min=self.min,
                max=self.max,
                quantiles=list(self.quantiles),
                quantile_probs=list(REFERENCE_QUANTILE_PROBS),
            )
            if self.sketch_values:
                out.update(
                    sketch_values=list(self.sketch_values), sketch_counts=list(self.sketch_counts)
                )
            if self.fence is not None:
                out["fence"] = self.fence.to_json()
        else:
            out["categories"] = list(self.categories)
            if self.full_categories:
                out["full_categories"] = list(self.full_categories)
                out["full_counts"] = list(self.full_counts)
        return out

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> FeatureProfile:
        """Read and validate one member (raises :class:`ProfileFormatError` naming the field)."""
        return _read_member(name, d)


_TEXT_OR_NONE = frozenset({str, np.str_, type(None)})


def _none_mask(values: ObjArray) -> npt.NDArray[np.bool_]:
    """Where an object array holds ``None`` (elementwise, vectorised)."""
    return np.asarray(values == None, dtype=bool)  # noqa: E711 - elementwise comparison


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
        return json.dumps(self.to_json(), sort_keys=True, indent=2, allow_nan=False) + "\n"

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


# --- validation at load ------------------------------------------------------------------


def _fail(member: str, field_: str, why: str) -> ProfileFormatError:
    return ProfileFormatError(f"invalid reference profile: {member} field {field_!r}: {why}")


def _read_members(d: Mapping[str, Any], key: str, order_key: str) -> dict[str, FeatureProfile]:
    members, order = d.get(key), d.get(order_key)
    if not isinstance(members, dict) or not isinstance(order, list):
        raise ProfileFormatError(
            f"invalid reference profile: field {key!r} must be an object and {order_key!r} a list"
        )
    if len(order) > MAX_FEATURES_IN_PROFILE:
        raise ProfileFormatError(
            f"invalid reference profile: field {order_key!r} lists {len(order)} members "
            f"(at most {MAX_FEATURES_IN_PROFILE})"
        )
    if set(order) != set(members) or len(set(order)) != len(order):
        raise ProfileFormatError(
            f"invalid reference profile: field {order_key!r} must list each of {key!r} once"
        )
    out: dict[str, FeatureProfile] = {}
    for n in order:
        if not isinstance(n, str) or not n or len(n) > MAX_NAME_CHARS:
            raise ProfileFormatError(
                f"invalid reference profile: field {order_key!r}: a member name must be a "
                f"non-empty string of at most {MAX_NAME_CHARS} characters"
            )
        if not isinstance(members[n], Mapping):
            raise _fail(f"{key[:-1]} {n!r}", key, "must be an object")
        out[n] = _read_member(n, members[n])
    return out


def _finite(x: Any, field_: str, member: str = "profile") -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _fail(member, field_, f"must be a number, got {type(x).__name__}")
    try:
        v = float(x)
    except OverflowError as exc:
        raise _fail(member, field_, "number out of range") from exc
    if not math.isfinite(v):
        raise _fail(member, field_, f"must be finite, got {v!r}")
    return v


def _floats(x: Any, field_: str, member: str, cap: int) -> tuple[float, ...]:
    if not isinstance(x, list):
        raise _fail(member, field_, "must be a list")
    if len(x) > cap:
        raise _fail(member, field_, f"has {len(x)} entries (at most {cap})")
    return tuple(_finite(v, field_, member) for v in x)


def _opt_finite(x: Any, field_: str, member: str) -> float | None:
    return None if x is None else _finite(x, field_, member)


def _count(x: Any, field_: str, member: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise _fail(member, field_, f"must be a non-negative integer, got {x!r}")
    return x


def _strings(x: Any, field_: str, member: str, cap: int) -> tuple[str, ...]:
    if not isinstance(x, list):
        raise _fail(member, field_, "must be a list")
    if len(x) > cap:
        raise _fail(member, field_, f"has {len(x)} entries (at most {cap})")
    for v in x:
        if not isinstance(v, str) or len(v) > MAX_NAME_CHARS:
            raise _fail(
                member, field_, f"entries must be strings of at most {MAX_NAME_CHARS} chars"
            )
    if len(set(x)) != len(x):
        raise _fail(member, field_, "has duplicate entries")
    if not x or x[-1] != names.POOLED or names.POOLED in x[:-1]:
        raise _fail(member, field_, f"must end with {names.POOLED!r} (and hold it once)")
    return tuple(x)


def _check_shares(shares: tuple[float, ...], member: str, n: int) -> None:
    if len(shares) != n:
        raise _fail(member, "shares", f"has {len(shares)} entries, expected {n}")
    if any(s < 0 or s > 1 for s in shares):
        raise _fail(member, "shares", "entries must lie in [0, 1]")
    total = sum(shares)
    if shares and abs(total - 1.0) > 1e-6 and total != 0.0:
        raise _fail(member, "shares", f"must sum to 1, sum to {total!r}")


def _read_member(name: str, d: Mapping[str, Any]) -> FeatureProfile:
    member = f"member {name!r}"
    kind = d.get("kind")
    if kind not in ("numeric", "categorical"):
        raise ProfileFormatError(f"feature {name!r}: unknown kind {kind!r}")
    count = _count(d.get("count"), "count", member)
    missing_share = _finite(d.get("missing_share"), "missing_share", member)
    if not 0.0 <= missing_share <= 1.0:
        raise _fail(member, "missing_share", f"must lie in [0, 1], got {missing_share!r}")
    if kind == "categorical":
        categories = _strings(d.get("categories"), "categories", member, MAX_CATEGORIES + 1)
        shares = _floats(d.get("shares"), "shares", member, MAX_CATEGORIES + 1)
        _check_shares(shares, member, len(categories))
        full: tuple[str, ...] = ()
        full_counts: tuple[int, ...] = ()
        if "full_categories" in d:
            full = _strings(
                d["full_categories"], "full_categories", member, MAX_TEST_CATEGORIES + 1
            )
            raw = d.get("full_counts")
            if not isinstance(raw, list) or len(raw) != len(full):
                raise _fail(member, "full_counts", f"must be a list of {len(full)} counts")
            full_counts = tuple(_count(c, "full_counts", member) for c in raw)
            if full[: len(categories) - 1] != categories[:-1]:
                raise _fail(member, "full_categories", "must start with the exported categories")
            if sum(full_counts) != count:
                raise _fail(member, "full_counts", f"must sum to count ({count})")
        return FeatureProfile(
            name, "categorical", shares, count, missing_share, categories=categories,
            full_categories=full, full_counts=full_counts,
        )  # fmt: skip
    edges = _floats(d.get("edges"), "edges", member, MAX_BINS - 1)
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise _fail(member, "edges", "must be strictly increasing")
    shares = _floats(d.get("shares"), "shares", member, MAX_BINS)
    _check_shares(shares, member, len(edges) + 1)
    probs = d.get("quantile_probs")
    if not isinstance(probs, list) or tuple(probs) != REFERENCE_QUANTILE_PROBS:
        raise ProfileFormatError(f"feature {name!r}: unexpected quantile probabilities")
    quantiles = _floats(d.get("quantiles"), "quantiles", member, len(REFERENCE_QUANTILE_PROBS))
    if quantiles and len(quantiles) != len(REFERENCE_QUANTILE_PROBS):
        raise _fail(member, "quantiles", f"must hold {len(REFERENCE_QUANTILE_PROBS)} values")
    if any(b < a for a, b in itertools.pairwise(quantiles)):
        raise _fail(member, "quantiles", "must be non-decreasing")
    mean, std, lo, hi = (_opt_finite(d.get(k), k, member) for k in ("mean", "std", "min", "max"))
    if std is not None and std < 0:
        raise _fail(member, "std", "must be >= 0")
    sketch_values: tuple[float, ...] = ()
    sketch_counts: tuple[int, ...] = ()
    if "sketch_values" in d:
        cap = 2 * MAX_SKETCH_BUCKETS + 1
        sketch_values = _floats(d["sketch_values"], "sketch_values", member, cap)
        if any(b <= a for a, b in itertools.pairwise(sketch_values)):
            raise _fail(member, "sketch_values", "must be strictly increasing")
        raw = d.get("sketch_counts")
        if not isinstance(raw, list) or len(raw) != len(sketch_values):
            raise _fail(member, "sketch_counts", f"must be a list of {len(sketch_values)} counts")
        sketch_counts = tuple(_count(c, "sketch_counts", member) for c in raw)
        if sum(sketch_counts) != count:
            raise _fail(member, "sketch_counts", f"must sum to count ({count})")
    fence = read_fence(d["fence"], member) if "fence" in d else None
    return FeatureProfile(
        name, "numeric", shares, count, missing_share, edges,
        mean=mean, std=std, min=lo, max=hi, quantiles=quantiles,
        sketch_values=sketch_values, sketch_counts=sketch_counts, fence=fence,
    )  # fmt: skip


# --- columns ---------------------------------------------------------------------------


def _check(bins: int, max_categories: int) -> None:
    if bins < 2:
        raise ConfigurationError(f"bins must be >= 2, got {bins!r}")
    if not 1 <= max_categories <= MAX_CATEGORIES:
        raise ConfigurationError(
            f"max_categories must be in [1, {MAX_CATEGORIES}], got {max_categories!r}"
        )
    if bins > MAX_BINS:
        raise ConfigurationError(f"bins must be <= {MAX_BINS}, got {bins!r}")


def _columns(X: Any, feature_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Column name -> 1-D array (float for numeric dtypes, object otherwise)."""
    module = type(X).__module__
    if module.startswith("pandas") and type(X).__name__ == "DataFrame":
        cols = {str(c): _pandas_column(X[c]) for c in X.columns}
        return _rename(cols, feature_names)
    if isinstance(X, Sequence) and X and isinstance(X[0], Mapping):
        keys: dict[str, Any] = {}  # name -> the key as found (``0`` for ``{0: 1.5}``)
        for row in X:
            keys.update((str(k), k) for k in row if str(k) not in keys)
        cols = {n: _object_column([row.get(k) for row in X]) for n, k in keys.items()}
        return _rename(cols, feature_names)
    a = np.asarray(X)
    if a.dtype.kind in "US" and not isinstance(X, np.ndarray):
        # Rows mixing numbers and strings: numpy made every value a string; keep each
        # value's own type, so numeric columns stay numeric.
        a = np.asarray(X, dtype=object)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ConfigurationError(f"reference data must be 2-D with rows, got shape {a.shape}")
    names_ = (
        list(feature_names) if feature_names is not None else [f"f{i}" for i in range(a.shape[1])]
    )
    if len(names_) != a.shape[1]:
        raise ConfigurationError(f"{len(names_)} feature names for {a.shape[1]} columns")
    if a.dtype.kind in "fiu":
        return {str(n): a[:, j].astype(np.float64) for j, n in enumerate(names_)}
    return {str(n): _object_column(a[:, j].tolist()) for j, n in enumerate(names_)}


def _rename(
    cols: dict[str, np.ndarray], feature_names: Sequence[str] | None
) -> dict[str, np.ndarray]:
    if feature_names is None:
        return cols
    if len(feature_names) != len(cols):
        raise ConfigurationError(f"{len(feature_names)} feature names for {len(cols)} columns")
    return {str(n): v for n, v in zip(feature_names, cols.values(), strict=True)}


def _pandas_column(series: Any) -> np.ndarray:
    if series.dtype.kind in "fiu":
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return _object_column(series.tolist())


def _object_column(values: list[Any]) -> np.ndarray:
    """A float array when every present value is a real number, else an object array."""
    present = [v for v in values if not _is_missing(v)]
    if present and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in present
    ):
        return np.asarray([math.nan if _is_missing(v) else float(v) for v in values])
    return np.asarray([None if _is_missing(v) else v for v in values], dtype=object)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _profile_column(
    name: str, values: np.ndarray, bins: int, max_categories: int, categorical: bool
) -> FeatureProfile:
    if values.dtype.kind == "f" and not categorical:
        return _numeric(name, values, bins)
    if values.dtype.kind == "f":  # a numeric column named in categorical=
        obj = np.asarray(
            [None if math.isnan(v) else _num_str(v) for v in values.tolist()], dtype=object
        )
        return _categorical(name, obj, max_categories)
    obj = np.asarray([None if v is None else str(v) for v in values.tolist()], dtype=object)
    return _categorical(name, obj, max_categories)


def _num_str(v: float) -> str:
    """Integers print as ints ("3", as ``str`` of an int feature value would), else repr."""
    return str(int(v)) if v.is_integer() else repr(v)


def _numeric(
    name: str, values: npt.ArrayLike, bins: int, missing: int | None = None
) -> FeatureProfile:
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    valid = v[finite]
    n_missing = int((~finite).sum()) if missing is None else missing
    total = valid.size + n_missing
    missing_share = n_missing / total if total else 0.0
    if valid.size == 0:
        return FeatureProfile(name, "numeric", (1.0,), 0, missing_share, (), quantiles=())
    probs = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(valid, probs, method="lower"))
    counts = np.bincount(np.searchsorted(edges, valid, side="left"), minlength=edges.size + 1)
    sketch_values, sketch_counts = reference_sketch(valid)
    quantiles = tuple(float(q) for q in np.quantile(valid, REFERENCE_QUANTILE_PROBS))
    return FeatureProfile(
        name,
        "numeric",
        shares=tuple(float(c) for c in counts / valid.size),
        count=int(valid.size),
        missing_share=float(missing_share),
        edges=tuple(float(e) for e in edges),
        mean=float(valid.mean()),
        std=float(valid.std()),
        min=float(valid.min()),
        max=float(valid.max()),
        quantiles=quantiles,
        sketch_values=sketch_values,
        sketch_counts=sketch_counts,
        fence=fence_from_data(valid, quantiles),
    )


def sketch_center(p01: float, median: float, p99: float) -> float:
    """Where a feature's sketches are centred: the median or 0.

    A log sketch of ``x - c`` is accurate to 1% of ``|x - c|``. The median keeps KS and
    Wasserstein sharp for a feature far from 0 with a narrow spread (1000 +- 5), and then
    ``|x - median| <= |x|`` over the bulk, so quantiles are also within 1% of the value.
    When the bulk [p01, p99] reaches below half the median (or crosses 0), as for an
    exponential or lognormal feature, centring at the median would make the error 1% of
    the distance to the median (6-60% of a low quantile's value), so the centre is 0.
    """
    if median > 0 and p01 >= median / 2:
        return median
    if median < 0 and p99 <= median / 2:
        return median
    return 0.0


def reference_sketch(valid: FloatArray) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The reference distribution with the live sketch's guarantee (relative accuracy 1%
    of the distance to :func:`sketch_center`): each non-empty bucket's representative
    value (centre added back) and count. Wasserstein and KS from profiles then follow the
    raw data on heavy tails, where a quantile summary interpolates linearly into the
    maximum.
    """
    p01, median, p99 = (float(q) for q in np.quantile(valid, (0.01, 0.5, 0.99)))
    center = sketch_center(p01, median, p99)
    sketch = LogSketch(REFERENCE_SKETCH_ACCURACY, max_buckets=MAX_SKETCH_BUCKETS)
    sketch.add(valid - center)
    _, counts, values = sketch.buckets()
    return tuple(float(v) for v in values + center), tuple(int(c) for c in counts)


def _categorical(name: str, values: ObjArray, max_categories: int) -> FeatureProfile:
    missing = _none_mask(values)
    # Values bounded as live traffic's are (see extract.bounded_category), so they match.
    present = np.array([bounded_category(v) for v in values[~missing]], dtype=object).astype(str)
    uniq, counts = np.unique(present, return_counts=True)  # sorted by name
    return categorical_from_counts(name, uniq, counts, int(missing.sum()), max_categories)


def categorical_from_counts(
    name: str,
    categories: npt.NDArray[np.str_],
    counts: IntArray,
    n_missing: int,
    max_categories: int,
) -> FeatureProfile:
    """The categorical profile of exact per-category counts (``categories`` sorted by name).

    Shared by :meth:`ReferenceProfile.from_data` and the mergeable
    :class:`~modelmon.profile_builder.ProfileBuilder`, so both keep the same categories.
    """
    n_present = int(counts.sum())
    total = n_present + n_missing
    keep = categories != names.POOLED
    uniq, counts = categories[keep], counts[keep]
    order = np.argsort(-counts, kind="stable")  # ties stay by name
    full = order[: max(MAX_TEST_CATEGORIES, max_categories)]
    top = tuple(str(c) for c in uniq[order[:max_categories]])
    top_counts = counts[order[:max_categories]]
    pooled = n_present - int(top_counts.sum())
    shares = np.append(top_counts, pooled) / max(n_present, 1)
    full_counts = (*(int(c) for c in counts[full]), n_present - int(counts[full].sum()))
    return FeatureProfile(
        name,
        "categorical",
        shares=tuple(float(s) for s in shares),
        count=n_present,
        missing_share=float(np.int64(n_missing) / total) if total else 0.0,
        categories=(*top, names.POOLED),
        full_categories=(*(str(c) for c in uniq[full]), names.POOLED),
        full_counts=full_counts,
    )


# --- outputs ---------------------------------------------------------------------------


def _labels(a: np.ndarray) -> ObjArray:
    """Class labels as strings, exactly as :func:`modelmon.extract.outputs_frame` makes them."""
    if a.dtype.kind == "b":
        return np.where(a, "1", "0").astype(object)
    return a.astype(str).astype(object)


def _profile_outputs(
    predictions: Any,
    confidence: Any,
    bins: int,
    max_categories: int,
    task: str | None,
    classes: Sequence[str] | None,
) -> dict[str, FeatureProfile]:
    outs: dict[str, FeatureProfile] = {}
    if predictions is not None:
        if hasattr(predictions, "to_numpy"):
            predictions = predictions.to_numpy()
        a = np.asarray(predictions)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim == 2:
            frame = _probability_frame(a, classes)
            outs.update(_frame_outputs(frame, bins, max_categories))
        elif a.dtype.kind == "f" or (a.dtype.kind in "iub" and task == "regression"):
            outs[PREDICTION] = _numeric(PREDICTION, a.astype(np.float64), bins)
        else:
            outs[PREDICTION] = _categorical(PREDICTION, _labels(a), max_categories)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        outs[CONFIDENCE] = _numeric(CONFIDENCE, conf, bins)
    return outs


def _probability_frame(m: np.ndarray, classes: Sequence[str] | None) -> OutputFrame:
    proba = m.astype(np.float64)
    k = proba.shape[1]
    class_names = tuple(classes) if classes is not None else tuple(str(i) for i in range(k))
    if len(class_names) != k:
        raise ConfigurationError(f"{len(class_names)} classes for {k} probability columns")
    labels = np.asarray(class_names, dtype=object)[proba.argmax(axis=1)]
    return OutputFrame(
        proba.shape[0], labels=labels, probabilities=proba, classes=class_names,
        confidence=proba.max(axis=1),
    )  # fmt: skip


def _frame_outputs(
    outputs: OutputFrame, bins: int, max_categories: int
) -> dict[str, FeatureProfile]:
    outs: dict[str, FeatureProfile] = {}
    if outputs.labels is not None:
        outs[PREDICTION] = _categorical(PREDICTION, outputs.labels, max_categories)
    elif outputs.values is not None:
        outs[PREDICTION] = _numeric(PREDICTION, outputs.values, bins)
    if outputs.confidence is not None:
        outs[CONFIDENCE] = _numeric(CONFIDENCE, outputs.confidence, bins)
    if outputs.probabilities is not None and outputs.classes is not None:
        for j, cls in enumerate(outputs.classes):
            if cls not in outs:
                outs[cls] = _numeric(cls, outputs.probabilities[:, j], bins)
    return outs
