"""One member of a reference profile (a feature or an output): its summary, bins and JSON form.

Split by job from :mod:`modelmon.profile` (which re-exports the public names): the
format's limits, :class:`FeatureProfile` with its bin lookups, and the validation of a
member read from JSON (a hostile or corrupt field raises :class:`ProfileFormatError`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import names
from ._cached import cached_property  # no lock: safe across fork (see there)
from .batch import FloatArray, IntArray, ObjArray
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ReferenceError_
from .outliers import Fence, fences_of, read_fence

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

    def test_index(self, values: npt.ArrayLike, *, text: bool = False) -> IntArray:
        """Test cell of each categorical value (``__other__`` last; ``None``: -1).

        ``text=True``: the caller guarantees every value is a ``str`` or ``None`` (a
        feature frame's categorical columns), so no pass checks the types.
        """
        values = np.asarray(values, dtype=object)
        return self._category_index(values, len(self.test_categories), text)

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

    def _category_index(self, values: ObjArray, n_cells: int, trusted: bool = False) -> IntArray:
        other = n_cells - 1
        items = values.reshape(-1).tolist()
        if trusted or set(map(type, items)) <= _TEXT_OR_NONE:  # the fold's case: a dict lookup each
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


def _capped_list(x: Any, field_: str, member: str, cap: int) -> list[Any]:
    """``x`` itself when it is a list of at most ``cap`` entries (entries unchecked)."""
    if not isinstance(x, list):
        raise _fail(member, field_, "must be a list")
    if len(x) > cap:
        raise _fail(member, field_, f"has {len(x)} entries (at most {cap})")
    return x


def _floats(x: Any, field_: str, member: str, cap: int) -> tuple[float, ...]:
    return tuple(_finite(v, field_, member) for v in _capped_list(x, field_, member, cap))


def _opt_finite(x: Any, field_: str, member: str) -> float | None:
    return None if x is None else _finite(x, field_, member)


def _count(x: Any, field_: str, member: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise _fail(member, field_, f"must be a non-negative integer, got {x!r}")
    return x


def _strings(x: Any, field_: str, member: str, cap: int) -> tuple[str, ...]:
    x = _capped_list(x, field_, member, cap)
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
