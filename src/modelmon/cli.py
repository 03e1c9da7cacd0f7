"""The ``modelmon`` command: ``demo``, ``profile``, ``grafana export``.

Each subcommand lives in ``modelmon._cli.<name>`` with a ``register(subparsers)``
function; a subcommand whose module is missing is simply not offered.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: tuple[str, ...] = ("demo", "profile", "grafana")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmon", description="Production monitoring for machine-learning models."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"modelmon._cli.{name}")
        except ImportError:
            continue
        module.register(sub)
    return parser


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
