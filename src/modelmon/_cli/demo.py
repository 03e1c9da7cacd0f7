"""The ``modelmon demo`` subcommand's arguments; what it runs is :mod:`modelmon._cli.demo_app`."""

from __future__ import annotations

import argparse
from typing import Any

from ._help import examples


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="serve the FastAPI example, drive traffic, inject drift, errors and an accuracy drop",
        description=(
            "Serve the FastAPI example shipped in the package under uvicorn on 127.0.0.1, "
            "drive traffic from the held-out split, and after a third of --duration inject "
            "data drift, an error burst and wrong labels; shows the live metrics and the "
            "alert rules that would fire."
        ),
        epilog=examples(
            "modelmon demo",
            "modelmon demo --duration 30 --port 8100 --rps 20",
            "modelmon demo --with-prometheus --no-tty",
        ),
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="how long to drive traffic, in seconds"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the example app on 127.0.0.1"
    )
    parser.add_argument(
        "--rps", type=float, default=50.0, help="requests per second sent to the app"
    )
    parser.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also start Prometheus (and Alertmanager) on loopback with the bundled rules",
    )
    parser.add_argument(
        "--no-tty", action="store_true", help="plain log lines instead of a live screen"
    )
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .demo_app.run import main_from_args

    return main_from_args(args)
