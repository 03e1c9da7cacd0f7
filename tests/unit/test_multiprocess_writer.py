"""What a worker writes: no profile (with its reference quantiles) inside its state file."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.exporters import multiprocess as mpx
from modelmon.exporters.multiprocess import codec
from tests.conftest import scrape

mpx.install()
FORK = mp.get_context("fork")
ROWS = np.random.default_rng(11).normal(size=(60, 2))


@pytest.fixture
def mpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(tmp_path))
    yield tmp_path


def _warmup_child(mon: modelmon.Monitor) -> None:
    for row in ROWS:  # the same rows in every worker: the same warm-up profile
        mon.observe({"x": float(row[0]), "y": float(row[1])}, 0.5)
    mpx.flush()


def test_a_warm_up_profile_goes_to_its_sidecar_not_into_every_state(mpdir: Path) -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("w", "1", registry=reg, reference="warmup", warmup_size=20)
    procs = [FORK.Process(target=_warmup_child, args=(mon,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    states = [p for p in mpdir.glob("modelmon_[0-9]*.state") if p.name != "modelmon_archive.state"]
    fingerprints = set()
    for path in states:
        doc = codec.decode(path.read_bytes())
        for entry in doc["monitors"]:
            drift = entry["aggregates"].get("drift")
            if drift is not None and drift["config"]["fingerprint"]:
                assert drift["state"]["profile"] is None  # not the profile's JSON
                fingerprints.add(drift["config"]["fingerprint"])
        assert b'"feature_order"' not in path.read_bytes()  # no profile anywhere in it
    assert fingerprints  # one per worker (each froze its own profile, at its own time)
    for fingerprint in fingerprints:
        assert (mpdir / f"modelmon_profile_{fingerprint}.json").exists()
    samples = scrape(reg)
    observed = [
        v
        for (name, labels), v in samples.items()
        if name == "modelmon_feature_observations_total" and ("feature", "x") in labels
    ]
    assert observed == [120]
    drift = [
        k for k in samples if k[0] == "modelmon_feature_bin_total" and ("feature", "x") in k[1]
    ]
    assert drift, "a reader finds the warm-up profile in its sidecar"
