"""The drift aggregate's reading of one window: scores, live quantiles and decisions.

Split by job from :mod:`modelmon.aggregates.drift` (which re-exports the public names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import drift
from .. import drift_decision as decision
from ..batch import FloatArray, IntArray
from ..sketches.columns import LogSketchColumns
from ..sketches.occupied import Occupied

# private: the aggregate's layout, split by job from .drift (one owner)
from .drift_layout import _Group, _GroupSlot

# --- scores and points -------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The drift decision of one member over the window (see :mod:`modelmon.drift_decision`)."""

    detected: bool
    test: decision.BinnedTest
    pvalues: dict[str, float]  # method -> p-value before the correction
    z_critical: float


@dataclass(frozen=True)
class MissingDecision:
    """The missing-share decision of one feature over the window."""

    detected: bool
    test: decision.MissingTest
    z_critical: float


@dataclass(frozen=True)
class _WindowView:
    """Per member: drift scores (``None`` below ``min_samples``) and live quantiles."""

    scores: tuple[dict[str, float] | None, ...]
    quantiles: dict[int, FloatArray]  # member index -> live quantiles
    decisions: tuple[Decision | None, ...] = ()
    missing: tuple[MissingDecision | None, ...] = ()
    rows: int = 0  # the fewest window values of any member


def _sketch_wasserstein(
    group: _Group,
    sketches: LogSketchColumns,
    occ: Occupied,
    lo: FloatArray,
    hi: FloatArray,
    out: FloatArray,
) -> None:
    """Wasserstein of each row against the profile's reference sketch, where it has one.

    Overwrites ``out`` (from the quantile summary) for those rows: sketch against sketch
    keeps the 1% relative accuracy in heavy tails, where the summary interpolates.
    """
    ref_values, ref_weights, ref_column = group.ref_points
    use = group.has_ref_sketch[occ.rows] & (occ.n > 0)
    if not use.any():
        return
    if use.all() and occ.rows.size == group.has_ref_sketch.size:
        # Every column, in order, has a sketch and values (a warm window): no selection.
        picked, ref_side, row_of = occ.rows, group.ref_points, occ.row_of
        per_row = np.diff(occ.start)
        live = sketches.values_at(row_of, occ.cells) + np.repeat(group.centers, per_row)
        weights = occ.counts / np.repeat(occ.n, per_row)
        lo_of, hi_of = np.repeat(lo, per_row), np.repeat(hi, per_row)
    else:
        picked = np.flatnonzero(use)
        rank = np.full(group.has_ref_sketch.size + 1, -1, dtype=np.int64)  # column -> row
        rank[occ.rows[picked]] = np.arange(picked.size)
        ref_rows = rank[ref_column]
        on = ref_rows >= 0
        ref_side = (ref_values[on], ref_weights[on], ref_rows[on])
        keep = use[occ.row_of]
        row_of = occ.row_of[keep]
        cols = occ.rows[row_of]
        live = sketches.values_at(cols, occ.cells[keep]) + group.centers[cols]
        weights = occ.counts[keep] / occ.n[row_of]
        lo_of, hi_of, row_of = lo[row_of], hi[row_of], rank[cols]
    np.minimum(np.maximum(live, lo_of, out=live), hi_of, out=live)  # np.clip, cheaper
    w = drift.wasserstein_rows(ref_side, (live, weights, row_of))
    std = np.maximum(group.reference.std[occ.rows[picked]], drift.STD_FLOOR)
    out[picked] = w / std


def _binned_tests(
    group: _Group, slot: _GroupSlot, ready: list[int], counts: IntArray
) -> list[decision.BinnedTest]:
    """The binned test of each ``ready`` member; ``counts``: the window's bins, padded
    as the reference shares (``group.binned``)."""
    if group.test_total == 0 or slot.test_counts.size == 0:  # every member tests its bins
        return decision.padded_binned_tests(
            counts[ready].astype(np.float64), group.binned.shares[ready], group.ref_rows[ready]
        )
    cells_shares = [group.test_cells(slot, i) for i in ready]
    return decision.binned_tests(
        [c for c, _ in cells_shares], [s for _, s in cells_shares], group.ref_rows[ready]
    )


def _decide(
    group: _Group,
    slot: _GroupSlot,
    ready: list[int],
    scores: list[dict[str, float] | None],
    min_samples: int,
    cfg: decision.DecisionConfig,
    counts: IntArray,
) -> tuple[tuple[Decision | None, ...], tuple[MissingDecision | None, ...]]:
    m = len(group.members)
    z_crit = cfg.z_critical(m)
    out: list[Decision | None] = [None] * m
    tests = _binned_tests(group, slot, ready, counts)
    n_of = counts.sum(axis=1).tolist()
    ref_rows = group.ref_rows.tolist()
    for i, test in zip(ready, tests, strict=True):
        pvalues = {"chi2": test.pvalue}
        ks = (scores[i] or {}).get("ks", math.nan)
        if not math.isnan(ks):
            pvalues["ks"] = decision.ks_pvalue(ks, float(n_of[i]), ref_rows[i])
        out[i] = Decision(decision.flagged(test, z_crit, cfg.psi_floor), test, pvalues, z_crit)
    z_two = cfg.z_critical(m, two_sided=True)
    missing: list[MissingDecision | None] = [None] * m
    if slot.seen.size == m:
        seen, missed = slot.seen.tolist(), slot.missing.tolist()
        for i in np.flatnonzero(slot.seen >= min_samples).tolist():
            member = group.members[i]
            t = decision.missing_test(
                float(missed[i]), float(seen[i]), member.missing_share, member.reference_total
            )
            missing[i] = MissingDecision(
                decision.missing_flagged(t, z_two, cfg.missing_floor), t, z_two
            )
    return tuple(out), tuple(missing)


def _compute_view(
    group: _Group,
    slot: _GroupSlot,
    min_samples: int,
    qs: tuple[float, ...],
    cfg: decision.DecisionConfig | None = None,
) -> _WindowView:
    counts = np.append(slot.counts, 0)[group.cells]
    n = counts.sum(axis=1)
    psi, js, chi = drift.binned_scores(group.binned, counts)
    n_of = n.tolist()
    ready = [i for i in range(len(group.members)) if n_of[i] >= min_samples]
    rows = np.array([group.column_of[i] for i in ready if group.column_of[i] >= 0], dtype=np.int64)
    ks = wass = live = np.zeros(0)
    if rows.size:
        sketches = slot.sketches
        centers = group.centers[rows]
        lo, hi = slot.extremes.min[rows], slot.extremes.max[rows]
        occ = Occupied.of(sketches, rows)
        ks = drift.ks_columns(group.reference, sketches, rows, occ)
        has_sketch = group.has_ref_sketch[rows]
        wass = np.full(rows.size, np.nan)
        if not has_sketch.all():  # profiles written without a reference sketch
            old = ~has_sketch
            wass[old] = drift.wasserstein_columns(
                group.reference,
                sketches,
                rows[old],
                (lo[old] - centers[old], hi[old] - centers[old]),
            )
        _sketch_wasserstein(group, sketches, occ, lo, hi, wass)
        live = sketches.quantiles(qs, rows, occ) + centers[:, None]
        live = np.clip(live, lo[:, None], hi[:, None])
    scores: list[dict[str, float] | None] = [None] * len(group.members)
    quantiles: dict[int, FloatArray] = {}
    r = 0
    psi_, js_, chi_, ks_, wass_ = (a.tolist() for a in (psi, js, chi, ks, wass))
    for i in ready:
        one = {"psi": psi_[i], "js": js_[i]}
        if group.column_of[i] < 0:
            one["chi2"] = chi_[i]
        else:
            has_reference = bool(group.members[i].quantiles)
            one["ks"] = ks_[r] if has_reference else math.nan
            one["wasserstein"] = wass_[r] if has_reference else math.nan
            quantiles[i] = live[r]
            r += 1
        scores[i] = one
    decisions, missing = _decide(
        group, slot, ready, scores, min_samples, cfg or decision.DecisionConfig(), counts
    )
    fewest = min(n_of, default=0)
    return _WindowView(tuple(scores), quantiles, decisions, missing, fewest)
