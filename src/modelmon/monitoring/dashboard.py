"""The Grafana dashboard "is my model healthy?", generated from the metric catalogue.

Every panel queries the ``${datasource}`` variable (type ``datasource``), so the JSON
imports through the UI, the API and file provisioning alike. ``model``, ``version``,
``instance`` and ``feature`` are ``label_values`` variables.

>>> dash = render_dashboard(MonitoringConfig())
>>> dash["uid"], dash["schemaVersion"]
('modelmon', 39)
>>> dashboard_queries(MonitoringConfig())[0][0]
'Requests per second'
"""

# Long module: one Grafana dashboard, panel by panel, in the order it is shown.

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmon import names
from modelmon.monitoring import rules as r
from modelmon.monitoring.config import MonitoringConfig, num

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCHEMA_VERSION = 39
_RAW = {"model": "$model", "version": "$version", "instance": "$instance"}
_FLEET = {"model": "$model", "version": "$version"}


@dataclass(frozen=True)
class Target:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    format: str = "time_series"


@dataclass(frozen=True)
class Panel:
    """One panel before layout (ids and positions are assigned in order)."""

    title: str
    kind: str
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    transformations: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[float, ...] = ()


# --- query helpers ---------------------------------------------------------------------


def _raw(cfg: MonitoringConfig, spec: names.MetricSpec, suffix: str = "", **extra: str) -> str:
    return cfg.series(spec, suffix, **_RAW, **extra)


def _fleet(cfg: MonitoringConfig, rule: str, **extra: str) -> str:
    """A recorded (fleet-wide) series filtered by the dashboard variables."""
    labels = {**_FLEET, **extra}
    parts = [f'{k}=~"{v}"' if v.startswith("$") else f'{k}="{v}"' for k, v in labels.items()]
    return rule + "{" + ",".join(parts) + "}"


def _per_second(cfg: MonitoringConfig, spec: names.MetricSpec, *keep: str) -> str:
    return r.sum_rate(cfg, spec, RATE, *keep, **_RAW)


def _increase(cfg: MonitoringConfig, spec: names.MetricSpec, *keep: str) -> str:
    return r.sum_rate(cfg, spec, RATE, *keep, fn="increase", **_RAW)


def _quantiles(
    cfg: MonitoringConfig, spec: names.MetricSpec, qs: tuple[float, ...]
) -> tuple[Target, ...]:
    return tuple(
        Target(
            r.histogram_quantile(cfg, q, spec, RATE, **_RAW),
            f"p{num(q * 100)} {{{{model}}}} {{{{version}}}}",
        )
        for q in qs
    )


_MV = "{{model}} {{version}}"


# --- rows ------------------------------------------------------------------------------


def _traffic(cfg: MonitoringConfig) -> list[Panel]:
    bs = names.BATCH_SIZE
    mean_batch = (
        f"{r.sum_rate(cfg, bs, RATE, suffix='_sum', **_RAW)}\n/\n"
        f"({r.sum_rate(cfg, bs, RATE, suffix='_count', **_RAW)} > 0)"
    )
    return [
        Panel(
            "Requests per second",
            "timeseries",
            (Target(_per_second(cfg, names.REQUESTS), _MV),),
            "reqps",
        ),
        Panel(
            "Predictions per second",
            "timeseries",
            (Target(_per_second(cfg, names.PREDICTIONS), _MV),),
            "short",
            description="Rows predicted per second (a batch of N rows counts N).",
        ),
        Panel(
            "Latency p50 / p90 / p99",
            "timeseries",
            _quantiles(cfg, names.REQUEST_DURATION, (0.5, 0.9, 0.99)),
            "s",
            thresholds=(cfg.latency_slo_seconds,),
        ),
        Panel(
            "Requests in flight",
            "timeseries",
            (
                Target(
                    f"sum by ({cfg.by('instance')}) ({_raw(cfg, names.IN_FLIGHT)})",
                    "{{model}} {{version}} {{instance}}",
                ),
            ),
        ),
        Panel(
            "Batch size (mean and p99)",
            "timeseries",
            (
                Target(mean_batch, f"mean {_MV}"),
                Target(r.histogram_quantile(cfg, 0.99, bs, RATE, **_RAW), f"p99 {_MV}"),
            ),
        ),
        Panel(
            f"Requests slower than {num(cfg.latency_slo_seconds)}s",
            "timeseries",
            (Target(r.slow_ratio(cfg, RATE, **_RAW), _MV),),
            "percentunit",
            thresholds=(1 - cfg.latency_slo_target,),
        ),
    ]


def _errors(cfg: MonitoringConfig) -> list[Panel]:
    budget = round(1 - cfg.availability_slo, 12)  # no float noise in the query
    burn = f"{_fleet(cfg, cfg.rule('error_ratio', '1h'))}\n/\n{num(budget)}"
    return [
        Panel(
            "Error ratio",
            "timeseries",
            (Target(r.error_ratio(cfg, RATE, **_RAW), _MV),),
            "percentunit",
            thresholds=(budget,),
        ),
        Panel(
            "Errors per second by type",
            "timeseries",
            (
                Target(
                    _per_second(cfg, names.REQUEST_ERRORS, names.ERROR_TYPE),
                    "{{error_type}} " + _MV,
                ),
            ),
            "reqps",
        ),
        Panel(
            "Error budget burn rate (1h, fleet)",
            "timeseries",
            (Target(burn, _MV),),
            "short",
            description="1 = the error budget lasts exactly the SLO period; 14.4 pages.",
            thresholds=(1.0, 14.4),
        ),
    ]


def _confidence(cfg: MonitoringConfig) -> list[Panel]:
    heat = f"sum by (le) (increase({cfg.series(names.CONFIDENCE, '_bucket', **_RAW)}[{RATE}]))"
    low = r.share_below(cfg, names.CONFIDENCE, cfg.le_low_confidence, RATE, **_RAW)
    return [
        Panel(
            "Confidence distribution",
            "heatmap",
            (Target(heat, "{{le}}", format="heatmap"),),
            options={
                "calculate": False,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "yAxis": {"axisPlacement": "left"},
                "rowsFrame": {"layout": "le"},
            },
        ),
        Panel(
            f"Low-confidence share (<= {num(cfg.low_confidence_threshold)})",
            "timeseries",
            (Target(low, _MV),),
            "percentunit",
        ),
        Panel(
            f"Median confidence ({cfg.confidence_window}, fleet)",
            "timeseries",
            (Target(_fleet(cfg, cfg.rule("confidence_p50", cfg.confidence_window)), _MV),),
            "percentunit",
        ),
    ]


def _data_drift(cfg: MonitoringConfig) -> list[Panel]:
    n = r.bin_rule_names(cfg, r.FEATURES)
    psi_thresholds = (cfg.psi_warning, cfg.psi_critical)
    feat = "{{feature}} " + _MV
    ks = f"max by ({cfg.by('feature')}) ({_raw(cfg, names.FEATURE_DRIFT, method='ks')})"
    bins = {"feature": "$feature"}
    return [
        Panel(
            "PSI per feature (fleet)",
            "timeseries",
            (Target(_fleet(cfg, n["psi"]), feat),),
            thresholds=psi_thresholds,
        ),
        Panel(
            "JS distance per feature (fleet)", "timeseries", (Target(_fleet(cfg, n["js"]), feat),)
        ),
        Panel(
            "KS statistic per feature (in-process, max over instances)",
            "timeseries",
            (Target(ks, feat),),
        ),
        Panel(
            "Top 10 drifted features (PSI)",
            "bargauge",
            (Target(f"topk(10, {_fleet(cfg, n['psi'])})", feat, instant=True),),
            options={"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True},
            thresholds=psi_thresholds,
        ),
        Panel(
            "Reference vs live share per bin ($feature)",
            "barchart",
            (
                Target(
                    _fleet(cfg, n["reference"], **bins), "reference", instant=True, format="table"
                ),
                Target(_fleet(cfg, n["share"], **bins), "live", instant=True, format="table"),
            ),
            "percentunit",
            options={"xField": "bin", "orientation": "vertical", "showValue": "never"},
            transformations=(
                {"id": "joinByField", "options": {"byField": "bin", "mode": "outer"}},
                {
                    "id": "organize",
                    "options": {
                        "includeByName": {"bin": True, "Value #A": True, "Value #B": True},
                        "renameByName": {"Value #A": "reference", "Value #B": "live"},
                    },
                },
            ),
        ),
        Panel(
            "Missing-value share per feature",
            "timeseries",
            (Target(_fleet(cfg, cfg.rule("feature_missing_ratio", cfg.drift_window)), feat),),
            "percentunit",
        ),
    ]


def _prediction_drift(cfg: MonitoringConfig) -> list[Panel]:
    n = r.bin_rule_names(cfg, r.PREDICTIONS)
    out = "{{output}} " + _MV
    methods = f"max by ({cfg.by('output', 'method')}) ({_raw(cfg, names.PREDICTION_DRIFT)})"
    by_q = cfg.by("output", names.QUANTILE)
    quantiles = f"avg by ({by_q}) ({_raw(cfg, names.PREDICTION_QUANTILE)})"
    return [
        Panel(
            "Prediction PSI per output (fleet)",
            "timeseries",
            (Target(_fleet(cfg, n["psi"]), out),),
            thresholds=(cfg.psi_warning, cfg.psi_critical),
        ),
        Panel(
            "Prediction JS distance per output (fleet)",
            "timeseries",
            (Target(_fleet(cfg, n["js"]), out),),
        ),
        Panel(
            "Prediction drift by method (in-process, max over instances)",
            "timeseries",
            (Target(methods, "{{method}} " + out),),
        ),
        Panel(
            "Prediction quantiles (in-process, mean over instances)",
            "timeseries",
            (Target(quantiles, "q{{" + names.QUANTILE + "}} " + out),),
        ),
    ]


def _performance(cfg: MonitoringConfig) -> list[Panel]:
    w = cfg.performance_window
    scored = _raw(cfg, names.PERFORMANCE, metric="~f1|precision|recall")
    scores = f"avg by ({cfg.by('metric')}) ({scored})"
    matrix = (
        f"sum by (actual, predicted) (increase({cfg.series(names.OUTCOMES, **_RAW)}[$__range]))"
    )
    return [
        Panel(
            f"Accuracy ({w}, fleet)",
            "timeseries",
            (Target(_fleet(cfg, cfg.rule("accuracy", w)), _MV),),
            "percentunit",
            thresholds=(cfg.accuracy_target,),
        ),
        Panel(
            "F1, precision, recall (in-process, mean over instances)",
            "timeseries",
            (Target(scores, "{{metric}} " + _MV),),
            "percentunit",
        ),
        Panel(
            f"RMSE and MAE ({w}, fleet)",
            "timeseries",
            (
                Target(_fleet(cfg, cfg.rule("rmse", w)), f"RMSE {_MV}"),
                Target(_fleet(cfg, cfg.rule("mae", w)), f"MAE {_MV}"),
            ),
        ),
        Panel(
            "Confusion matrix (time range)",
            "table",
            (Target(matrix, "", instant=True, format="table"),),
            description="Rows: actual class; columns: predicted class.",
            transformations=(
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "columnField": "predicted",
                        "rowField": "actual",
                        "valueField": "Value",
                    },
                },
            ),
        ),
        Panel(
            "Outcome delay p50 / p90",
            "timeseries",
            _quantiles(cfg, names.OUTCOME_DELAY, (0.5, 0.9)),
            "s",
        ),
        Panel(
            "Concept drift detections",
            "timeseries",
            (
                Target(
                    _increase(cfg, names.CONCEPT_DRIFT_DETECTED, "detector"), "{{detector}} " + _MV
                ),
            ),
            options={"drawStyle": "bars"},
        ),
    ]


def _staleness(cfg: MonitoringConfig) -> list[Panel]:
    return [
        Panel(
            "Model age",
            "stat",
            (Target(_fleet(cfg, cfg.rule("model_age_seconds", "max")), _MV),),
            "s",
            thresholds=(cfg.staleness_days * 86400,),
        ),
        Panel(
            "Reference profile age",
            "stat",
            (Target(_fleet(cfg, cfg.rule("reference_age_seconds", "max")), _MV),),
            "s",
        ),
        Panel(
            "Time since last prediction",
            "stat",
            (Target(_fleet(cfg, cfg.rule("seconds_since_last_prediction", "min")), _MV),),
            "s",
        ),
    ]


def _sdk(cfg: MonitoringConfig) -> list[Panel]:
    return [
        Panel(
            "Internal errors by stage",
            "timeseries",
            (Target(_increase(cfg, names.INTERNAL_ERRORS, "stage"), "{{stage}} " + _MV),),
        ),
        Panel(
            "Dropped observations by reason",
            "timeseries",
            (Target(_increase(cfg, names.DROPPED, "reason"), "{{reason}} " + _MV),),
        ),
        Panel(
            "Unmatched outcomes by reason",
            "timeseries",
            (Target(_increase(cfg, names.OUTCOMES_UNMATCHED, "reason"), "{{reason}} " + _MV),),
        ),
    ]


def rows(config: MonitoringConfig) -> list[tuple[str, list[Panel]]]:
    """The dashboard's rows and their panels, in display order."""
    from modelmon.monitoring.outlier_panels import outlier_panels  # built on this module

    from .segments import segment_panels  # it builds on this module

    return [
        ("Traffic and latency", _traffic(config)),
        ("Errors", _errors(config)),
        ("Confidence", _confidence(config)),
        ("Data drift", _data_drift(config)),
        ("Prediction drift", _prediction_drift(config)),
        ("Outliers", outlier_panels(config)),
        ("Performance", _performance(config)),
        ("Segments", segment_panels(config)),
        ("Staleness", _staleness(config)),
        ("SDK health", _sdk(config)),
    ]


# --- JSON ------------------------------------------------------------------------------


def _field_config(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    for colour, value in zip(("orange", "red"), panel.thresholds, strict=False):
        steps.append({"color": colour, "value": value})
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.kind == "timeseries":
        draw = panel.options.get("drawStyle", "line")
        defaults["custom"] = {"drawStyle": draw, "fillOpacity": 10, "showPoints": "never"}
        if panel.thresholds:
            defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    return {"defaults": defaults, "overrides": []}


def _target_json(target: Target, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": target.expr,
        "format": target.format,
        "legendFormat": target.legend or "__auto",
        "range": not target.instant,
        "instant": target.instant,
        "refId": ref,
    }
    return out


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        }
    return dict(panel.options)


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": _field_config(panel),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "id": pid,
        "options": _options(panel),
        "targets": [_target_json(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        "title": panel.title,
        "transformations": list(panel.transformations),
        "type": panel.kind,
    }


def _layout(config: MonitoringConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y, pid = 0, 1
    for title, panels in rows(config):
        out.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "id": pid,
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        pid, y, x, line = pid + 1, y + 1, 0, 0
        for panel in panels:
            if x + panel.width > 24:
                x, y = 0, y + line
            out.append(_panel_json(panel, pid, x, y))
            pid, x, line = pid + 1, x + panel.width, max(line, panel.height)
        y += line
    return out


def _variable(cfg: MonitoringConfig, name: str, query: str, multi: bool = True) -> dict[str, Any]:
    return {
        "current": {},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "label": name,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def _templating(cfg: MonitoringConfig) -> list[dict[str, Any]]:
    info = names.MODEL_INFO
    ref = names.FEATURE_REFERENCE_RATIO
    return [
        {
            "current": {},
            "hide": 0,
            "includeAll": False,
            "label": "Data source",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "type": "datasource",
        },
        _variable(cfg, "model", f"label_values({cfg.series(info)}, model)"),
        _variable(cfg, "version", f"label_values({cfg.series(info, model='$model')}, version)"),
        _variable(
            cfg,
            "instance",
            f"label_values({cfg.series(info, model='$model', version='$version')}, instance)",
        ),
        _variable(
            cfg,
            "feature",
            f"label_values({cfg.series(ref, model='$model', version='$version')}, feature)",
            multi=False,
        ),
        _variable(
            cfg,
            "segment",
            "label_values("
            f"{cfg.series(names.SEGMENT_PREDICTIONS, model='$model', version='$version')}, "
            "segment)",
        ),
    ]


def render_dashboard(config: MonitoringConfig) -> dict[str, Any]:
    """The dashboard JSON model (Grafana schema 39), uid = the namespace."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Model health from modelmon: traffic, errors, confidence, drift, "
        "performance, staleness and SDK health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _layout(config),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["modelmon", "ml", "monitoring"],
        "templating": {"list": _templating(config)},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": f"{config.namespace}: model health",
        "uid": config.namespace,
        "version": 1,
        "weekStart": "",
    }


def dashboard_queries(config: MonitoringConfig) -> list[tuple[str, str]]:
    """Every panel's PromQL as (panel title, expr), with Grafana variables left in."""
    return [
        (panel.title, target.expr)
        for _, panels in rows(config)
        for panel in panels
        for target in panel.targets
    ]
