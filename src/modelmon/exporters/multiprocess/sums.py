"""Summing states in merge order: the one arithmetic scrapes and the archive both use.

Floating-point sums depend on the order of their terms. A scrape sums every process
in merge order (see :mod:`.read`); the archive stores the running sum of a leading
run of that order, computed here by the same code, so a scrape after folding adds
the same terms in the same order as before it: bit-identical, never backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ... import names
from ...aggregates.http import HttpMetrics
from .codec import ProcessState
from .kinds import Profiles, build

LabelKey = tuple[tuple[str, str], ...]


def merge_aggregates(
    entries: Iterable[dict[str, Any]],
    profiles: Profiles,
    on_error: Callable[[Exception], None],
) -> dict[str, Any]:
    """Aggregate name -> one fresh aggregate holding the sum of every entry's state."""
    merged: dict[str, Any] = {}
    for entry in entries:
        for name, agg_entry in entry["aggregates"].items():
            try:
                agg = build(agg_entry, profiles)
                if name in merged:
                    merged[name].merge(agg)
                else:
                    merged[name] = agg
            except Exception as exc:
                on_error(exc)
    return merged


def live_sums(
    items: Iterable[tuple[ProcessState, dict[str, Any]]],
) -> tuple[dict[str, dict[LabelKey, float]], dict[str, tuple[float, list[list[Any]]]]]:
    """Counters summed over every process, in-flight over live ones; other gauges: newest."""
    sums: dict[str, dict[LabelKey, float]] = {}
    newest: dict[str, tuple[float, list[list[Any]]]] = {}
    for proc, entry in items:
        for spec_name, points in entry.get("live", []):
            try:
                spec = names.by_name(str(spec_name))
            except KeyError:
                continue
            additive = spec.kind == "counter" or spec.name == names.IN_FLIGHT.name
            if additive and (spec.kind == "counter" or proc.alive):
                bucket = sums.setdefault(spec.name, {})
                for labels, value in points:
                    key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
                    bucket[key] = bucket.get(key, 0.0) + float(value)
            elif (
                not additive
                and proc.alive
                and (spec.name not in newest or proc.written_at > newest[spec.name][0])
            ):
                newest[spec.name] = (proc.written_at, points)
    return sums, newest


def merge_http(states: Iterable[ProcessState]) -> dict[str, HttpMetrics]:
    """The HTTP metrics of ``states`` summed, one (unregistered) set per namespace."""
    merged: dict[str, HttpMetrics] = {}
    for state in states:
        for st in state.http:
            ns = str(st["namespace"])
            if ns not in merged:
                merged[ns] = HttpMetrics(ns, [float(b) for b in st["bounds"]], live=False)
            merged[ns].merge_state(st)
    return merged
