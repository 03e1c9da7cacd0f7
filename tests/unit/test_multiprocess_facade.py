"""``modelmon.multiprocess`` imports without side effects (layers: test_architecture.py)."""

from __future__ import annotations

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
