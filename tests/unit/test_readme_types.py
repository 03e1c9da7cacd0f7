"""Every Python snippet of the README and of docs/*.md passes ``mypy --strict``.

Each ```` ```python ```` block becomes a module of its own (so two snippets may both
define ``predict``), preceded by :data:`PREAMBLE`: the placeholders a snippet may use
without defining them (the reader's data, model and app). A block right after the line
``<!-- mypy: skip (reason) -->`` is not checked (a fragment that cannot stand alone);
the test fails if a skip marker gives no reason. No snippet may carry ``type: ignore``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!-- mypy: skip(?P<reason>[^>]*)-->\s*$")

# Names the documentation leaves to the reader, declared for a snippet that uses them
# without binding them itself. Typed as loosely as a reader's own objects would be
# (``model`` is Any), except what modelmon makes: ``predict`` is a monitored function.
PLACEHOLDERS = {
    "X_train": "X_train: Any",
    "X_new": "X_new: Any",
    "X_valid": "X_valid: Any",
    "X": "X: Any",
    "model": "model: Any",
    "actual": "actual: Any",
    "actuals": "actuals: list[Any]",
    "meter_provider": "meter_provider: Any",
    "my_exporter": "my_exporter: Any",
    "my_resource": "my_resource: Any",
    "app": "app: Flask",
    "predict": "predict: modelmon.Monitored[[Any], Any]",
}
IMPORTS = "from typing import Any\n\nimport modelmon\nfrom flask import Flask\n"


def bound_names(code: str) -> set[str]:
    """Names a snippet binds at module level (definitions, assignments, imports)."""
    out: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def module_source(code: str) -> str:
    """The snippet preceded by the placeholders it uses and does not bind."""
    bound = bound_names(code)
    declared = [decl for name, decl in PLACEHOLDERS.items() if name not in bound]
    return IMPORTS + "\n".join(declared) + "\n\n" + code


def snippets() -> list[tuple[str, str]]:
    """``(name, code)`` of every checked snippet, in page order."""
    out: list[tuple[str, str]] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for i, match in enumerate(FENCE.finditer(text)):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.search(before)
            if skip is not None:
                assert skip.group("reason").strip(" ()"), f"{page.name}: skip without reason"
                continue
            name = re.sub(r"\W", "_", page.stem.lower())
            out.append((f"snippet_{name}_{i:02d}", match.group(1)))
    return out


def test_snippets_are_found_and_carry_no_type_ignore() -> None:
    found = snippets()
    names = [n for n, _ in found]
    assert any(n.startswith("snippet_readme_") for n in names)
    assert len(found) >= 8, names  # the README alone has more: the extraction broke
    for name, code in found:
        assert "type: ignore" not in code, name


def test_every_snippet_passes_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    found = snippets()
    files: list[Path] = []
    for name, code in found:
        path = tmp_path / f"{name}.py"
        path.write_text(module_source(code), encoding="utf-8")
        files.append(path)
    report = _mypy(tmp_path, *files)
    assert f"Success: no issues found in {len(files)} source files" in report, report


TYPED_USE = """
from __future__ import annotations

from fastapi import FastAPI
from flask import Flask

import modelmon
from modelmon.integrations import fastapi as mm_fastapi
from modelmon.integrations import flask as mm_flask


@modelmon.monitored(model="m", version="1", registry=False, buffer_size=8, strict=True)
def predict(rows: list[float], scale: float = 1.0) -> list[float]:
    return [r * scale for r in rows]


@modelmon.monitored(model="m", version="2", registry=False)
async def apredict(x: float) -> float:
    return x


class Model:
    @modelmon.monitored(model="m", version="3", registry=False)
    def predict(self, x: int) -> str:
        return str(x)


async def main() -> float:
    return await apredict(1.0)


ys: list[float] = predict([1.0], scale=2.0)
predict.monitor.record_outcome("id", 1.0)
label: str = Model().predict(3)
Model().predict.monitor.fold()
mon = modelmon.Monitor("m", "4", registry=False)
wrapped = mon.wrap(predict.__wrapped__)
wrapped.monitor.fold()
est = modelmon.instrument(object(), "m", "5", registry=False, classes=["a", "b"])
api: FastAPI = mm_fastapi.instrument(FastAPI(), registry=None, namespace="svc", buckets=[0.1])
web = mm_flask.instrument(Flask("web"), registry=None, excluded_routes=["/health"])
"""

MISTAKES = {
    'modelmon.monitored(model="m", version="1", bufer_size=3)': 'argument "bufer_size"',
    'modelmon.instrument(object(), "m", "1", stirct=True)': 'Unexpected keyword argument "stirct"',
    'modelmon.monitored(model="m", version="1", buffer_size="8")': 'incompatible type "str"',
    'predict("not rows")': 'incompatible type "str"; expected "list[float]"',
    "wrong: int = predict([1.0])": "Incompatible types in assignment",
    'Model().predict("x")': 'incompatible type "str"; expected "int"',
    "predict.monitor.no_such_method()": 'has no attribute "no_such_method"',
    'mm_fastapi.instrument(FastAPI(), namespce="svc")': 'Unexpected keyword argument "namespce"',
    'mm_flask.instrument(Flask("w"), buckets="fast")': 'incompatible type "str"',
}


def test_monitored_functions_and_options_are_typed(tmp_path: Path) -> None:
    """Correct use passes ``mypy --strict``; each mistake is reported on its own line."""
    pytest.importorskip("mypy")
    good = tmp_path / "typed_use.py"
    good.write_text(TYPED_USE, encoding="utf-8")
    bad = tmp_path / "typed_mistakes.py"
    lines = list(MISTAKES)
    bad.write_text(TYPED_USE + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    first = TYPED_USE.count("\n") + 2
    out = _mypy(tmp_path, good, bad)
    assert "typed_use.py" not in out, out
    for i, (line, message) in enumerate(MISTAKES.items()):
        reported = [r for r in out.splitlines() if r.startswith(f"typed_mistakes.py:{first + i}:")]
        assert any(message in r for r in reported), (line, out)


def test_monitor_options_type_lists_every_monitor_keyword() -> None:
    import inspect

    from modelmon import Monitor, MonitorExtraOptions, MonitorOptions, monitored

    params = inspect.signature(Monitor.__init__).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(MonitorOptions.__annotations__) == keywords
    explicit = set(inspect.signature(monitored).parameters) - {"model", "version", "options"}
    assert set(MonitorExtraOptions.__annotations__) == keywords - explicit


def _mypy(cwd: Path, *files: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache" / "readme"),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    return result.stdout.replace(str(cwd) + "/", "")


def test_the_examples_pass_mypy_strict_without_type_ignore(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    for path in examples:
        assert "type: ignore" not in path.read_text(encoding="utf-8"), path.name
    report = _mypy(tmp_path, *examples)
    assert f"Success: no issues found in {len(examples)} source files" in report, report
