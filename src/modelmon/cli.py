"""The ``modelmon`` command: ``demo``, ``profile``, ``grafana export``.

Each subcommand lives in ``modelmon._cli.<name>`` with a ``register(subparsers)``
function (every argument with ``help=``, an ``epilog`` of ``_cli._help.examples``;
``_cli._help`` shows the defaults, ``tests/unit/test_cli_help.py`` checks all of it).
Those modules import nothing optional at load time (each subcommand checks its extra
when it runs), so ``modelmon --help`` works with the runtime dependencies.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._cli import _help, demo, grafana, profile


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmon",
        description="Production monitoring for machine-learning models.",
        epilog=_help.examples(
            "modelmon demo --duration 30",
            "modelmon profile train.csv --prediction-column y -o reference.json",
            "modelmon grafana export grafana",
            "modelmon COMMAND --help",
        ),
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (demo, profile, grafana):
        module.register(sub)
    return _help.apply(parser)  # every subcommand, also ones registered later: same help


def _version() -> str:
    from . import __version__

    return f"modelmon {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
