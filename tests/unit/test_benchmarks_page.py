"""The benchmark page is rendered from results only: every figure and verdict comes from JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def harness(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(BENCH))
    import _harness

    return _harness


def test_interleave_rotates_the_order_and_drops_the_warm_up(harness: object) -> None:
    calls: list[str] = []

    def side(name: str) -> object:
        def run() -> float:
            calls.append(name)
            return float(len(calls))

        return run

    kept = harness.interleave({"a": side("a"), "b": side("b"), "c": side("c")}, rounds=3)  # type: ignore[attr-defined]
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert kept == {"a": [6.0, 8.0, 10.0], "b": [4.0, 9.0, 11.0], "c": [5.0, 7.0, 12.0]}


def test_page_holds_every_figure_with_its_goal_verdict(harness: object, tmp_path: Path) -> None:
    h = harness
    report = h.Report("overhead.py", "Per-call cost", "python benchmarks/overhead.py", 5)  # type: ignore[attr-defined]
    report.peers = {"prometheus-client": "9.9"}
    report.add(h.Figure("a", "ratio a", "x", h.Stat.of([0.8, 0.9, 1.3]), goal="<= 1.0", issue=15))  # type: ignore[attr-defined]
    report.add(h.Figure("b", "ratio b", "x", h.Stat.of([1.4, 1.5, 1.6]), goal="<= 1.25", issue=15))  # type: ignore[attr-defined]
    report.add(h.Figure("c", "speed c", "M/s", h.Stat.of([30.0]), goal=">= 20"))  # type: ignore[attr-defined]
    report.write(str(tmp_path / "overhead.json"))
    doc = json.loads((tmp_path / "overhead.json").read_text())
    assert [f["met"] for f in doc["figures"]] == [True, False, True]

    sys.path.insert(0, str(BENCH))
    try:
        import run
    finally:
        sys.path.remove(str(BENCH))
    page = run.render(run.load(tmp_path))
    assert "| ratio a | 0.90 [0.80-1.30] | x | ≤ 1.0 (#15): met |" in page
    assert "| ratio b | 1.50 [1.40-1.60] | x | ≤ 1.25 (#15): **not met** |" in page
    assert "| speed c | 30.0 | M/s | ≥ 20: met |" in page
    assert "- issue #15: 1 of 2 goals met, 1 not met" in page
    assert "- no issue: 1 of 1 goals met" in page
    assert "prometheus-client 9.9" in page
    assert "Command: `python benchmarks/overhead.py`" in page
