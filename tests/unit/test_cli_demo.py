"""``modelmon demo``'s failures are one line on stderr and a non-zero exit, never a traceback.

The demo from a wheel in a fresh venv is tests/integration/test_demo_wheel.py; the full
run from the checkout is tests/integration/test_demo.py.
"""

from __future__ import annotations

import socket

import pytest

from modelmon._cli.demo_app import run as demo_run
from modelmon.cli import main


def _demo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["demo", "--no-tty", *argv])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def test_busy_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err, out = _demo(capsys, "--duration", "5", "--port", str(port))
    assert code == 1
    assert err == [f"modelmon demo: port {port} on 127.0.0.1 is busy; pass --port to use another"]
    assert out == ""


def test_missing_optional_dependency_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module of the extra that is not installed (the real case runs in test_demo_wheel.py).
    monkeypatch.setattr(demo_run, "EXAMPLES_MODULES", ("fastapi", "no_such_module_xyz"))
    code, err, _ = _demo(capsys, "--duration", "5")
    assert code == 1
    assert err == [
        "modelmon demo: needs the 'examples' extra (missing module 'no_such_module_xyz'): "
        "pip install 'modelmon[examples]'"
    ]


def test_every_module_of_the_examples_extra_is_checked() -> None:
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["examples"]
    distributions = {req.split(">")[0].split("=")[0].strip() for req in extra}
    module_of = {"scikit-learn": "sklearn"}
    assert {module_of.get(d, d) for d in distributions} >= set(demo_run.EXAMPLES_MODULES)
    assert demo_run.missing_module() is None  # the dev venv has the extra


@pytest.mark.parametrize("argv", [["--duration", "0"], ["--rps", "-1"]])
def test_non_positive_duration_or_rate_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, err, _ = _demo(capsys, *argv)
    assert code == 1
    assert err == ["modelmon demo: --duration and --rps must be positive"]


def test_version_has_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    """``modelmon --version``, ``__version__`` and the installed metadata agree."""
    import importlib.metadata

    import modelmon
    from modelmon._version import __version__

    assert modelmon.__version__ == __version__ == importlib.metadata.version("modelmon")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"modelmon {__version__}"
