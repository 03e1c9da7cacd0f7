"""The values of a monitor read live at each collection, not folded.

In-flight calls, the model's metadata (info, load and training times, the reference's
creation time), the heartbeat, and the monitor's own health counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import names
from ._version import __version__
from .aggregates.series_memo import child_labels, extended_labels
from .batch import RenderContext
from .names import MetricSpec
from .points import Family, ScalarPoint

if TYPE_CHECKING:
    from .monitor import Monitor

SDK_VERSION = __version__


def families(monitor: Monitor, ctx: RenderContext) -> list[Family]:
    """Per-process values that are not folded: in-flight, metadata, health."""
    ns, labels = ctx.namespace, ctx.labels
    info = (
        ("task", _task_label(monitor)),
        ("sdk_version", SDK_VERSION),
        ("reference", _reference_label(monitor)),
    )
    info_labels = extended_labels(labels, info)
    out = [
        Family(names.IN_FLIGHT, ns, (ScalarPoint(labels, monitor.in_flight),)),
        Family(names.MODEL_INFO, ns, (ScalarPoint(info_labels, 1.0),)),
        Family(names.MODEL_LOADED, ns, (ScalarPoint(labels, monitor.loaded_at),)),
        # Refreshed at every collection: absence alerts watch it, scraped or pushed.
        Family(names.HEARTBEAT, ns, (ScalarPoint(labels, ctx.now),)),
        _by_key(names.INTERNAL_ERRORS, ctx, names.STAGE, monitor.health.internal_errors),
        _by_key(names.DROPPED, ctx, names.REASON, monitor.health.dropped),
    ]
    trained = monitor.trained_at
    profile = monitor.drift.profile if monitor.drift is not None else monitor.profile
    created = profile.created_at if profile is not None else None
    if trained is None:
        trained = created
    if trained is not None:
        out.append(Family(names.MODEL_TRAINED, ns, (ScalarPoint(labels, float(trained)),)))
    if created is not None:
        out.append(Family(names.REFERENCE_CREATED, ns, (ScalarPoint(labels, float(created)),)))
    return out


def _by_key(spec: MetricSpec, ctx: RenderContext, key: str, counts: Mapping[str, float]) -> Family:
    """One point per ``counts`` entry, labelled ``key``."""
    points = tuple(
        ScalarPoint(child_labels(ctx.labels, key, k), v) for k, v in sorted(counts.items())
    )
    return Family(spec, ctx.namespace, points)


def _task_label(monitor: Monitor) -> str:
    if monitor.task is not None:
        return monitor.task
    return monitor.outcomes.task or "unknown"


def _reference_label(monitor: Monitor) -> str:
    if monitor.reference is None:
        return "none"
    if monitor.reference == "warmup":
        return "warmup"
    return "profile"
