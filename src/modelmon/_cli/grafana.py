"""``modelmon grafana export DIR``: write the dashboard, rules, routing and rule tests."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelmon.errors import ConfigurationError


def register(subparsers: Any) -> None:
    """Add the ``grafana`` command (with its ``export`` subcommand) to ``subparsers``."""
    parser = subparsers.add_parser(
        "grafana", help="Grafana dashboard, Prometheus rules and Alertmanager config as code"
    )
    commands = parser.add_subparsers(dest="grafana_command", required=True)
    export = commands.add_parser(
        "export",
        help="write every monitoring file for a configuration into DIR",
        description="Write dashboards/, provisioning/, prometheus/ (rules, scrape config, "
        "promtool tests), alertmanager/, otel/ (Collector), kubernetes/ (PrometheusRule, "
        "dashboard ConfigMap), mixin/ (jsonnet) and docker-compose.yml under DIR.",
    )
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--namespace", default="modelmon", help="metric name prefix")
    export.add_argument(
        "--selector", default="", help='extra label matchers, e.g. \'job="api",env="prod"\''
    )
    export.add_argument("--slo-availability", type=float, default=0.999, metavar="RATIO")
    export.add_argument(
        "--slo-latency",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="latency threshold; must be a latency histogram bucket boundary",
    )
    export.add_argument("--slo-latency-target", type=float, default=0.99, metavar="RATIO")
    export.add_argument("--psi-warning", type=float, default=0.1)
    export.add_argument("--psi-critical", type=float, default=0.25)
    export.add_argument("--drift-for", default="30m", metavar="DURATION")
    export.add_argument("--drift-window", default="30m", metavar="DURATION")
    export.add_argument("--accuracy-target", type=float, default=0.8)
    export.add_argument("--rmse-target", type=float, default=None)
    export.add_argument("--staleness-days", type=float, default=30)
    export.add_argument("--runbook-base-url", default=None, metavar="URL")
    export.add_argument("--no-tests", action="store_true", help="do not write promtool rule tests")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config from ``args`` and export; 2 on a configuration error."""
    from modelmon.grafana import MonitoringConfig, export

    extra = {"runbook_base_url": args.runbook_base_url} if args.runbook_base_url else {}
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
            **extra,
        )
        written = export(config, args.directory, include_tests=not args.no_tests)
    except ConfigurationError as exc:
        print(f"modelmon grafana export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {args.directory}")
    return 0
