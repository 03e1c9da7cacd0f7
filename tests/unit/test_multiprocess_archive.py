"""Dead workers fold into one archive: the directory stays small, no counter ever moves back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.exporters import multiprocess as mpx
from modelmon.exporters.multiprocess import codec
from modelmon.exporters.multiprocess.read import read_archive
from tests.unit._mp_files import FIRST_PID, duration_sum, merged_view, write_process

SUM = ("modelmon_request_duration_seconds_sum", (("model", "m"), ("version", "1")))


def _dead_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("modelmon_dead_*.state"))


def test_thirty_dead_workers_fold_into_one_file_with_bit_identical_totals(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    docs = [
        write_process(tmp_path, FIRST_PID + i, 1_000 + i, rng.exponential(0.05, size=40))
        for i in range(30)
    ]
    # The float sums depend on the order of their terms here (so the test can fail):
    in_order = 0.0
    for doc in docs:
        in_order += duration_sum(doc)
    reverse = 0.0
    for doc in reversed(docs):
        reverse += duration_sum(doc)
    assert in_order != reverse
    before = merged_view(tmp_path)
    assert before[SUM] == in_order
    for i in rng.permutation(30):
        assert mpx.mark_process_dead(FIRST_PID + int(i), path=str(tmp_path)) is True
        assert merged_view(tmp_path) == before  # exactly: not lost, not doubled, not rounded
    assert _dead_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.glob("*.state")) == ["modelmon_archive.state"]
    assert (tmp_path / "modelmon_archive.state").stat().st_size < 3 * len(codec.encode(docs[0]))


def test_a_dead_worker_started_after_a_live_one_waits_for_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for i in range(3):
        write_process(tmp_path, FIRST_PID + i, 10 + i, rng.exponential(0.05, size=20))
    before = merged_view(tmp_path)
    mpx.mark_process_dead(FIRST_PID + 1, path=str(tmp_path))  # the first one still "lives"
    assert _dead_files(tmp_path) == [f"modelmon_dead_{FIRST_PID + 1}_{FIRST_PID + 1:032x}.state"]
    assert not (tmp_path / "modelmon_archive.state").exists()
    assert merged_view(tmp_path) == before
    mpx.mark_process_dead(FIRST_PID, path=str(tmp_path))  # now both fold, in order
    assert _dead_files(tmp_path) == []
    assert read_archive(str(tmp_path)).through == (11, f"{FIRST_PID + 1:032x}")
    assert merged_view(tmp_path) == before


def test_a_folded_worker_left_behind_is_not_counted_twice(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for i in range(2):
        write_process(tmp_path, FIRST_PID + i, 10 + i, rng.exponential(0.05, size=20))
    before = merged_view(tmp_path)
    stale = (tmp_path / f"modelmon_{FIRST_PID}.state").read_bytes()
    mpx.mark_process_dead(FIRST_PID, path=str(tmp_path))
    # As if the folding process died between writing the archive and deleting the file:
    dead = tmp_path / f"modelmon_dead_{FIRST_PID}_{FIRST_PID:032x}.state"
    dead.write_bytes(stale)
    assert merged_view(tmp_path) == before
    mpx.mark_process_dead(FIRST_PID + 1, path=str(tmp_path))
    assert not dead.exists()  # cleaned up by the next fold
    assert merged_view(tmp_path) == before


def test_an_unreadable_archive_is_never_overwritten(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for i in range(2):
        write_process(tmp_path, FIRST_PID + i, 10 + i, rng.exponential(0.05, size=20))
    mpx.mark_process_dead(FIRST_PID, path=str(tmp_path))
    archive = tmp_path / "modelmon_archive.state"
    before = merged_view(tmp_path)  # remembers the archive's content
    archive.write_bytes(b"\x00garbage")
    assert merged_view(tmp_path) == before  # the last good archive counts
    mpx.mark_process_dead(FIRST_PID + 1, path=str(tmp_path))
    assert archive.read_bytes() == b"\x00garbage"  # not replaced by a smaller total
    assert _dead_files(tmp_path) == [f"modelmon_dead_{FIRST_PID + 1}_{FIRST_PID + 1:032x}.state"]
    assert merged_view(tmp_path) == before


def test_a_new_process_is_placed_after_everything_folded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(8)
    future = 2**62  # a start key from a clock far ahead: the new process must still follow
    write_process(tmp_path, FIRST_PID, future, rng.exponential(0.05, size=10))
    mpx.mark_process_dead(FIRST_PID, path=str(tmp_path))
    assert read_archive(str(tmp_path)).through[0] == future
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(tmp_path))
    mon = modelmon.Monitor("m", "1", registry=CollectorRegistry())
    try:
        mpx.flush()
        own = codec.decode((tmp_path / f"modelmon_{os.getpid()}.state").read_bytes())
        # Nothing recorded yet (unless other tests' monitors linger): no place needed.
        assert (own["started"] is None) == codec.is_empty(own)
        mon.observe({"a": 1.0}, [0.5], latency_s=0.01)
        mpx.flush()
        own = codec.decode((tmp_path / f"modelmon_{os.getpid()}.state").read_bytes())
        assert own["started"] > future
    finally:
        mon.close()
