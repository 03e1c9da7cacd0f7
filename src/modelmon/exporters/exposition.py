"""Modelmon's own Prometheus text exposition: only the values are formatted per scrape.

prometheus-client's ``generate_latest`` escapes and sorts every label of every sample
on every scrape (about 7 us a series; 690 series for one 20-feature model with a
reference). :class:`TextRenderer` renders modelmon's families to the same bytes with
the label part of each series escaped once and kept (label sets are built once by the
aggregates and shared by every scrape), and the series whose points do not change at
all (reference ratios, reference rows: the same point tuples every scrape) rendered
once and reused. Values go through :func:`go_float`, prometheus-client's
``floatToGoString`` on a fast path.

The collector stays a plain prometheus-client ``Collector``: ``generate_latest`` on a
registry still works and gives the same samples. The fast path is taken by
:func:`generate_text` (modelmon's ``/metrics`` endpoints use it): while it collects,
modelmon's collectors hand over a :class:`PreRendered` block instead of metric
families; any other collector of the registry is rendered by prometheus-client. (A
collector that wraps a registry and reads its metrics, as the scrape gate's ``name[]``
filter does, passes what it collects through :func:`expand`.)

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> import modelmon
>>> reg = CollectorRegistry()
>>> mon = modelmon.Monitor("doc", "1", registry=reg)
>>> _ = mon.observe({"x": 1.0}, 0.5, latency_s=0.01)
>>> b'modelmon_requests_total{model="doc",version="1"} 1.0' in generate_text(reg)
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from itertools import accumulate
from operator import attrgetter
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client import exposition as _prom
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as _om
from prometheus_client.openmetrics.exposition import escape_label_name
from prometheus_client.utils import floatToGoString

from .._generations import TwoGenerations
from ..points import Exemplar, Family, HistogramPoint, Point, SummaryPoint

# Set while generate_text collects: modelmon's collectors then yield PreRendered blocks.
_FAST: ContextVar[bool] = ContextVar("modelmon_fast_exposition", default=False)

_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}
_INF = float("inf")
_INTS = {int}
_BIG = 2**53
_LABELS = attrgetter("labels")
_VALUE = attrgetter("value")


def go_float(value: float) -> str:
    """``prometheus_client.utils.floatToGoString(value)``, without its slow checks mostly."""
    s = repr(float(value))
    if s[-1] in "fn":  # inf, -inf, nan: the only reprs not ending in a digit
        return _SPECIAL[s]
    if len(s) > 8 and value > 0 and s.find(".") > 6:  # Go's exponent form for >= 1e6
        return str(floatToGoString(value))  # type: ignore[no-untyped-call]
    return s


def escape_value(value: str) -> str:
    """A label value as prometheus-client escapes it (backslash, newline, quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(labels: Iterable[tuple[str, str]]) -> str:
    """``{k="v",...}`` with keys sorted, as ``generate_latest`` writes it ("" if none)."""
    inner = ",".join(f'{escape_label_name(k)}="{escape_value(v)}"' for k, v in sorted(labels))
    return "{" + inner + "}" if inner else ""


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


class TextRenderer:
    """Renders families byte for byte as prometheus-client: text 0.0.4 or OpenMetrics.

    ``openmetrics=True``: as ``prometheus_client.openmetrics.exposition.generate_latest``
    (family names without ``_total`` in the header, exemplars on buckets; the caller
    appends ``# EOF``).

    Not thread-safe: its owner serialises :meth:`render` calls. Label mappings and point
    tuples handed over are never mutated (points are frozen), so identity is a valid key.
    """

    def __init__(self, openmetrics: bool = False) -> None:
        self.openmetrics = openmetrics
        # id(labels) -> (labels, text): the mapping is kept, so its id is not reused.
        # Cleared when it outgrows what renders use (fresh mappings of each scrape).
        self._by_id: dict[int, tuple[Mapping[str, str], str]] = {}
        self._by_items: dict[tuple[tuple[str, str], ...], str] = {}  # by content
        self._blocks = TwoGenerations()  # (name, id(points)) -> (points, text)
        self._buckets = TwoGenerations()  # (name, labels text, bounds) -> bucket prefixes
        self._prefixes = TwoGenerations()  # (sample, n, id(first labels)) -> labels, prefixes
        self._histograms = TwoGenerations()  # (name, labels text, content) -> lines
        self._headers: dict[tuple[str, str, str], str] = {}

    def render(self, families: Iterable[Family]) -> str:
        """The exposition of ``families`` (same-named families share one header)."""
        merged: dict[str, list[Family]] = {}
        for family in families:
            if family.spec.kind == "exponential_histogram":
                continue  # no text-format equivalent: these reach Prometheus over OTLP
            merged.setdefault(family.name, []).append(family)
        out: list[str] = []
        points = 0
        for name, group in merged.items():
            out.append(self._header(name, group[0]))
            for family in group:
                out.append(self._block(name, family))
                points += len(family.points)
        for cache in (self._blocks, self._buckets, self._prefixes, self._histograms):
            cache.turn()
        limit = 2 * points + 1024
        if len(self._by_id) > limit:
            self._by_id.clear()
        if len(self._by_items) > limit:
            self._by_items.clear()
        return "".join(out)

    def _header(self, name: str, family: Family) -> str:
        kind = family.spec.kind
        key = (name, kind, family.spec.help)
        text = self._headers.get(key)
        if text is None:
            if self.openmetrics:
                doc = escape_value(family.spec.help)
                text = f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
            else:
                shown = name + "_total" if kind == "counter" else name
                text = f"# HELP {shown} {_help(family.spec.help)}\n# TYPE {shown} {kind}\n"
            if len(self._headers) > 4096:
                self._headers.clear()
            self._headers[key] = text
        return text

    def _block(self, name: str, family: Family) -> str:
        points = family.points
        key = (name, id(points))
        hit = self._blocks.get(key)
        if hit is not None and hit[0] is points:
            text: str = hit[1]
            return text
        text = "".join(self._lines(name, family.spec.kind, points))
        self._blocks.put(key, (points, text))
        return text

    def labels(self, labels: Mapping[str, str]) -> str:
        """The cached ``{...}`` text of one label set."""
        hit = self._by_id.get(id(labels))
        if hit is not None and hit[0] is labels:
            return hit[1]
        items = tuple(labels.items())
        text = self._by_items.get(items)
        if text is None:
            text = self._by_items[items] = label_text(items)
        self._by_id[id(labels)] = (labels, text)
        return text

    def _lines(self, name: str, kind: str, points: tuple[Point, ...]) -> list[str]:
        if kind in ("counter", "gauge"):
            return self._scalar_lines(name + "_total" if kind == "counter" else name, points)
        labels = self.labels
        out: list[str] = []
        for p in points:
            text = labels(p.labels)
            if isinstance(p, HistogramPoint):
                out.append(self._histogram(name, text, p))
            elif isinstance(p, SummaryPoint):
                out.append(f"{name}_count{text} {go_float(p.count)}\n")
                out.append(f"{name}_sum{text} {go_float(p.sum)}\n")
        return out

    def _scalar_lines(self, sample: str, points: tuple[Point, ...]) -> list[str]:
        """The lines of a run of ScalarPoints (the families' contract for counters and
        gauges): the hot loop of a scrape, in C-level maps over columns.

        The ``sample{labels} `` prefixes of a run of label sets are kept from the last
        render (equal label sets give the same text); values go through ``repr``, which
        is ``floatToGoString`` for every finite float below 1e6, and through
        :func:`go_float` one by one otherwise (inf, nan, Go's exponent form)."""
        if not points:
            return []
        seen = list(map(_LABELS, points))
        key = (sample, len(points), id(seen[0]))
        hit = self._prefixes.get(key)
        if hit is not None and hit[0] == seen:
            prefixes = hit[1]
        else:
            labels = self.labels
            prefixes = [f"{sample}{labels(lb)} " for lb in seen]
            self._prefixes.put(key, (seen, prefixes))
        raw = list(map(_VALUE, points))
        if set(map(type, raw)) == _INTS and min(raw) > -_BIG and max(raw) < 1_000_000:
            # Counts: repr(float(n)) is str(n) + ".0" (exact below 2**53), at half the cost.
            return [".0\n".join(map(str.__add__, prefixes, map(str, raw))), ".0\n"]
        values = list(map(float, raw))
        total = sum(values)  # nan or +-inf when any value is not finite (or all are huge)
        if -_INF < total < _INF and max(values) < 1e6:
            texts = list(map(repr, values))
        else:
            texts = list(map(go_float, values))
        return ["\n".join(map(str.__add__, prefixes, texts)), "\n"]

    def _histogram(self, name: str, text: str, p: HistogramPoint) -> str:
        """One histogram's lines, kept by content: most histograms of a model (confidence,
        outcome delays) are the same between two scrapes. (With exemplars, OpenMetrics
        only: rendered every time.)"""
        exemplars = p.exemplars if self.openmetrics else ()
        total = go_float(p.sum)  # in the key as text: 0.0 and -0.0 are equal floats
        key = None if exemplars else (name, text, p.bounds, p.counts, total)
        if key is not None:
            hit: str | None = self._histograms.get(key)
            if hit is not None:
                return hit
        prefixes = self._bucket_prefixes(name, p.labels, text, p.bounds)
        cumulative = list(accumulate(p.counts))
        if exemplars:
            marks = [_exemplar(e) for e in exemplars]
            lines = list(map("{}{}{}\n".format, prefixes, map(go_float, cumulative), marks))
        else:
            lines = list(map("{}{}\n".format, prefixes, map(go_float, cumulative)))
        lines.append(f"{name}_count{text} {go_float(cumulative[-1])}\n")
        lines.append(f"{name}_sum{text} {total}\n")
        out = "".join(lines)
        if key is not None:
            self._histograms.put(key, out)
        return out

    def _bucket_prefixes(
        self, name: str, labels: Mapping[str, str], text: str, bounds: tuple[float, ...]
    ) -> list[str]:
        key = (name, text, bounds)
        prefixes: list[str] | None = self._buckets.get(key)
        if prefixes is None:
            base = [(k, v) for k, v in labels.items() if k != "le"]
            prefixes = [
                f"{name}_bucket{label_text([*base, ('le', go_float(b))])} "
                for b in (*bounds, float("inf"))
            ]
            self._buckets.put(key, prefixes)
        return prefixes


def _exemplar(exemplar: Exemplar | None) -> str:
    """`` # {labels} value timestamp`` after a bucket (OpenMetrics), "" for none."""
    if exemplar is None:
        return ""
    text = label_text(exemplar.labels.items()) or "{}"
    return f" # {text} {go_float(exemplar.value)} {exemplar.timestamp}"


class PreRendered:
    """Modelmon's families of one collection, rendered on demand (text) or translated.

    Yielded by a modelmon collector instead of metric families while
    :func:`generate_text` collects; :meth:`metrics` gives the families as
    prometheus-client metrics for any other consumer.
    """

    def __init__(
        self,
        families: list[Family],
        renderers: tuple[TextRenderer, TextRenderer],
        lock: threading.Lock,
        translate: Callable[[list[Family]], Iterable[Metric]],
    ) -> None:
        self.families = families
        self._renderers = renderers  # text 0.0.4, OpenMetrics
        self._lock = lock
        self._translate = translate
        self._texts: list[str | None] = [None, None]

    def text(self, openmetrics: bool = False) -> str:
        i = int(openmetrics)
        text = self._texts[i]
        if text is None:
            with self._lock:
                text = self._texts[i]
                if text is None:
                    text = self._texts[i] = self._renderers[i].render(self.families)
        return text

    def metrics(self) -> list[Metric]:
        return list(self._translate(self.families))


def fast_mode() -> bool:
    """True while :func:`generate_text` collects (collectors may yield PreRendered)."""
    return _FAST.get()


@contextmanager
def fast() -> Iterator[None]:
    """Collect in fast mode within this block (see :func:`fast_mode`)."""
    token = _FAST.set(True)
    try:
        yield
    finally:
        _FAST.reset(token)


def expand(items: Iterable[Metric | PreRendered]) -> Iterator[Metric]:
    """Metrics only: every PreRendered block replaced by its metric families."""
    for item in items:
        if isinstance(item, PreRendered):
            yield from item.metrics()
        else:
            yield item


class _One:
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


def generate_text(registry: Any = REGISTRY) -> bytes:
    """The text format 0.0.4 of ``registry``: ``generate_latest``'s bytes, rendered faster.

    Modelmon's series come from its cached renderer; every other collector's metrics
    are rendered by prometheus-client itself.
    """
    return _generate(registry, openmetrics=False)


def generate_openmetrics(registry: Any = REGISTRY) -> bytes:
    """OpenMetrics 1.0 of ``registry``: prometheus-client's bytes, rendered faster.

    What Prometheus asks for first. Same split as :func:`generate_text`.
    """
    return _generate(registry, openmetrics=True)


def _generate(registry: Any, openmetrics: bool) -> bytes:
    with fast():
        items = list(registry.collect())
    out: list[str] = []
    for item in items:
        if isinstance(item, PreRendered):
            out.append(item.text(openmetrics))
        elif openmetrics:
            one: bytes = _om.generate_latest(_One(item))  # type: ignore[no-untyped-call]
            out.append(one.decode("utf-8").removesuffix("# EOF\n"))
        else:
            out.append(_prom.generate_latest(_One(item)).decode("utf-8"))
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


Encoder = Callable[[Any], bytes]


def choose_encoder(accept_header: str | None) -> tuple[Encoder, str]:
    """prometheus-client's content negotiation, rendered by modelmon where it can.

    Text 0.0.4 and OpenMetrics with the default name escaping go to
    :func:`generate_text` and :func:`generate_openmetrics`; anything else (another
    escaping scheme) to prometheus-client's encoder.
    """
    encoder, content_type = _prom.choose_encoder(accept_header or "")
    if encoder is _prom.generate_latest:
        return generate_text, content_type
    if (
        isinstance(encoder, partial)
        and encoder.func is _om.generate_latest
        and encoder.keywords.get("escaping") == _om.UNDERSCORES
    ):
        return generate_openmetrics, content_type
    return encoder, content_type
