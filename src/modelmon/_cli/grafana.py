"""``modelmon grafana export DIR``: write the dashboard, rules, routing and rule tests."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelmon.errors import ConfigurationError

from ._help import examples

if TYPE_CHECKING:
    from modelmon.monitoring.config import MonitoringConfig

#: ``(flag, MonitoringConfig field, type, metavar, help)`` of every ``export`` option.
OPTIONS: tuple[tuple[str, str, Callable[[str], Any], str | None, str], ...] = (
    ("--namespace", "namespace", str, None, "metric name prefix the services export"),
    (
        "--selector",
        "selector",
        str,
        None,
        'extra label matchers on every query, e.g. \'job="api",env="prod"\' (default: none)',
    ),
    (
        "--slo-availability",
        "availability_slo",
        float,
        "RATIO",
        "availability SLO: the share of calls that must not raise",
    ),
    (
        "--slo-latency",
        "latency_slo_seconds",
        float,
        "SECONDS",
        "latency SLO threshold; must be a latency histogram bucket boundary",
    ),
    (
        "--slo-latency-target",
        "latency_slo_target",
        float,
        "RATIO",
        "share of calls that must be faster than --slo-latency",
    ),
    (
        "--psi-warning",
        "psi_warning",
        float,
        "PSI",
        "fleet PSI of a feature or output above which a warning fires",
    ),
    (
        "--psi-critical",
        "psi_critical",
        float,
        "PSI",
        "fleet PSI above which the drift alert is critical",
    ),
    (
        "--drift-for",
        "drift_for",
        str,
        "DURATION",
        "how long drift must last before its alert fires (Prometheus duration)",
    ),
    (
        "--drift-window",
        "drift_window",
        str,
        "DURATION",
        "window over which the fleet PSI is computed (Prometheus duration)",
    ),
    (
        "--accuracy-target",
        "accuracy_target",
        float,
        "RATIO",
        "accuracy below which ModelmonAccuracyBelowTarget fires",
    ),
    (
        "--rmse-target",
        "rmse_target",
        float,
        "VALUE",
        "RMSE above which ModelmonRMSEAboveTarget fires (default: none, i.e. alert on "
        "{rmse_degradation_factor}x the RMSE of the last week)",
    ),
    (
        "--staleness-days",
        "staleness_days",
        float,
        "DAYS",
        "model age at which ModelmonModelStale fires",
    ),
    (
        "--runbook-base-url",
        "runbook_base_url",
        str,
        "URL",
        "page the alerts' runbook_url links point to (#<alertname> is appended)",
    ),
)


def register(subparsers: Any) -> None:
    """Add the ``grafana`` command (with its ``export`` subcommand) to ``subparsers``."""
    parser = subparsers.add_parser(
        "grafana",
        help="Grafana dashboard, Prometheus rules and Alertmanager config as code",
        description="Generate the monitoring files (dashboard, rules, routing) for a config.",
        epilog=examples("modelmon grafana export grafana", "modelmon grafana export --help"),
    )
    commands = parser.add_subparsers(
        dest="grafana_command", required=True, metavar="COMMAND", help="what to do"
    )
    # Here, not at import: the renderers load only when this parser is built (``modelmon
    # profile`` builds its own parser only, see ``modelmon.cli.main``).
    from modelmon.monitoring.config import MonitoringConfig

    d: MonitoringConfig = MonitoringConfig()
    export = commands.add_parser(
        "export",
        help="write every monitoring file for a configuration into DIR",
        description="Write dashboards/, provisioning/, prometheus/ (rules, scrape config, "
        "promtool tests), alertmanager/, otel/ (Collector), kubernetes/ (PrometheusRule, "
        "dashboard ConfigMap), mixin/ (jsonnet) and docker-compose.yml under DIR.",
        epilog=examples(
            "modelmon grafana export grafana",
            "modelmon grafana export my-dir --namespace fraud --selector 'job=\"api\"' \\",
            "    --slo-availability 0.995 --slo-latency 0.25 --accuracy-target 0.9",
            "modelmon grafana export my-dir --rmse-target 12.5 --staleness-days 7 \\",
            "    --runbook-base-url https://wiki.example.org/runbooks/modelmon",
        ),
    )
    export.add_argument(
        "directory", metavar="DIR", help="output directory (created; files are overwritten)"
    )
    for flag, field, kind, metavar, text in OPTIONS:
        export.add_argument(
            flag,
            dest=field,
            type=kind,
            default=getattr(d, field),
            metavar=metavar,
            help=text.format(rmse_degradation_factor=d.rmse_degradation_factor),
        )
    export.add_argument("--no-tests", action="store_true", help="do not write promtool rule tests")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config from ``args`` and export; 2 on a configuration error."""
    from modelmon.monitoring import MonitoringConfig, export

    try:
        config = MonitoringConfig(**{field: getattr(args, field) for _, field, *_ in OPTIONS})
        written = export(config, args.directory, include_tests=not args.no_tests)
    except ConfigurationError as exc:
        print(f"modelmon grafana export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {args.directory}")
    return 0
