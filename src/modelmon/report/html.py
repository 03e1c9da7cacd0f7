"""The drift report as one self-contained HTML page: inline CSS, inline SVG, no script.

Charts are hand-written SVG (a grouped bar chart of bin shares, a cumulative
distribution plot of quantiles): no plotting library to inline, nothing fetched, and
about 3 KB per feature. Every number shown is also on the element as a ``data-*``
attribute (``repr`` of the float), so tests and scripts can read the page back.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from html import escape
from importlib import resources

from .snapshot import DRIFT, NO_DATA, OK, MemberView, Snapshot

REF_COLOR = "#5b7fa6"
CUR_COLOR = "#e8833a"
_W, _H = 255, 140
_PAD_L, _PAD_B, _PAD_T, _PAD_R = 34, 38, 8, 8


def render(snap: Snapshot) -> str:
    """The whole page for ``snap``."""
    css = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")
    title = f"modelmon report: {snap.model} {snap.version}"
    body = "".join(
        (
            _header(snap),
            _features_table(snap),
            _feature_cards(snap.features),
            _outputs(snap),
            _performance(snap),
            _footer(snap),
        )
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f'<body><main id="modelmon-report">{body}</main></body></html>\n'
    )


# --- sections ---------------------------------------------------------------------------


def _header(snap: Snapshot) -> str:
    n, drifted = len(snap.features), len(snap.drifted)
    status = "drift" if drifted else ("ok" if n else "nodata")
    cards = [
        ("features drifted", f"{drifted} / {n}", status),
        ("requests", _count(snap.requests), ""),
        ("predictions", _count(snap.predictions), ""),
        ("errors", _count(snap.errors), "drift" if snap.errors else ""),
        ("task", snap.task, ""),
    ]
    if snap.performance:
        key = sorted(snap.performance)[0]
        cards.append((key, _fmt(snap.performance[key]), ""))
    tiles = "".join(
        f'<div class="tile {cls}"><div class="v">{escape(v)}</div>'
        f'<div class="k">{escape(k)}</div></div>'
        for k, v, cls in cards
    )
    meta = [f"taken {_time(snap.taken_at)}"]
    if snap.fingerprint:
        meta.append(f"reference {snap.fingerprint}")
    if snap.reference_created:
        meta.append(f"profiled {_time(snap.reference_created)}")
    return (
        f'<header data-model="{escape(snap.model)}" data-version="{escape(snap.version)}" '
        f'data-drifted="{drifted}" data-features="{n}">'
        f"<h1>{escape(snap.model)} <span>version {escape(snap.version)}</span></h1>"
        f'<p class="meta">{escape(" · ".join(meta))}</p><div class="tiles">{tiles}</div></header>'
    )


def _features_table(snap: Snapshot) -> str:
    if not snap.features:
        return _section("Features", "<p>No reference profile: nothing to compare.</p>")
    rows = "".join(_feature_row(i, m) for i, m in enumerate(snap.features))
    return _section(
        "Features, most severe first",
        '<table id="features">'
        "<thead><tr><th>#</th><th>feature</th><th>decision</th><th>p-value</th><th>PSI</th>"
        "<th>KS / χ²</th><th>missing</th><th>invalid</th><th>values</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
    )


def _feature_row(i: int, m: MemberView) -> str:
    stat = m.scores.get("ks", m.scores.get("chi2"))
    attrs = _data(
        feature=m.name,
        decision=m.decision,
        psi=m.psi,
        pvalue=m.min_pvalue,
        missing_share=m.missing_share,
        invalid_share=m.invalid_share,
        observations=m.observations,
    )
    return (
        f'<tr class="member"{attrs}><td>{i + 1}</td>'
        f'<td><a href="#f-{_anchor(m.name)}">{escape(m.name)}</a></td>'
        f"<td>{_badge(m.decision)}</td><td>{_fmt(m.min_pvalue)}</td><td>{_fmt(m.psi)}</td>"
        f"<td>{_fmt(stat)}</td>{_missing_cell(m)}<td>{_pct(m.invalid_share)}</td>"
        f"<td>{_count(m.observations)}</td></tr>"
    )


def _missing_cell(m: MemberView) -> str:
    """The missing share, flagged when the exported missing-share test says it moved."""
    if m.missing_detected == 1.0:
        return (
            f'<td class="alert" data-missing-detected="1" title="missing share differs from '
            f'the reference">▲ {_pct(m.missing_share)}</td>'
        )
    return f"<td>{_pct(m.missing_share)}</td>"


def _feature_cards(members: Sequence[MemberView]) -> str:
    if not members:
        return ""
    cards = "".join(_card(m, "f") for m in members)
    return _section("Distributions", f'{_legend()}<div class="cards">{cards}</div>')


def _card(m: MemberView, prefix: str) -> str:
    scores = " ".join(f"{k} {_fmt(v)}" for k, v in m.scores.items() if not math.isnan(v))
    pvals = " ".join(f"p({k}) {_fmt(v)}" for k, v in m.pvalues.items())
    charts = _histogram_svg(m)
    if m.reference_quantiles:
        charts += _cdf_svg(m)
    return _chart_card(
        f'class="card {_cls(m.decision)}" id="{prefix}-{_anchor(m.name)}"'
        f"{_data(name=m.name, decision=m.decision)}",
        f"{escape(m.name)} {_badge(m.decision)}",
        f"{scores or 'no score yet'} {pvals}",
        charts,
    )


def _outputs(snap: Snapshot) -> str:
    parts = [_card(m, "o") for m in snap.outputs]
    if snap.confidence_count:
        parts.append(_confidence_card(snap))
    if not parts:
        return ""
    return _section(
        "Predictions and confidence", f'<div class="cards">{"".join(parts)}</div>', "outputs"
    )


def _confidence_card(snap: Snapshot) -> str:
    total = snap.confidence_count
    shares = [c / total for c in snap.confidence_counts]
    lows = (0.0, *snap.confidence_bounds)
    labels = [f"≤ {b:g}" for b in snap.confidence_bounds] + [f"> {lows[-1]:g}"]
    mean = snap.confidence_sum / total
    svg = _bars_svg(labels, [shares], [CUR_COLOR], "confidence histogram (all predictions)")
    return _chart_card(
        f'class="card" id="o-confidence-histogram"{_data(mean=mean, count=total)}',
        "confidence, all predictions",
        f"mean {_fmt(mean)} over {_count(total)} predictions",
        svg,
    )


def _performance(snap: Snapshot) -> str:
    if not snap.performance:
        return _section(
            "Performance",
            "<p>No labels yet: feed them with <code>record_outcome</code>.</p>",
            "performance",
        )
    rows = "".join(
        f"<tr{_data(metric=k, value=v)}><td>{escape(k)}</td><td>{_fmt(v)}</td></tr>"
        for k, v in sorted(snap.performance.items())
    )
    return _section(
        "Performance (labelled predictions, sliding window)",
        f"<table><tbody>{rows}</tbody></table>",
        "performance",
    )


def _section(title: str, body: str, id_: str = "") -> str:
    """A page section: the ``<h2>`` title (HTML) over ``body`` (HTML)."""
    attr = f' id="{id_}"' if id_ else ""
    return f"<section{attr}><h2>{title}</h2>{body}</section>"


def _chart_card(attrs: str, title: str, scores: str, charts: str) -> str:
    """A card: ``<article {attrs}>``, its title (HTML), a line of scores (text), charts (SVG)."""
    return (
        f"<article {attrs}><h3>{title}</h3>"
        f'<p class="scores">{escape(scores)}</p><div class="charts">{charts}</div></article>'
    )


def _footer(snap: Snapshot) -> str:
    notes = list(snap.notes)
    notes.append(
        "Bars: share of values per reference bin (reference vs. everything this monitor saw). "
        "Curves: reference cumulative distribution vs. the live quantiles of the sliding "
        "window, over which the scores and decisions are computed."
    )
    if snap.internal_errors:
        errs = ", ".join(f"{k}: {v:g}" for k, v in sorted(snap.internal_errors.items()))
        notes.append(f"modelmon internal errors: {errs}.")
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f"<footer><ul>{items}</ul><p>Generated by modelmon.</p></footer>"


# --- charts -----------------------------------------------------------------------------


def _histogram_svg(m: MemberView) -> str:
    total = m.current_total
    current = [c / total for c in m.current_counts] if total else [0.0] * len(m.current_counts)
    return _bars_svg(
        list(m.bin_labels),
        [list(m.reference_shares), current],
        [REF_COLOR, CUR_COLOR],
        f"{m.name}: share per reference bin",
    )


def _bars_svg(
    labels: Sequence[str], series: Sequence[Sequence[float]], colors: Sequence[str], title: str
) -> str:
    n = max(len(labels), 1)
    top = max((v for s in series for v in s if not math.isnan(v)), default=0.0) or 1.0
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    group = plot_w / n
    bar = group * 0.8 / len(series)
    out = [_y_axis(top, plot_h, pct=True)]
    for i, label in enumerate(labels):
        x0 = _PAD_L + i * group + group * 0.1
        for k, (s, color) in enumerate(zip(series, colors, strict=True)):
            v = s[i] if i < len(s) else 0.0
            h = plot_h * v / top
            y = _PAD_T + plot_h - h
            out.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(label)}: {v:.1%}</title></rect>'
            )
        if n <= 24:
            cx, cy = x0 + group * 0.4, _H - _PAD_B + 10
            short = label if len(label) <= 14 else label[:13] + "…"
            out.append(_tick(f"{cx:.1f}", f"{cy}", "end", short, f"rotate(-35 {cx:.1f} {cy})"))
    return _svg(title, out)


def _cdf_svg(m: MemberView) -> str:
    ref = [(v, p) for p, v in m.reference_quantiles.items() if 0.01 <= p <= 0.99]
    live = sorted((v, p) for p, v in m.live_quantiles.items())
    xs = [v for v, _ in ref + live if not math.isnan(v)]
    if not xs:
        return ""
    lo, hi = min(xs), max(xs)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def pos(v: float, p: float) -> tuple[float, float]:
        return _PAD_L + plot_w * (v - lo) / (hi - lo), _PAD_T + plot_h * (1.0 - p)

    out = [_y_axis(1.0, plot_h, pct=True)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (pos(v, p) for v, p in ref))
    out.append(f'<polyline points="{path}" fill="none" stroke="{REF_COLOR}" stroke-width="2"/>')
    if live:
        pts = [pos(v, p) for v, p in live]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{CUR_COLOR}" stroke-width="2" '
            'stroke-dasharray="4 3"/>'
        )
        for (x, y), (v, p) in zip(pts, live, strict=True):
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{CUR_COLOR}">'
                f"<title>live q{p:g} = {_fmt(v)}</title></circle>"
            )
    for v, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end")):
        x, _ = pos(v, 0.0)
        out.append(_tick(f"{x:.1f}", f"{_H - _PAD_B + 14}", anchor, _fmt(v)))
    return _svg(f"{m.name}: cumulative distribution", out)


def _svg(title: str, parts: Iterable[str]) -> str:
    """One chart: an ``<svg>`` of the chart's size, titled, holding ``parts``."""
    return (
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f"{''.join(parts)}</svg>"
    )


def _tick(x: str, y: str, anchor: str, text: str, rotate: str = "") -> str:
    """An axis label at (``x``, ``y``), optionally with a ``rotate(...)`` transform."""
    transform = f' transform="{rotate}"' if rotate else ""
    return (
        f'<text x="{x}" y="{y}"{transform} text-anchor="{anchor}" class="tick">'
        f"{escape(text)}</text>"
    )


def _y_axis(top: float, plot_h: float, pct: bool) -> str:
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = _PAD_T + plot_h * (1 - frac)
        label = f"{top * frac:.0%}" if pct else _fmt(top * frac)
        out.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            + _tick(f"{_PAD_L - 3}", f"{y + 3:.1f}", "end", label)
        )
    return "".join(out)


def _legend() -> str:
    return (
        '<p class="legend">'
        f'<span style="background:{REF_COLOR}"></span>reference '
        f'<span style="background:{CUR_COLOR}"></span>current</p>'
    )


# --- formatting -------------------------------------------------------------------------


def _badge(decision: str) -> str:
    text = {DRIFT: "drift", OK: "ok", NO_DATA: "not enough data"}[decision]
    return f'<span class="badge {_cls(decision)}">{text}</span>'


def _cls(decision: str) -> str:
    return {DRIFT: "drift", OK: "ok", NO_DATA: "nodata"}[decision]


def _data(**values: object) -> str:
    parts: Iterable[str] = (
        f' data-{k.replace("_", "-")}="{escape(_raw(v))}"' for k, v in values.items()
    )
    return "".join(parts)


def _raw(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _fmt(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "\u2013"
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.3g}"


def _pct(v: float | None) -> str:
    return "\u2013" if v is None else f"{v:.1%}"


def _count(v: float | None) -> str:
    return "\u2013" if v is None else f"{v:,.0f}"


def _time(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)
