"""Aggregate kinds: how each aggregate class is described in a state file and rebuilt.

A state entry is ``{"kind", "config", "state"}``; a reader rebuilds an empty aggregate
of that kind and configuration and loads the state into it. Reference profiles are
not in the entries (they are constants): a reader finds them by fingerprint in its
own monitors or in one sidecar file per profile.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..._internal import registry as monitor_registry
from ...aggregates.traffic import InputHealthAggregate, TrafficAggregate
from .codec import thaw
from .files import FINGERPRINT, profile_path, read_bytes


class Profiles:
    """Reference profiles by fingerprint: local monitors first, then the sidecar files.

    A profile read from a sidecar is kept (process-wide, at most :data:`KEPT_PROFILES`)
    once its content is checked against its fingerprint: profiles are constants, and
    parsing one (and hashing it to check it) costs more than the rest of a scrape.
    """

    _known: ClassVar[dict[str, Any]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str | None) -> None:
        self.path = path

    @classmethod
    def after_fork(cls) -> None:
        cls._lock = threading.Lock()  # a parent thread may have held it at the fork

    @classmethod
    def forget(cls) -> None:
        with cls._lock:
            cls._known.clear()

    def get(self, fingerprint: str) -> Any:
        with self._lock:
            profile = self._known.get(fingerprint)
        if profile is None:
            profile = self._local(fingerprint) or self._sidecar(fingerprint)
        if profile is None:
            raise LookupError(f"reference profile {fingerprint} is not available here")
        with self._lock:
            if fingerprint not in self._known:
                while len(self._known) >= KEPT_PROFILES:
                    del self._known[next(iter(self._known))]
                self._known[fingerprint] = profile
        return profile

    @staticmethod
    def _local(fingerprint: str) -> Any:
        for monitor in monitor_registry.monitors():
            profile = getattr(monitor.aggregates.get("drift"), "profile", None)
            if profile is not None and profile.fingerprint == fingerprint:
                return profile
        return None

    def _sidecar(self, fingerprint: str) -> Any:
        if self.path is None or not FINGERPRINT.match(fingerprint):
            return None
        from ...profile import ReferenceProfile

        data = read_bytes(profile_path(self.path, fingerprint))
        if data is None:
            return None
        profile = ReferenceProfile.loads(data.decode("utf-8"))
        if profile.fingerprint != fingerprint:
            raise ValueError(f"the sidecar of profile {fingerprint} holds another profile")
        return profile


KEPT_PROFILES = 64


@dataclass(frozen=True)
class AggregateKind:
    """How one aggregate class is described in a state file and rebuilt empty from it."""

    name: str
    cls: type
    config: Callable[[Any], dict[str, Any]]
    build: Callable[[Mapping[str, Any], Profiles], Any]
    fresh: Callable[[Any], Any]


def _traffic_config(agg: TrafficAggregate) -> dict[str, Any]:
    return {
        "duration_buckets": agg.duration.bounds.tolist(),
        "batch_buckets": agg.batch_size.bounds.tolist(),
        "confidence_buckets": agg.confidence.bounds.tolist(),
        "max_error_types": agg.max_error_types,
    }


def _traffic_build(config: Mapping[str, Any], _: Profiles) -> TrafficAggregate:
    return TrafficAggregate(**config)


def _drift_config(agg: Any) -> dict[str, Any]:
    profile = agg.profile
    return {
        "fingerprint": None if profile is None else profile.fingerprint,
        "warmup": agg.warmup,
        "from_warmup": bool(agg._built_from_warmup),
        "window_seconds": agg.window_seconds,
        "slots": agg.n_slots,
        "min_samples": agg.min_samples,
        "quantiles": list(agg.quantiles),
        "max_features": agg.max_features,
        "export_bin_edges": agg.export_bin_edges,
        "relative_accuracy": agg.relative_accuracy,
    }


def _drift_new(profile: Any, config: Mapping[str, Any]) -> Any:
    from ...aggregates.drift import DriftAggregate

    return DriftAggregate(
        profile,
        warmup=config["warmup"] or (None if profile is not None else 1),
        window_seconds=config["window_seconds"],
        slots=config["slots"],
        min_samples=config["min_samples"],
        quantiles=config["quantiles"],
        max_features=config["max_features"],
        export_bin_edges=config["export_bin_edges"],
        relative_accuracy=config["relative_accuracy"],
    )


def _drift_build(config: Mapping[str, Any], profiles: Profiles) -> Any:
    fingerprint = config["fingerprint"]
    if fingerprint is None:
        return _drift_new(None, config)
    if not config["from_warmup"]:
        return _drift_new(profiles.get(fingerprint), config)
    # A warm-up profile is in its sidecar file (states of older versions carry it
    # themselves: then load_state adopts it).
    try:
        profile = profiles.get(fingerprint)
    except LookupError:
        return _drift_new(None, config)
    agg = _drift_new(profile, config)
    agg._built_from_warmup = True
    return agg


def _drift_fresh(agg: Any) -> Any:
    fresh = _drift_new(agg.profile, _drift_config(agg))
    fresh._built_from_warmup = agg._built_from_warmup
    return fresh


def _outcome_config(agg: Any) -> dict[str, Any]:
    return {
        "task": agg.task,
        "max_classes": agg.max_classes,
        "positive_class": agg.positive_class,
        "window_seconds": agg.slot_seconds * agg.slots,
        "slots": agg.slots,
        "delay_buckets": agg.delay.bounds.tolist(),
        "reset_after": agg.reset_after,
    }


def _outcome_new(config: Mapping[str, Any], store: Any, detector: Any) -> Any:
    from ...aggregates.outcomes import OutcomeAggregate

    return OutcomeAggregate(
        config["task"],
        store=store,
        max_classes=config["max_classes"],
        positive_class=config["positive_class"],
        window_seconds=config["window_seconds"],
        slots=config["slots"],
        detector=detector,
        delay_buckets=config["delay_buckets"],
        reset_after=config["reset_after"],
    )


def _outcome_build(config: Mapping[str, Any], _: Profiles) -> Any:
    # Merged views only read the counters; detections travel in the state.
    return _outcome_new(config, None, None)


def _outcome_fresh(agg: Any) -> Any:
    detector = getattr(agg.detector, "name", None)
    # The pending predictions stay joinable in the child (a SQLite store is shared).
    return _outcome_new(_outcome_config(agg), agg.store, detector)


_KINDS: dict[str, AggregateKind] = {}


def register_kind(kind: AggregateKind) -> None:
    """Teach multi-process mode an aggregate class (built-ins are registered here)."""
    _KINDS[kind.name] = kind


register_kind(
    AggregateKind("traffic", TrafficAggregate, _traffic_config, _traffic_build, lambda a: None)
)
register_kind(
    AggregateKind(
        "inputs",
        InputHealthAggregate,
        lambda a: {},
        lambda c, p: InputHealthAggregate(),
        lambda a: InputHealthAggregate(),
    )
)


def _register_optional_kinds() -> None:
    with contextlib.suppress(ImportError):
        from ...aggregates.drift import DriftAggregate

        register_kind(
            AggregateKind("drift", DriftAggregate, _drift_config, _drift_build, _drift_fresh)
        )
    with contextlib.suppress(ImportError):
        from ...aggregates.outliers import OutlierAggregate

        register_kind(  # the state carries the profile's fences: built empty, then loaded
            AggregateKind(
                "outliers", OutlierAggregate, lambda a: {}, lambda c, p: OutlierAggregate(),
                lambda a: a.fresh(),
            )
        )  # fmt: skip
    with contextlib.suppress(ImportError):
        from ...aggregates.outcomes import OutcomeAggregate

        register_kind(
            AggregateKind(
                "outcomes", OutcomeAggregate, _outcome_config, _outcome_build, _outcome_fresh
            )
        )
    with contextlib.suppress(ImportError):
        from ...aggregates.segments import SegmentAggregate

        def _segments_build(config: Mapping[str, Any], profiles: Profiles) -> Any:
            fingerprint = config["fingerprint"]
            profile = profiles.get(fingerprint) if fingerprint is not None else None
            return SegmentAggregate.from_config(config, profile)

        register_kind(
            AggregateKind(
                "segments",
                SegmentAggregate,
                SegmentAggregate.config,
                _segments_build,
                SegmentAggregate.fresh,
            )
        )


_register_optional_kinds()


def _kind_of(agg: Any) -> AggregateKind | None:
    for kind in _KINDS.values():
        if type(agg) is kind.cls:
            return kind
    return None


def _class_name(agg: Any) -> str | None:
    """``module:qualname`` of a no-argument modelmon aggregate class (the generic fallback)."""
    cls = type(agg)
    if cls.__module__.startswith("modelmon.") and "<" not in cls.__qualname__:
        return f"{cls.__module__}:{cls.__qualname__}"
    return None


def describe(agg: Any) -> dict[str, Any] | None:
    """What a state file stores for ``agg`` (kind, config, state), or None if it cannot."""
    kind = _kind_of(agg)
    if kind is not None:
        return {"kind": kind.name, "config": kind.config(agg), "state": agg.state()}
    name = _class_name(agg)
    if name is None:
        return None
    return {"kind": "class", "config": {"class": name}, "state": agg.state()}


def build(entry: Mapping[str, Any], profiles: Profiles) -> Any:
    """A fresh aggregate holding the state of a file entry."""
    agg = _blank(entry["kind"], entry["config"], profiles)
    agg.load_state(thaw(entry["state"]))  # a cached state is never mutated
    return agg


def _blank(kind_name: str, config: Mapping[str, Any], profiles: Profiles) -> Any:
    kind = _KINDS.get(kind_name)
    if kind is not None:
        return kind.build(config, profiles)
    if kind_name == "class":
        module, _, qualname = str(config["class"]).partition(":")
        if not module.startswith("modelmon."):  # only our own classes are ever imported
            raise ValueError(f"refusing aggregate class {config['class']!r}")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj()
    raise ValueError(f"unknown aggregate kind {kind_name!r}")


def fresh_like(agg: Any) -> Any:
    """An empty aggregate configured like ``agg`` (what a forked child starts from)."""
    kind = _kind_of(agg)
    if kind is not None:
        fresh = kind.fresh(agg)
        if fresh is not None:
            return fresh
        return kind.build(kind.config(agg), Profiles(None))
    return type(agg)()
