"""Modelmon's own Prometheus text exposition: only the values are formatted per scrape.

prometheus-client's ``generate_latest`` escapes and sorts every label of every sample
on every scrape (about 7 us a series; 690 series for one 20-feature model with a
reference). :class:`TextRenderer` renders modelmon's families to the same bytes with
the label part of each series escaped once and kept (label sets are built once by the
aggregates and shared by every scrape), and the series whose points do not change at
all (reference ratios, reference rows: the same point tuples every scrape) rendered
once and reused. A family that changed is formatted by one ``%`` over a template of its
kept prefixes (``floatToGoString``'s output for ints and finite floats below 1e6), or
value by value through :func:`go_float` (prometheus-client's ``floatToGoString`` on a
fast path); series handed over as :class:`~modelmon.points.ScalarColumns` are formatted
from their columns, without a point per series.

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
from itertools import accumulate, chain
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client import exposition as _prom
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as _om
from prometheus_client.openmetrics.exposition import escape_label_name
from prometheus_client.utils import floatToGoString

from .._generations import TwoGenerations
from ..names import MetricSpec
from ..points import (
    ColumnFamily,
    Exemplar,
    Family,
    HistogramPoint,
    Point,
    ScalarColumns,
    SummaryPoint,
)

# Set while generate_text collects: modelmon's collectors then yield PreRendered blocks.
_FAST: ContextVar[bool] = ContextVar("modelmon_fast_exposition", default=False)

_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}
_INF = float("inf")
_INTS = {int}
_BIG = 2**53


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
    name = _label_name
    inner = ",".join(f'{name(k)}="{escape_value(v)}"' for k, v in sorted(labels))
    return "{" + inner + "}" if inner else ""


_LABEL_NAMES: dict[str, str] = {}  # label name -> escaped: a few names, every series


def _label_name(k: str) -> str:
    """``escape_label_name(k)`` (a pure function of ``k``), kept for the first 1,024 names:
    a model's label names are a handful, repeated in every series of a cold render."""
    text = _LABEL_NAMES.get(k)
    if text is None:
        text = escape_label_name(k)
        if len(_LABEL_NAMES) < 1024:
            _LABEL_NAMES[k] = text
    return text


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


_FLOATS = {float}


class _Spec:
    """What the renderer keeps of one metric spec in one namespace."""

    __slots__ = ("header", "kind", "name", "namespace", "sample", "scalar", "skip", "spec")

    def __init__(self, spec: MetricSpec, namespace: str, name: str, header: str) -> None:
        self.spec = spec
        self.namespace = namespace
        self.name = name
        self.header = header
        kind = self.kind = spec.kind
        self.sample = name + "_total" if kind == "counter" else name
        self.skip = kind == "exponential_histogram"
        self.scalar = kind in ("counter", "gauge")


class _Run:
    """The prefixes of a run of label sets, and the ``%`` templates made of them."""

    __slots__ = ("floats", "ints", "labels", "prefixes")

    def __init__(self, labels: tuple[Mapping[str, str], ...], prefixes: list[str]) -> None:
        self.labels = labels
        self.prefixes = prefixes
        # "prefix%d.0\n" and "prefix%r\n" for every prefix, made on first use
        self.ints: str | None = None
        self.floats: str | None = None

    def template(self, line: str) -> str:
        """``prefix`` + ``line`` for every prefix (a ``%`` in a label doubled)."""
        return "".join(p.replace("%", "%%") + line for p in self.prefixes)


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
        self._blocks = TwoGenerations()  # id(points or columns) -> (them, _Spec, text)
        self._buckets = TwoGenerations()  # (name, labels text, bounds) -> _Buckets
        self._runs = TwoGenerations()  # (sample, n, id(first labels)) -> _Run
        self._histograms = TwoGenerations()  # (name, labels text, content) -> lines
        self._exemplars = TwoGenerations()  # id(exemplar) -> (exemplar, text)
        self._specs: dict[int, _Spec] = {}  # id(spec) -> _Spec (its last namespace)
        self._others: dict[tuple[MetricSpec, str], _Spec] = {}  # every namespace

    def render(self, families: Iterable[Family]) -> str:
        """The exposition of ``families`` (same-named families share one header).

        One pass: a family's block of lines is kept by the identity of its point tuple or
        :class:`~modelmon.points.ScalarColumns` (aggregates hand out the same object while
        its values are the same) and the spec it was rendered under, so an unchanged
        family costs a few dictionary lookups."""
        specs = self._specs
        blocks = self._blocks
        groups: dict[str, list[str]] = {}
        points_seen = 0
        for family in families:
            spec = family.spec
            known = specs.get(id(spec))
            if known is None or known.spec is not spec or known.namespace != family.namespace:
                known = self._spec(spec, family.namespace)
            if known.skip:
                continue  # no text-format equivalent: these reach Prometheus over OTLP
            # The block's source: its columns (read as such: no point is built) or points.
            source: ScalarColumns | tuple[Point, ...]
            if type(family) is ColumnFamily and known.scalar:
                source = family.columns
            else:
                source = family.points
            text = ""
            if source:
                points_seen += len(source)
                ident = id(source)
                hit = blocks.get(ident)
                if hit is not None and hit[0] is source and hit[1] is known:
                    text = hit[2]
                else:
                    text = self._block(known, source)
                    blocks.put(ident, (source, known, text))
            group = groups.get(known.name)
            if group is None:
                groups[known.name] = [known.header, text]
            else:
                group.append(text)
        for cache in (blocks, self._buckets, self._runs, self._histograms, self._exemplars):
            cache.turn()
        limit = 2 * points_seen + 1024
        if len(self._by_id) > limit:
            self._by_id.clear()
        if len(self._by_items) > limit:
            self._by_items.clear()
        if len(specs) > 4096:
            specs.clear()
        return "".join(chain.from_iterable(groups.values()))

    def _spec(self, spec: MetricSpec, namespace: str) -> _Spec:
        """What is kept of ``spec`` in ``namespace``: its name, header and sample name."""
        key = (spec, namespace)
        known = self._others.get(key)
        if known is None:
            if len(self._others) > 4096:  # specs made on the fly (tests): never a leak
                self._others.clear()
            name = spec.family_name(namespace)
            kind = spec.kind
            if self.openmetrics:
                header = f"# HELP {name} {escape_value(spec.help)}\n# TYPE {name} {kind}\n"
            else:
                shown = name + "_total" if kind == "counter" else name
                header = f"# HELP {shown} {_help(spec.help)}\n# TYPE {shown} {kind}\n"
            known = self._others[key] = _Spec(spec, namespace, name, header)
        self._specs[id(spec)] = known  # the namespace seen last: one lookup next time
        return known

    def _block(self, known: _Spec, points: ScalarColumns | tuple[Point, ...]) -> str:
        if isinstance(points, ScalarColumns):
            return self._scalars(known.sample, points.labels, points.values)
        if known.scalar:
            labels, values = zip(*points, strict=True)  # ScalarPoints: (labels, value)
            return self._scalars(known.sample, labels, values)
        name = known.name
        labels = self.labels
        out: list[str] = []
        for p in points:
            text = labels(p.labels)
            if isinstance(p, HistogramPoint):
                out.append(self._histogram(name, text, p))
            elif isinstance(p, SummaryPoint):
                out.append(f"{name}_count{text} {go_float(p.count)}\n")
                out.append(f"{name}_sum{text} {go_float(p.sum)}\n")
        return "".join(out)

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

    def _scalars(
        self, sample: str, labels: tuple[Mapping[str, str], ...], values: tuple[float, ...]
    ) -> str:
        """The lines of a run of counter or gauge values (ScalarPoints or ScalarColumns,
        the families' contract for those kinds): the hot loop of a scrape, one C-level
        ``%`` per run.

        A run of label sets (the same mappings as the last render, or equal ones) keeps
        its ``sample{labels} `` prefixes and two ``%`` templates made of them: ``%d.0``
        for ints (``repr(float(n))`` is ``str(n) + ".0"`` below 2**53), ``%r`` for
        floats (``repr`` is ``floatToGoString`` for every finite float below 1e6). Any
        other value (inf, nan, Go's exponent form, a mix of types) goes through
        :func:`go_float` one by one."""
        key = (sample, len(labels), id(labels[0]))
        runs = self._runs
        run: _Run | None = runs.get(key)
        if run is None or run.labels != labels:  # identical mappings compare at once
            texts = self.labels
            run = _Run(labels, [f"{sample}{texts(lb)} " for lb in labels])
            runs.put(key, run)
        types = set(map(type, values))
        if types == _INTS:
            if min(values) > -_BIG and max(values) < 1_000_000:
                template = run.ints
                if template is None:
                    template = run.ints = run.template("%d.0\n")
                lines: str = template % values
                return lines
        elif types == _FLOATS:
            total = sum(values)  # nan or +-inf when any value is not finite (or all huge)
            if -_INF < total < _INF and max(values) < 1e6:
                template = run.floats
                if template is None:
                    template = run.floats = run.template("%r\n")
                lines = template % values
                return lines
        return "".join(map("{}{}\n".format, run.prefixes, map(go_float, values)))

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
        buckets = self._bucket_lines(name, p.labels, text, p.bounds)
        cumulative = list(accumulate(p.counts))
        if exemplars:
            marks = list(map(self._exemplar, exemplars))
            lines = list(map("{}{}{}\n".format, buckets.prefixes, map(go_float, cumulative), marks))
        elif (
            set(map(type, cumulative)) == _INTS
            and min(cumulative) > -_BIG
            and max(cumulative) < 1_000_000
        ):
            # Counts (the usual case): every line in one "%" over a kept template.
            template = buckets.template
            if template is None:
                template = buckets.template = _histogram_template(buckets.prefixes, name, text)
            out: str = template % (*cumulative, cumulative[-1], total)
            if key is not None:
                self._histograms.put(key, out)
            return out
        else:
            lines = list(map("{}{}\n".format, buckets.prefixes, map(go_float, cumulative)))
        lines.append(f"{name}_count{text} {go_float(cumulative[-1])}\n")
        lines.append(f"{name}_sum{text} {total}\n")
        out = "".join(lines)
        if key is not None:
            self._histograms.put(key, out)
        return out

    def _exemplar(self, exemplar: Exemplar | None) -> str:
        """The text of one exemplar, kept by identity: a histogram keeps the last one of
        each bucket (frozen) until a newer call replaces it."""
        if exemplar is None:
            return ""
        hit = self._exemplars.get(id(exemplar))
        if hit is not None and hit[0] is exemplar:
            text: str = hit[1]
            return text
        text = _exemplar(exemplar)
        self._exemplars.put(id(exemplar), (exemplar, text))
        return text

    def _bucket_lines(
        self, name: str, labels: Mapping[str, str], text: str, bounds: tuple[float, ...]
    ) -> _Buckets:
        key = (name, text, bounds)
        buckets: _Buckets | None = self._buckets.get(key)
        if buckets is None:
            base = [(k, v) for k, v in labels.items() if k != "le"]
            buckets = _Buckets(
                [
                    f"{name}_bucket{label_text([*base, ('le', go_float(b))])} "
                    for b in (*bounds, float("inf"))
                ]
            )
            self._buckets.put(key, buckets)
        return buckets


class _Buckets:
    """The ``name_bucket{...,le=...} `` prefixes of one histogram, and their template."""

    __slots__ = ("prefixes", "template")

    def __init__(self, prefixes: list[str]) -> None:
        self.prefixes = prefixes
        self.template: str | None = None


def _histogram_template(prefixes: list[str], name: str, text: str) -> str:
    """Bucket lines and the count as ``%d.0`` (cumulative counts), the sum as ``%s``."""
    lines = [p.replace("%", "%%") + "%d.0\n" for p in prefixes]
    lines.append(f"{name}_count{text} ".replace("%", "%%") + "%d.0\n")
    lines.append(f"{name}_sum{text} ".replace("%", "%%") + "%s\n")
    return "".join(lines)


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
