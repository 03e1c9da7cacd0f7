"""Hostile or failing multi-process directories: scrapes answer, totals never go back."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import shutil
import signal
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon._internal import registry as monitor_registry
from modelmon.exporters import multiprocess as mpx

FORK = mp.get_context("fork")
NOBODY = 65534


def _requests(reg: CollectorRegistry) -> float | None:
    return reg.get_sample_value("modelmon_requests_total", {"model": "m", "version": "1"})


def _calls(mon: modelmon.Monitor, n: int) -> None:
    for i in range(n):
        mon.observe({"a": float(i)}, [0.5])


def _monitor() -> modelmon.Monitor:
    """The monitor of model m in this process (a forked child inherits the parent's)."""
    found = [m for m in monitor_registry.monitors() if m.model == "m"]
    # The newest: the one this test made (earlier tests' monitors may still be alive).
    return max(found, key=lambda m: m.loaded_at) if found else modelmon.Monitor("m", "1")


def _child_calls(n: int) -> None:
    _calls(_monitor(), n)
    mpx.flush()


def _run_child(target: Any, *args: Any) -> int:
    proc = FORK.Process(target=target, args=args)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    return int(proc.pid or 0)


@pytest.mark.timeout(120)
def test_hostile_entries_are_skipped_without_hanging_or_shrinking(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 3)
    _run_child(_child_calls, 4)
    assert _requests(reg) == 7
    real = next(
        p for p in mpdir.glob("modelmon_*.state") if p.name != f"modelmon_{os.getpid()}.state"
    )
    doc = mpx.decode(real.read_bytes())
    os.mkfifo(mpdir / "modelmon_4000001.state")  # a FIFO: opening it blocks a naive reader
    (mpdir / "modelmon_4000002.state").symlink_to("/dev/zero")  # reads forever
    (mpdir / "modelmon_4000003.state").mkdir()
    (mpdir / "modelmon_4000004.state").write_text("[" * 100_000 + "]" * 100_000)  # deep JSON
    (mpdir / "modelmon_99999999999.state").write_bytes(real.read_bytes())  # pid out of range
    negative = mpx.decode(mpx.encode(doc))
    negative["pid"] = 4000005
    negative["token"] = "f" * 32
    negative["monitors"][0]["aggregates"]["traffic"]["state"]["requests"] = -1_000_000
    (mpdir / "modelmon_4000005.state").write_bytes(mpx.encode(negative))
    with open(mpdir / "modelmon_4000006.state", "wb") as f:  # over the size cap (sparse)
        f.truncate(mpx.MAX_STATE_BYTES + 1)
    for _ in range(3):
        assert _requests(reg) == 7
    _calls(mon, 2)
    assert _requests(reg) == 9


def _flip_to_garbage_then_scrape(path: str, pipe: Any) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 5)
    before = _requests(reg)
    Path(path, "garbage").write_bytes(b"\x00garbage")
    os.replace(Path(path, "garbage"), Path(path, f"modelmon_{os.getpid()}.state"))
    os.chmod(path, 0o555)  # and the directory read-only (we are not root here)
    _calls(mon, 1)
    after = _requests(reg)
    pipe.send((before, after, sorted(os.listdir(path))))


def _as_nobody(target: Any, path: str, pipe: Any) -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    target(path, pipe)


def test_read_only_directory_never_makes_a_counter_go_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root ignores permissions: then the worker runs as nobody, in a directory it can reach.
    root = Path(tempfile.mkdtemp(prefix="modelmon-ro-")) if os.geteuid() == 0 else tmp_path
    mpdir = root / "mp"
    mpdir.mkdir()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(mpdir))
    target: Any = _flip_to_garbage_then_scrape
    args: tuple[Any, ...] = ()
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        os.chmod(mpdir, 0o777)
        target, args = _as_nobody, (_flip_to_garbage_then_scrape,)
    parent, child = FORK.Pipe()
    try:
        _run_child(_child_calls, 4)  # another worker's file
        for p in mpdir.iterdir():
            os.chmod(p, 0o666)  # written by us (maybe root): readable by the worker below
        if os.geteuid() == 0:
            os.chown(mpdir, NOBODY, NOBODY)
        _run_child(target, *args, str(mpdir), child)
        before, after, listing = parent.recv()
    finally:
        os.chmod(mpdir, 0o700)
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)
    assert before == 9  # 4 from the other worker, 5 of its own
    assert after == 10  # its own file turned unreadable and unwritable: never less
    assert not [name for name in listing if name.endswith(".tmp")]


def _full_disk(path: str, pipe: Any) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("modelmon").addHandler(handler)
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 5)
    seen = [_requests(reg)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # the disk is now "full"
    for _ in range(30):
        _calls(mon, 1)
        seen.append(_requests(reg))
    writes = [r for r in records if "multiprocess_write" in r.getMessage()]
    errors = sum(  # counted by the process's first monitor
        m.health.internal_errors["multiprocess_write"] for m in monitor_registry.monitors()
    )
    pipe.send((seen, len(writes), errors, sorted(os.listdir(path))))


def test_full_directory_never_goes_back_leaves_no_temp_and_logs_once(mpdir: Path) -> None:
    parent, child = FORK.Pipe()
    _run_child(_child_calls, 4)
    _run_child(_full_disk, str(mpdir), child)
    seen, logged, errors, listing = parent.recv()
    assert seen == [9 + i for i in range(31)]
    assert errors >= 30  # every failed write counted
    assert logged == 1  # and logged once
    assert not [name for name in listing if name.endswith(".tmp")]
    assert stat.S_IMODE(os.stat(mpdir / listing[0]).st_mode) == 0o600


def test_mark_process_dead_costs_one_file_whatever_the_number_of_dead_workers(
    mpdir: Path,
) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _run_child(_child_calls, 3)
    template = next(
        p for p in mpdir.glob("modelmon_*.state") if p.name != f"modelmon_{os.getpid()}.state"
    )
    doc = mpx.decode(template.read_bytes())
    template.unlink()
    one_file = len(mpx.encode(doc))
    for i in range(100):  # 100 workers that died (pids beyond any live process)
        doc["pid"], doc["token"] = 4_100_000 + i, f"{i:032x}"
        (mpdir / f"modelmon_{doc['pid']}.state").write_bytes(mpx.encode(doc))
        assert mpx.mark_process_dead(doc["pid"]) is True
        # What absorbing reads and writes stays one process's size: no growing archive.
        kept = [*mpdir.glob("modelmon_dead_*.state"), *mpdir.glob("modelmon_archive.state")]
        largest = max(p.stat().st_size for p in kept)
        assert largest < 2 * one_file, (i, largest)
    _calls(mon, 2)
    assert _requests(reg) == 3 * 100 + 2
