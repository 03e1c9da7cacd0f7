"""Drift layouts and label sets shared by every drift aggregate of the same profile.

A group's layout (:class:`~modelmon.aggregates.drift_layout._Group`: members, bins,
reference sketches) depends only on the reference profile and ``max_features``, and
building it costs more than the rest of a new aggregate. A multi-process scrape builds
a drift aggregate per worker entry whose state changed (and the merged one), every
scrape: with the layout shared, those builds cost their state only.

The label sets of a group's points (:class:`~modelmon.aggregates.drift_labels.
_GroupLabels`) are shared the same way, by group, label key, base labels and
quantiles: a merged aggregate rebuilt at every scrape renders with the mappings (and
so the text kept by the renderer) of the last one.

Layouts are immutable once built. Both tables are bounded (oldest entry dropped first);
a profile is kept alive by at most :data:`KEPT_PROFILES` entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..profile import ReferenceProfile

# private: the layout and label classes of the drift aggregate, split by job from .drift
from .drift_labels import _GroupLabels
from .drift_layout import _Group

KEPT_PROFILES = 16
KEPT_LABELS = 256

_GROUPS: dict[tuple[int, int], tuple[ReferenceProfile, _Group, _Group]] = {}
_LABELS: dict[tuple[Any, ...], tuple[_Group, _GroupLabels]] = {}


def shared_groups(profile: ReferenceProfile, max_features: int) -> tuple[_Group, _Group]:
    """The feature and output groups of ``profile`` (the first ``max_features``
    features), built once and shared."""
    key = (id(profile), max_features)
    hit = _GROUPS.get(key)
    if hit is not None and hit[0] is profile:
        return hit[1], hit[2]
    features = _Group.of(list(profile.features.values())[:max_features])
    outputs = _Group.of(list(profile.outputs.values()))
    _put(_GROUPS, key, (profile, features, outputs), KEPT_PROFILES)
    return features, outputs


def shared_labels(
    base: Mapping[str, str], group: _Group, key: str, quantiles: tuple[float, ...]
) -> _GroupLabels:
    """The label sets of ``group``'s points under ``base`` labels, built once."""
    ident = (id(group), key, tuple(base.items()), quantiles)
    hit = _LABELS.get(ident)
    if hit is not None and hit[0] is group:
        return hit[1]
    labels = _GroupLabels(base, group, key, quantiles)
    _put(_LABELS, ident, (group, labels), KEPT_LABELS)
    return labels


def _put(table: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    while len(table) >= limit:
        try:
            del table[next(iter(table))]
        except (KeyError, StopIteration, RuntimeError):  # another thread got there first
            break
    table[key] = value
