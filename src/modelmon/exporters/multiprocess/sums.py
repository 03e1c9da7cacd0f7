"""Summing states in merge order: the one arithmetic scrapes and the archive both use.

Floating-point sums depend on the order of their terms. A scrape sums every process
in merge order (see :mod:`.read`); the archive stores the running sum of a leading
run of that order, computed here by the same code, so a scrape after folding adds
the same terms in the same order as before it: bit-identical, never backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ... import names
from ..._generations import TwoGenerations
from ...aggregates.http import HttpMetrics
from .codec import ProcessState
from .kinds import Profiles, build

LabelKey = tuple[tuple[str, str], ...]


class Built:
    """Aggregates built from the entries of the last merges, by entry identity.

    A parsed entry stays the same object while its file's aggregates are unchanged (see
    :mod:`.read`), so an aggregate built from it once serves every later merge: a
    scrape builds only the entries that changed, and merges the rest as they are
    (``merge`` reads its argument, never changes it). Kept for one more merge after
    its last use (:meth:`turn`), so memory is one merge's worth.
    """

    def __init__(self) -> None:
        self._table = TwoGenerations()  # id(entry) -> (entry, its aggregate)
        self.built = 0  # aggregates built (not served from the table): for tests

    def get(self, entry: Mapping[str, Any], profiles: Profiles) -> Any:
        key = id(entry)
        hit = self._table.get(key)
        if hit is not None and hit[0] is entry:
            return hit[1]
        agg = build(entry, profiles)
        self.built += 1
        self._table.put(key, (entry, agg))
        return agg

    def turn(self) -> None:
        """End of a merge: what it did not use is dropped at the end of the next."""
        self._table.turn()


def merge_aggregates(
    entries: Iterable[dict[str, Any]],
    profiles: Profiles,
    on_error: Callable[[Exception], None],
    built: Built | None = None,
) -> dict[str, Any]:
    """Aggregate name -> one fresh aggregate holding the sum of every entry's state.

    The sum starts from a fresh build of the first entry; with ``built``, every other
    entry is merged from the aggregate built for it last time, when it is the same."""
    merged: dict[str, Any] = {}
    for entry in entries:
        for name, agg_entry in entry["aggregates"].items():
            try:
                if name in merged:
                    agg = (
                        build(agg_entry, profiles)
                        if built is None
                        else built.get(agg_entry, profiles)
                    )
                    merged[name].merge(agg)
                else:
                    merged[name] = build(agg_entry, profiles)
            except Exception as exc:
                on_error(exc)
    if built is not None:
        built.turn()
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
