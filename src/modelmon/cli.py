"""The ``modelmon`` command: ``demo``, ``profile``, ``grafana export``, ``report``.

Each subcommand lives in ``modelmon._cli.<name>`` with a ``register(subparsers)``
function (every argument with ``help=``, an ``epilog`` of ``_cli._help.examples``;
``_cli._help`` shows the defaults, ``tests/unit/test_cli_help.py`` checks all of it).
Those modules import nothing optional at load time (each subcommand checks its extra
when it runs), so ``modelmon --help`` works with the runtime dependencies.
:func:`main` builds only the parser of the subcommand it runs (``modelmon profile``
does not load the monitoring renderers behind ``grafana export``'s defaults).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from ._cli import _help, demo, grafana, profile, report

COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "profile": profile,
    "grafana": grafana,
    "report": report,
}


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``modelmon`` parser with the subcommands ``commands`` (default: all)."""
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
    for name, module in COMMANDS.items():
        if commands is None or name in commands:
            module.register(sub)
    return _help.apply(parser)  # every subcommand, also ones registered later: same help


def _version() -> str:
    from . import __version__

    return f"modelmon {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0] if argv else None
    parser = build_parser([first] if first in COMMANDS else None)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
