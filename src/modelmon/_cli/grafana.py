"""``modelmon grafana export DIR``: write the dashboard, rules, routing and rule tests."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelmon.errors import ConfigurationError
from modelmon.monitoring.config import MonitoringConfig

from ._help import examples


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
    d = MonitoringConfig()
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
    export.add_argument(
        "--namespace", default=d.namespace, help="metric name prefix the services export"
    )
    export.add_argument(
        "--selector",
        default=d.selector,
        help='extra label matchers on every query, e.g. \'job="api",env="prod"\' (default: none)',
    )
    export.add_argument(
        "--slo-availability",
        type=float,
        default=d.availability_slo,
        metavar="RATIO",
        help="availability SLO: the share of calls that must not raise",
    )
    export.add_argument(
        "--slo-latency",
        type=float,
        default=d.latency_slo_seconds,
        metavar="SECONDS",
        help="latency SLO threshold; must be a latency histogram bucket boundary",
    )
    export.add_argument(
        "--slo-latency-target",
        type=float,
        default=d.latency_slo_target,
        metavar="RATIO",
        help="share of calls that must be faster than --slo-latency",
    )
    export.add_argument(
        "--psi-warning",
        type=float,
        default=d.psi_warning,
        metavar="PSI",
        help="fleet PSI of a feature or output above which a warning fires",
    )
    export.add_argument(
        "--psi-critical",
        type=float,
        default=d.psi_critical,
        metavar="PSI",
        help="fleet PSI above which the drift alert is critical",
    )
    export.add_argument(
        "--drift-for",
        default=d.drift_for,
        metavar="DURATION",
        help="how long drift must last before its alert fires (Prometheus duration)",
    )
    export.add_argument(
        "--drift-window",
        default=d.drift_window,
        metavar="DURATION",
        help="window over which the fleet PSI is computed (Prometheus duration)",
    )
    export.add_argument(
        "--accuracy-target",
        type=float,
        default=d.accuracy_target,
        metavar="RATIO",
        help="accuracy below which ModelmonAccuracyBelowTarget fires",
    )
    export.add_argument(
        "--rmse-target",
        type=float,
        default=d.rmse_target,
        metavar="VALUE",
        help="RMSE above which ModelmonRMSEAboveTarget fires (default: none, i.e. alert "
        f"on {d.rmse_degradation_factor}x the RMSE of the last week)",
    )
    export.add_argument(
        "--staleness-days",
        type=float,
        default=d.staleness_days,
        metavar="DAYS",
        help="model age at which ModelmonModelStale fires",
    )
    export.add_argument(
        "--runbook-base-url",
        default=d.runbook_base_url,
        metavar="URL",
        help="page the alerts' runbook_url links point to (#<alertname> is appended)",
    )
    export.add_argument("--no-tests", action="store_true", help="do not write promtool rule tests")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config from ``args`` and export; 2 on a configuration error."""
    from modelmon.monitoring import export

    try:
        config = MonitoringConfig(
            namespace=args.namespace,
            selector=args.selector,
            availability_slo=args.slo_availability,
            latency_slo_seconds=args.slo_latency,
            latency_slo_target=args.slo_latency_target,
            psi_warning=args.psi_warning,
            psi_critical=args.psi_critical,
            drift_for=args.drift_for,
            drift_window=args.drift_window,
            accuracy_target=args.accuracy_target,
            rmse_target=args.rmse_target,
            staleness_days=args.staleness_days,
            runbook_base_url=args.runbook_base_url,
        )
        written = export(config, args.directory, include_tests=not args.no_tests)
    except ConfigurationError as exc:
        print(f"modelmon grafana export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {args.directory}")
    return 0
