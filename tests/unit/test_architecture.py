"""The layout of src/modelmon: no import cycle, imports only downward, no module too long.

Read from the source with ``ast`` (nothing is imported):

* **cycles**: between modules, over module-level imports (imports inside functions run
  later and ``if TYPE_CHECKING:`` imports never run, so neither can deadlock an import);
* **layers**: every import, lazy ones in functions included (a lazy upward import is
  still a dependency of the lower layer on the upper one), ``TYPE_CHECKING`` imports
  excepted (types only), must go to the same or a lower layer of :data:`LAYERS`;
* **length**: a module over :data:`MAX_LINES` lines needs a comment at its top saying
  why (a line starting with ``# Long module:`` in its first 40 lines), or an entry in
  :data:`PENDING_SPLITS` naming who is splitting it.

The implicit import of a parent package (``modelmon.aggregates`` when
``modelmon.aggregates.drift`` is imported) is not an edge: the package's ``__init__``
re-exports the public surface and sits in the layer table like any module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "modelmon"
PACKAGE = "modelmon"
MAX_LINES = 600
LONG_MARKER = "# Long module:"

# Bottom to top. A module's layer is that of the longest prefix listed (a package's
# entry covers its modules). Only imports to the same or a lower layer are allowed.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation: pure maths, value types, names",
        (
            "_version",
            "_cached",
            "_generations",
            "errors",
            "names",
            "points",
            "batch",
            "_extract_types",
            "_extract_dicts",
            "category_vocabulary",
            "extract",
            "extract_outputs",
            "sketches",
            "drift",
            "drift_decision",
            "concept_drift",
            "profile",
            "profile_builder",
            "_profile_member",
            "_profile_data",
            "_profile_columns",
            "_profile_state",
            "_profile_centred",
            "_profile_json",
            "segments",
            "exact_sums",
            "outliers",
            "outlier_moments",
            "schema_learning",
            "_signatures",
            "_internal.ids",
            "_internal.health",
            "_internal.docs",
        ),
    ),
    (
        "call path: buffer, hot path, fold, plug points",
        (
            "buffer",
            "context",
            "fold",
            "fold_parts",
            "_hotpath",
            "_tracing",
            "_setup",
            "_internal.registry",
            "_internal.folder",
            "_internal.failures",
            "_internal.identity",
            "_internal",
        ),
    ),
    # The fold hands batches to the aggregates (they import ``batch``, never the
    # monitor); the monitor is the composition root that builds them, so it sits above.
    ("aggregates", ("aggregates", "id_scheme")),
    ("monitor", ("monitor", "decorator", "live")),
    # ``report.snapshot``: a monitor's state read through the exporters' translation
    # (the MLflow integration logs it, the HTML report renders it).
    ("exporters", ("exporters", "report.snapshot")),
    ("integrations", ("integrations", "jobs")),
    (
        "views, CLI and façades",
        (
            "report",
            "monitoring",
            "_cli",
            "cli",
            "grafana",
            "otel",
            "multiprocess",
            "mlflow",
            "dask",
            "spark",
            "_extensions",
            "__main__",
            "",  # the package itself (``modelmon/__init__.py``)
        ),
    ),
)

# Known upward imports, each with the work that removes it. Keep this list short.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Modules over MAX_LINES whose split is in progress elsewhere (path: who and why).
PENDING_SPLITS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    target: str  # dotted name relative to the package ("" is the package)
    lineno: int
    module_level: bool
    type_checking: bool


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, in_function: bool, in_type_checking: bool
) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function, in_type_checking
            continue
        func = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, in_function, True)
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, in_function, in_type_checking)
            continue
        yield from _walk(child, in_function or func, in_type_checking)


def _walk_stmt(
    stmt: ast.AST, in_function: bool, in_type_checking: bool
) -> Iterator[tuple[ast.AST, bool, bool]]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield stmt, in_function, in_type_checking
    else:
        wrapper = ast.Module(body=[stmt], type_ignores=[])  # type: ignore[list-item]
        yield from _walk(wrapper, in_function, in_type_checking)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The modelmon modules ``name`` imports (resolved to modules where they exist)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    out: list[Import] = []
    for node, in_function, in_tc in _walk(tree, False, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    targets.append(alias.name[len(PACKAGE) + 1 :])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here if is_package else here[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                base = node.module[len(PACKAGE) + 1 :]
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                targets.append(sub if sub in known else base)
        for target in targets:
            out.append(Import(target, node.lineno, not in_function, in_tc))
    return out


def layer_of(name: str) -> int:
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix and name.startswith(prefix + ".")) or prefix == ""
            if matches and len(prefix) > best_len and (prefix or name == ""):
                best, best_len = i, len(prefix)
    return best


def graph() -> dict[str, list[Import]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a list of modules (first repeated last), else None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(edges, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if color.get(nxt, BLACK) == GREY:
                return [*stack[stack.index(nxt) :], nxt]
            if color.get(nxt) == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for node in sorted(edges):
        if color[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


# --- the checks on the tree ---------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = [name for name in modules() if layer_of(name) < 0]
    assert not missing, f"add these modules to LAYERS in {__file__}: {missing}"


def test_no_import_cycle() -> None:
    edges = {
        name: {
            i.target for i in imps if i.module_level and not i.type_checking and i.target != name
        }
        for name, imps in graph().items()
    }
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_only_go_downward() -> None:
    bad = []
    for name, imps in graph().items():
        mine = layer_of(name)
        for imp in imps:
            if imp.type_checking or (name, imp.target) in ALLOWED_UPWARD:
                continue
            theirs = layer_of(imp.target)
            if theirs > mine:
                bad.append(
                    f"{name} (layer {LAYERS[mine][0]!r}) line {imp.lineno} imports "
                    f"{imp.target} (layer {LAYERS[theirs][0]!r})"
                )
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_module_over_the_limit_without_a_reason() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        rel = path.relative_to(SRC).as_posix()
        if len(lines) <= MAX_LINES or rel in PENDING_SPLITS:
            continue
        if not any(line.startswith(LONG_MARKER) for line in lines[:40]):
            bad.append(f"{rel}: {len(lines)} lines")
    assert not bad, (
        f"modules over {MAX_LINES} lines without a '{LONG_MARKER} <why>' comment in their "
        "first 40 lines: " + ", ".join(bad)
    )


def private_imports(path: Path) -> list[tuple[int, str]]:
    """``from modelmon.x import _name`` lines with no comment saying why just above."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.ImportFrom) or not (node.level or _ours(node.module)):
            continue
        private = [
            a.name
            for a in node.names
            if a.name.startswith("_") and not a.name.endswith("__") and a.name not in MODULE_NAMES
        ]
        above = lines[max(node.lineno - 6, 0) : node.lineno - 1]
        if private and not any("private" in line.lower() and "#" in line for line in above):
            out.append((node.lineno, ", ".join(private)))
    return out


# Package-private modules (``from . import _setup``) are not private names.
MODULE_NAMES = frozenset(p.stem for p in SRC.rglob("*.py")) | frozenset(
    p.name for p in SRC.rglob("*") if p.is_dir()
)


def _ours(module: str | None) -> bool:
    return module is not None and (module == PACKAGE or module.startswith(PACKAGE + "."))


# Private imports still to remove (module: who removes them).
ALLOWED_PRIVATE_IMPORTS: dict[str, str] = {}


def test_no_private_name_imported_from_another_module_without_a_reason() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in ALLOWED_PRIVATE_IMPORTS:
            continue
        bad += [f"{rel}:{line} imports {names}" for line, names in private_imports(path)]
    assert not bad, "private names imported with no '# ... private ...' comment above:\n" + (
        "\n".join(bad)
    )


# --- the checker itself, on small trees ------------------------------------------------


def test_find_cycle_reports_the_cycle_and_accepts_a_dag() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import names\n", [("names", True, False)]),
        ("from .aggregates.drift import X\n", [("aggregates.drift", True, False)]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .monitor import M\n",
            [("monitor", True, True)],
        ),
        ("def f():\n    from .report import r\n", [("report", False, False)]),
        ("import modelmon.exporters.otel\n", [("exporters.otel", True, False)]),
    ],
)
def test_imports_are_resolved_with_their_kind(
    tmp_path: Path, source: str, expected: list[tuple[str, bool, bool]]
) -> None:
    path = tmp_path / "fold.py"
    path.write_text(source, encoding="utf-8")
    known = {"names", "aggregates.drift", "monitor", "report", "exporters.otel", "fold"}
    got = [(i.target, i.module_level, i.type_checking) for i in imports_of("fold", path, known)]
    assert got == expected


def test_private_imports_need_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("from .a import _x, y\n# private on purpose: a twin\nfrom .b import _z\n")
    assert private_imports(path) == [(1, "_x")]


def test_layers_place_modules_by_longest_prefix() -> None:
    assert layer_of("_internal.registry") == 1
    assert layer_of("_internal.ids") == 0
    assert layer_of("aggregates.drift") == 2
    assert layer_of("exporters.multiprocess.merge") == 4  # a future subpackage
    assert layer_of("") == len(LAYERS) - 1
    assert layer_of("monitor") < layer_of("exporters.prometheus") < layer_of("integrations.asgi")
