"""Multi-process mode: real forked processes write state files; the parent's scrape merges them."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from prometheus_client import CollectorRegistry
from sklearn.metrics import accuracy_score

import modelmon
from modelmon.exporters import multiprocess as mpx
from modelmon.multiprocess import MultiprocessCollector, mark_process_dead
from modelmon.profile import ReferenceProfile
from tests.conftest import scrape

mpx.install()
FORK = mp.get_context("fork")
LABELS = {"model": "m", "version": "1"}


@pytest.fixture
def mpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(tmp_path))
    yield tmp_path


def _run_children(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[int]:
    procs = [FORK.Process(target=target, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return [int(p.pid) for p in procs if p.pid is not None]


def _calls(mon: modelmon.Monitor, n: int, value: float) -> None:
    for i in range(n):
        mon.observe({"a": value, "b": float(i)}, [0.25 * value], latency_s=0.001 * (i % 7))
    mpx.flush()


def _requests(reg: CollectorRegistry, model: str = "m") -> float | None:
    return reg.get_sample_value("modelmon_requests_total", {"model": model, "version": "1"})


# --- the codec ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.int64, np.float64, np.int32, np.bool_, np.uint8]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    ),
    st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False) | st.none()),
)
def test_codec_round_trips_arrays_and_plain_values(arr: np.ndarray, extra: dict[str, Any]) -> None:
    back = mpx.decode(mpx.encode({"arr": arr, "nested": [extra, (1, "x")]}))
    np.testing.assert_array_equal(back["arr"], arr)
    assert back["arr"].dtype == arr.dtype and back["arr"].shape == arr.shape
    assert back["arr"].flags.writeable
    assert back["nested"] == [extra, [1, "x"]]


def test_codec_refuses_object_arrays_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="refusing"):
        mpx.decode(b'{"x":{"__nd__":["|O",[1],"AAAAAAAAAAA="]}}')
    with pytest.raises(ValueError, match="size"):
        mpx.decode(b'{"x":{"__nd__":["<i8",[2],"AAAAAAAAAAA="]}}')
    with pytest.raises(TypeError):
        mpx.encode({"x": object()})


# --- merging across real processes --------------------------------------------------------


def test_three_children_sum_exactly(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _run_children(_calls, [(mon, 10, 1.0), (mon, 20, 2.0), (mon, 35, 3.0)])
    samples = scrape(reg)
    assert samples[("modelmon_requests_total", tuple(sorted(LABELS.items())))] == 65
    assert reg.get_sample_value("modelmon_predictions_total", LABELS) == 65
    assert reg.get_sample_value("modelmon_request_duration_seconds_count", LABELS) == 65
    expected_sum = sum(0.001 * (i % 7) for n in (10, 20, 35) for i in range(n))
    assert reg.get_sample_value("modelmon_request_duration_seconds_sum", LABELS) == pytest.approx(
        expected_sum
    )
    obs = reg.get_sample_value("modelmon_feature_observations_total", {**LABELS, "feature": "a"})
    assert obs == 65
    assert mon.traffic.requests == 0  # the parent itself did nothing
    assert len(list(mpdir.glob("modelmon_*.state"))) == 4  # three children and the parent


def test_parent_state_before_fork_is_counted_once(mpdir: Path) -> None:
    """gunicorn --preload: calls made in the master before forking count once."""
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    for _ in range(7):
        mon.observe({"a": 1.0}, [0.5], latency_s=0.01)
    for _ in range(3):  # still buffered at fork time: folded by the parent only
        mon.observe({"a": 1.0}, [0.5], latency_s=0.01)
    mon.fold(), mpx.flush()
    for _ in range(3):
        mon.observe({"a": 1.0}, [0.5], latency_s=0.01)
    _run_children(_calls, [(mon, 4, 1.0), (mon, 5, 1.0)])
    assert _requests(reg) == 7 + 3 + 3 + 4 + 5


def _drift_child(mon: modelmon.Monitor, rows: np.ndarray, actual: np.ndarray) -> None:
    ids = [mon.observe({"x": float(r[0]), "y": float(r[1])}, int(r[0] > 0.5)) for r in rows]
    mon.record_outcomes(ids, actual.tolist())
    mpx.flush()


def test_drift_and_outcomes_merge_like_one_process(mpdir: Path) -> None:
    rng = np.random.default_rng(7)
    train = rng.normal(size=(2000, 2))
    profile = ReferenceProfile.from_data(train, feature_names=["x", "y"])
    live = rng.normal(0.6, 1.3, size=(900, 2))
    actual = rng.integers(0, 2, size=900)
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg, reference=profile, task="classification")
    slices = [(mon, live[i : i + 300], actual[i : i + 300]) for i in (0, 300, 600)]
    _run_children(_drift_child, slices)
    merged = scrape(reg)

    os.environ.pop("MODELMON_MULTIPROC_DIR")
    ref_reg = CollectorRegistry()
    single = modelmon.Monitor("m", "1", registry=ref_reg, reference=profile, task="classification")
    _drift_child(single, live, actual)
    expected = scrape(ref_reg)
    for (name, labels), value in expected.items():
        if name.startswith(("modelmon_feature_", "modelmon_outcomes_", "modelmon_performance")):
            assert merged[(name, labels)] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    accuracy = merged[("modelmon_performance", (("metric", "accuracy"), *LABELS.items()))]
    assert accuracy == pytest.approx(accuracy_score(actual, (live[:, 0] > 0.5).astype(int)))
    psi = merged[("modelmon_feature_drift", (("feature", "x"), ("method", "psi"), *LABELS.items()))]
    assert psi > 0.25


def _in_flight_child(mon: modelmon.Monitor, ready: Any, done: Any) -> None:
    block, release = threading.Event(), threading.Event()

    @mon.wrap
    def predict(x: Any) -> float:
        if block.is_set():
            release.wait(10)
        return 1.0

    for _ in range(4):
        predict({"a": 1.0})
    block.set()
    threading.Thread(target=predict, args=({"a": 1.0},), daemon=True).start()
    while mon.in_flight == 0:
        pass
    mpx.flush()
    ready.set()
    done.wait(10)
    os._exit(0)  # dies with a call in flight


def test_dead_process_keeps_counters_and_drops_in_flight(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    ready, done = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_in_flight_child, args=(mon, ready, done))
    child.start()
    assert ready.wait(20)
    assert reg.get_sample_value("modelmon_requests_in_flight", LABELS) == 1
    assert _requests(reg) == 4
    done.set()
    child.join(20)
    assert reg.get_sample_value("modelmon_requests_in_flight", LABELS) == 0
    assert _requests(reg) == 4

    assert child.pid is not None
    assert mark_process_dead(child.pid) is True
    assert not (mpdir / f"modelmon_{child.pid}.state").exists()
    assert (mpdir / "modelmon_archive.state").exists()  # folded into the running total
    assert not list(mpdir.glob("modelmon_dead_*.state"))
    assert _requests(reg) == 4
    assert reg.get_sample_value("modelmon_requests_in_flight", LABELS) == 0
    assert mark_process_dead(child.pid) is False  # nothing left to absorb


def test_mark_process_dead_accumulates_in_the_archive(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    pids = _run_children(_calls, [(mon, 3, 1.0), (mon, 4, 2.0), (mon, 5, 3.0)])
    heartbeat = "modelmon_heartbeat_timestamp_seconds"  # the time of each scrape

    def counted() -> dict[Any, float]:
        return {k: v for k, v in scrape(reg).items() if k[0] != heartbeat}

    before = counted()
    for pid in pids[:2]:
        mark_process_dead(pid)
        assert counted() == before  # nothing lost, nothing counted twice
    assert _requests(reg) == 12
    live = sorted(p.name for p in mpdir.glob("modelmon_[0-9]*.state"))
    assert live == sorted([f"modelmon_{os.getpid()}.state", f"modelmon_{pids[2]}.state"])
    # Folded into the archive, unless a live worker started before them (then they wait).
    dead = sorted(int(p.name.split("_")[2]) for p in mpdir.glob("modelmon_dead_*.state"))
    assert set(dead) <= set(pids[:2])
    assert dead or (mpdir / "modelmon_archive.state").exists()
    with pytest.raises(modelmon.ConfigurationError):
        mark_process_dead(os.getpid())


def test_env_set_after_import_and_after_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELMON_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 2, 1.0)
    assert mpx.flush() is None and list(tmp_path.iterdir()) == []
    assert _requests(reg) == 2
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the fallback variable
    _run_children(_calls, [(mon, 6, 1.0)])
    assert _requests(reg) == 8
    assert (tmp_path / f"modelmon_{os.getpid()}.state").exists()


def test_monitor_known_only_to_other_processes(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)

    def child() -> None:
        other = modelmon.Monitor("only_child", "1", registry=CollectorRegistry())
        _calls(other, 9, 1.0)
        _calls(mon, 1, 1.0)

    _run_children(child, [()])
    assert _requests(reg, "only_child") is None  # a custom registry shows its own monitors
    everything = CollectorRegistry()
    MultiprocessCollector(everything)
    assert _requests(everything, "only_child") == 9
    assert _requests(everything, "m") == 1


def test_background_writes_after_folds(mpdir: Path) -> None:
    mon = modelmon.Monitor("bg", "1", registry=False)
    mon.observe({"a": 1.0}, [0.5])
    mon.fold()
    target = mpdir / f"modelmon_{os.getpid()}.state"

    def written() -> dict[str, Any] | None:  # the flush listener may write an earlier state
        if not target.exists():
            return None
        entry: dict[str, Any] | None = mpx.read_state(str(target)).monitors.get(  # type: ignore[union-attr]
            ("modelmon", "bg", "1")
        )
        return entry if entry and entry["aggregates"]["traffic"]["state"]["requests"] else None

    for _ in range(200):
        if written():
            break
        threading.Event().wait(0.01)
    state = mpx.read_directory(str(mpdir))[0]
    entry = state.monitors[("modelmon", "bg", "1")]
    assert entry["aggregates"]["traffic"]["state"]["requests"] == 1
    assert state.alive and state.pid == os.getpid()


def test_an_old_file_of_our_pid_is_archived_not_overwritten(mpdir: Path) -> None:
    """pid reuse: a new process finding a file of its pid keeps those counters."""
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 3, 1.0)
    old_token = mpx.WRITER.token
    mpx.WRITER.token, mpx.WRITER.checked = "new-process", None
    try:
        assert _requests(reg) == 6  # the old file (3 calls) plus this process (3 calls)
        assert list(mpdir.glob(f"modelmon_dead_*_{old_token}.state"))  # kept as a dead worker
    finally:
        mpx.WRITER.token = old_token


def test_unreadable_files_are_skipped(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg)
    _calls(mon, 2, 1.0)
    (mpdir / "modelmon_999999.state").write_bytes(b"\x80not json")
    assert _requests(reg) == 2
