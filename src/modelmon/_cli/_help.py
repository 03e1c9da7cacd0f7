"""How every ``modelmon`` subcommand shows its help: defaults shown, examples kept as written.

:func:`apply` is called on the finished parser tree by :func:`modelmon.cli.build_parser`,
so a subcommand added later gets the same formatting without doing anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

EXAMPLES = "examples:\n"


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a meaningful default.

    ``None`` and ``False`` (an unset value, a flag that is off) are not shown; help that
    already spells out its default (``%(default)s`` or ``default``) is left alone.
    An epilog of :func:`examples` keeps its line breaks; other text is wrapped.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from parsers(sub)


def apply(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` and all its subcommand parsers :class:`HelpFormatter`."""
    for each in parsers(parser):
        each.formatter_class = HelpFormatter
    return parser


def examples(*lines: str) -> str:
    """An epilog of example command lines."""
    return EXAMPLES + "\n".join(f"  {line}" for line in lines)
