"""A scrape with no worker file changed reads no file; any change is seen at once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modelmon.exporters.multiprocess import CACHE, codec, read
from modelmon.exporters.multiprocess.merge import _MERGED
from modelmon.exporters.multiprocess.read import identical
from tests.unit._mp_files import FIRST_PID, merged_view, write_process

REQUESTS = ("modelmon_requests_total", (("model", "m"), ("version", "1")))


def _replace(path: Path, pid: int, calls: int, side: Path) -> None:
    """Write process ``pid``'s file the way modelmon does: a new file renamed into place."""
    side.mkdir(exist_ok=True)
    write_process(side, pid, 1 + pid - FIRST_PID, np.full(calls, 0.01))
    name = f"modelmon_{pid}.state"
    os.replace(side / name, path / name)


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # Files written by the test are younger than the racy window: take them as settled.
    monkeypatch.setattr(read, "RACY_NS", 0)


@pytest.mark.usefixtures("no_racy_window")
def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    side = tmp_path / "side"
    mp = tmp_path / "mp"
    mp.mkdir()
    for i in range(3):
        _replace(mp, FIRST_PID + i, 10 + i, side)
    reads = CACHE.reads
    first = merged_view(mp)
    assert first[REQUESTS] == 33
    assert CACHE.reads - reads == 3
    for _ in range(3):
        assert merged_view(mp) == first
    assert CACHE.reads - reads == 3, "no file changed: none is read again"

    _replace(mp, FIRST_PID + 1, 20, side)  # changed
    assert merged_view(mp)[REQUESTS] == 42
    assert CACHE.reads - reads == 6
    _replace(mp, FIRST_PID + 3, 5, side)  # added
    assert merged_view(mp)[REQUESTS] == 47
    (mp / f"modelmon_{FIRST_PID}.state").unlink()  # removed
    assert merged_view(mp)[REQUESTS] == 37
    reads = CACHE.reads
    assert merged_view(mp)[REQUESTS] == 37
    assert CACHE.reads == reads


def test_a_file_just_written_is_read_again(tmp_path: Path) -> None:
    # Within the racy window an in-place rewrite may keep (inode, size, mtime): read it.
    write_process(tmp_path, FIRST_PID, 1, np.full(5, 0.01))
    reads = CACHE.reads
    assert merged_view(tmp_path)[REQUESTS] == 5
    assert merged_view(tmp_path)[REQUESTS] == 5
    assert CACHE.reads - reads == 2


@pytest.mark.usefixtures("no_racy_window")
def test_an_unreadable_file_is_retried(tmp_path: Path) -> None:
    write_process(tmp_path, FIRST_PID, 1, np.full(5, 0.01))
    (tmp_path / f"modelmon_{FIRST_PID + 1}.state").write_bytes(b"\x00garbage")
    reads = CACHE.reads
    assert merged_view(tmp_path)[REQUESTS] == 5
    assert merged_view(tmp_path)[REQUESTS] == 5
    assert CACHE.reads - reads == 4, "a failed read keeps no signature"


def test_a_rewrite_with_unchanged_aggregates_keeps_the_merged_sum(tmp_path: Path) -> None:
    # A worker rewrites its file (a new time): the merge is not computed again;
    # a changed aggregate is merged again.
    write_process(tmp_path, FIRST_PID, 1, np.full(5, 0.01))
    target = tmp_path / f"modelmon_{FIRST_PID + 1}.state"
    doc = write_process(tmp_path, FIRST_PID + 1, 2, np.full(7, 0.02))
    first = merged_view(tmp_path)
    built = _MERGED.built
    doc["written_at"] += 60.0
    target.write_bytes(codec.encode(doc))
    decoded = CACHE.decoded
    assert merged_view(tmp_path) == first
    assert CACHE.decoded == decoded + 1, "the rewritten file is decoded"
    assert _MERGED.built == built, "its aggregates are unchanged: the merged sum is kept"
    doc = write_process(tmp_path, FIRST_PID + 1, 2, np.full(8, 0.02))
    assert merged_view(tmp_path)[REQUESTS] == 13
    assert _MERGED.built == built + 1


def test_identical_is_bit_exact() -> None:
    assert identical({"a": [1.0, np.arange(3.0)]}, {"a": [1.0, np.arange(3.0)]})
    assert not identical({"a": 0.0}, {"a": -0.0})
    assert not identical(float("nan"), float("nan"))
    assert not identical(np.arange(3.0), np.arange(3))  # dtype
    assert not identical(np.zeros((2, 2)), np.zeros(4))  # shape
    assert not identical({"a": 1, "b": 2}, {"b": 2, "a": 1})  # order
    assert not identical([1.0], (1.0,))
    assert not identical([1, "x"], [1.0, "x"])  # int and float
    assert not identical([True], [1])
    assert not identical([0.0, 1], [-0.0, 1])
    assert identical([1, "x", None, [2.5]], [1, "x", None, [2.5]])
    assert not identical([[2.5]], [[float("nan")]])


@pytest.mark.usefixtures("no_racy_window")
def test_a_scrape_builds_only_the_workers_that_changed(tmp_path: Path) -> None:
    # O(changed workers): the aggregates of unchanged entries are built once and merged
    # as they are; the merged view equals a merge of every file from scratch.
    from modelmon.exporters.multiprocess import clear_caches
    from modelmon.profile import ReferenceProfile

    rng = np.random.default_rng(4)
    data = np.column_stack([rng.normal(size=500), rng.integers(0, 3, 500).astype(float)])
    ref = ReferenceProfile.from_data(data, feature_names=["a", "b"], created_at=0.0)
    side = tmp_path / "side"
    mp = tmp_path / "mp"
    mp.mkdir()
    (mp / f"modelmon_profile_{ref.fingerprint}.json").write_text(ref.dumps())

    def replace(pid: int, calls: int) -> None:
        side.mkdir(exist_ok=True)
        write_process(side, pid, 1 + pid - FIRST_PID, rng.exponential(0.05, calls), ref)
        os.replace(side / f"modelmon_{pid}.state", mp / f"modelmon_{pid}.state")

    for i in range(4):
        replace(FIRST_PID + i, 20 + i)
    merged_view(mp)
    built = _MERGED._built[("modelmon", "m", "1")]
    per_entry = len(
        codec.decode((mp / f"modelmon_{FIRST_PID}.state").read_bytes())["monitors"][0]["aggregates"]
    )
    for changed in (FIRST_PID + 2, FIRST_PID + 3, FIRST_PID + 1):
        before = built.built
        replace(changed, 31)
        view = merged_view(mp)
        assert built.built - before == per_entry, "only the changed worker's entry is built"
        assert any(k[0] == "modelmon_feature_bin_total" for k in view)  # drift merged too
        clear_caches()
        assert merged_view(mp) == view  # bit for bit what a merge from scratch gives
        built = _MERGED._built[("modelmon", "m", "1")]
        merged_view(mp)  # every entry built again into the new table
