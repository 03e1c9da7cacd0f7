"""Every option of every ``modelmon`` subcommand has help, a shown default and examples.

Walks the parser tree that ``modelmon.cli.build_parser`` builds, so a subcommand added
later is checked without touching this file.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from modelmon._cli._help import EXAMPLES, parsers
from modelmon.cli import build_parser, main

SKIPPED = (argparse._HelpAction, argparse._VersionAction)


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(p.prog, p) for p in parsers(build_parser())]


def _options() -> list[tuple[str, argparse.Action]]:
    out = []
    for prog, parser in _commands():
        for action in parser._actions:
            if not isinstance(action, SKIPPED):
                out.append((f"{prog} {'/'.join(action.option_strings) or action.dest}", action))
    return out


def _parser_of(where: str) -> argparse.ArgumentParser:
    matching = [(prog, p) for prog, p in _commands() if where.startswith(prog + " ")]
    return max(matching, key=lambda item: len(item[0]))[1]


def _help_text(parser: argparse.ArgumentParser) -> str:
    return parser.format_help()


def test_the_walk_sees_every_subcommand() -> None:
    progs = {prog for prog, _ in _commands()}
    assert {"modelmon", "modelmon demo", "modelmon profile", "modelmon grafana export"} <= progs


@pytest.mark.parametrize(("where", "action"), _options(), ids=[w for w, _ in _options()])
def test_every_option_has_help(where: str, action: argparse.Action) -> None:
    if isinstance(action, argparse._SubParsersAction):
        for choice in action._choices_actions:
            assert choice.help and choice.help.strip(), f"{where} {choice.dest}: no help"
        return
    assert action.help and action.help is not argparse.SUPPRESS, f"{where}: no help text"
    assert len(action.help.strip()) >= 10, f"{where}: help too short: {action.help!r}"


@pytest.mark.parametrize(("where", "action"), _options(), ids=[w for w, _ in _options()])
def test_every_default_is_shown(where: str, action: argparse.Action) -> None:
    if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
        return
    # Compared without whitespace: argparse wraps help columns, even inside a long URL.
    text = "".join(_help_text(_parser_of(where)).split())
    shown = f"(default:{action.default})" if action.default != "" else "(default:none)"
    assert "".join(shown.split()) in text, f"{where}: default {action.default!r} not in --help"


@pytest.mark.parametrize(("prog", "parser"), _commands(), ids=[p for p, _ in _commands()])
def test_every_command_has_examples_and_help_exits_0(
    prog: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.epilog and parser.epilog.startswith(EXAMPLES), f"{prog}: no examples"
    examples = parser.epilog.splitlines()[1:]
    assert any(line.strip().startswith(prog) for line in examples), (prog, examples)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*prog.split()[1:], "--help"])
    assert stop.value.code == 0
    assert "examples:\n  " + prog in out.getvalue()
