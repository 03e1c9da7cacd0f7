"""``modelmon.multiprocess`` imports without side effects; the package imports only downward."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import modelmon

SRC = Path(modelmon.__file__).parent

SCRIPT = """
import os, sys, threading
target = sys.argv[1]
os.environ["MODELMON_MULTIPROC_DIR"] = target
import prometheus_client
import modelmon
collectors = set(prometheus_client.REGISTRY._collector_to_names)
threads = threading.active_count()
import modelmon.multiprocess
assert not os.path.exists(target), "importing the facade created the directory"
assert threading.active_count() == threads, "importing the facade started a thread"
assert set(prometheus_client.REGISTRY._collector_to_names) == collectors, "registered a collector"
assert "modelmon.integrations" not in sys.modules, "an exporter imported an integration"
print("ok")
"""


def test_importing_the_facade_creates_no_directory_collector_or_thread(tmp_path: Path) -> None:
    target = tmp_path / "not-yet"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert not target.exists()


def _imports(path: Path) -> set[str]:
    """Absolute names of the modelmon modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return {n for n in found if n.startswith("modelmon")}


def test_exporters_and_aggregates_never_import_upward() -> None:
    upward = {
        "exporters": ("modelmon.integrations", "modelmon.monitoring", "modelmon._cli"),
        "aggregates": ("modelmon.exporters", "modelmon.integrations", "modelmon.monitor"),
    }
    bad = []
    for layer, forbidden in upward.items():
        for path in sorted((SRC / layer).rglob("*.py")):
            for name in _imports(path):
                if name.startswith(forbidden):
                    bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert bad == []


def test_the_multiprocess_package_has_small_modules() -> None:
    sizes = {
        p.name: len(p.read_text().splitlines())
        for p in (SRC / "exporters" / "multiprocess").glob("*.py")
    }
    assert len(sizes) >= 8
    assert max(sizes.values()) < 600, sizes
