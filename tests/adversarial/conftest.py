"""Adversarial tests: one per defect of the hostile-traffic probe (issue 13).

Each test drives the real code path a hostile client or a fault reaches (real files,
real sockets, real forks) and asserts the bound or the behaviour the fix promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmon.exporters import multiprocess as mpx

mpx.install()


@pytest.fixture
def mpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh multi-process directory for this test (the variable unset afterwards)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    path = tmp_path / "mp"
    path.mkdir()
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(path))
    yield path
