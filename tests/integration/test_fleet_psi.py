"""Fleet-wide drift computed by a real Prometheus from three replicas' bin counters.

Three processes share one reference profile (the training split of scikit-learn's breast
cancer data) and each observes a different slice of the held-out split, shifted so that the
slices drift differently: one feature drifts everywhere, one only on replica 0, one more on
each replica. Prometheus scrapes all three with the generated recording rules; the fleet PSI
and JS of ``modelmon:feature_psi:1m`` / ``modelmon:feature_js:1m`` must equal PSI (numpy) and
JS (scipy) computed offline on the union of the slices, for every feature, and the fleet
drift decision ``modelmon:feature_drift_detected:1m`` must equal the in-process decision of
one monitor that saw the union.

Why it is exact up to a small, bounded error: ``increase()`` extrapolates each series by
``(t_eval - first) / (last - first)`` (``first`` is the replica's first scrape, where every
bin counter is 0, so the start is never extrapolated). All bins of one replica share their
scrape times, so within a replica the factor cancels in the shares (checked below). Across
replicas the factors differ by at most ``1.1 * scrape_interval / (last - first)``, which
weights the slices slightly unequally; a short scrape interval and a hold of
``HOLD_SECONDS`` keep that under 1.5%, and for these slices an unequal weighting of 1.5%
moves PSI by less than 0.003 (production: 15 s scrapes over a 30 m window, < 1%).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from modelmon import ReferenceProfile
from modelmon.monitoring import MonitoringConfig, render_prometheus_config, render_recording_rules
from modelmon.monitoring.rules import PSI_FLOOR
from tests.conftest import free_port
from tests.integration._prom import Process, Prometheus, binary, prometheus, spawn, wait_until

pytestmark = pytest.mark.integration

REPLICAS = 3
WINDOW = "1m"
SCRAPE_INTERVAL = "250ms"  # see the module doc: bounds the cross-replica weighting
HOLD_SECONDS = 20.0  # from the first scrape to the compared evaluation (< the 1m window)
TOLERANCE = 0.01
MODEL, VERSION = "fleet", "1"
# (feature, shift in reference std per replica): everywhere, replica 0 only, growing.
SHIFTS: dict[str, tuple[float, ...]] = {
    "mean radius": (0.5, 0.5, 0.5),
    "worst texture": (1.0, 0.0, 0.0),
    "mean concavity": (0.0, 0.3, 0.6),
}


@dataclass(frozen=True)
class FleetData:
    profile_path: Path
    profile: ReferenceProfile
    names: tuple[str, ...]
    slices: tuple[np.ndarray, ...]


def make_data(tmp_path: Path) -> FleetData:
    """Reference from the training split; live slices from the shifted held-out split."""
    data = load_breast_cancer()
    names = tuple(str(n) for n in data.feature_names)
    X_train, X_live = train_test_split(
        data.data, test_size=0.5, random_state=0, stratify=data.target
    )
    path = tmp_path / "reference.json"
    ReferenceProfile.from_data(X_train, feature_names=list(names)).save(path)
    std = X_train.std(axis=0)
    perm = np.random.default_rng(0).permutation(len(X_live))
    slices = [s.copy() for s in np.array_split(X_live[perm], REPLICAS)]
    for feature, shifts in SHIFTS.items():
        j = names.index(feature)
        for s, k in zip(slices, shifts, strict=True):
            s[:, j] += k * std[j]
    return FleetData(path, ReferenceProfile.load(path), names, tuple(slices))


def offline_counts(profile: ReferenceProfile, feature: str, column: np.ndarray) -> np.ndarray:
    """Rows per reference bin, binned as the profile documents (right-closed bins)."""
    f = profile.features[feature]
    bins = np.searchsorted(f.edges_array, column, side="left")
    return np.bincount(bins, minlength=f.n_bins).astype(np.float64)


def offline_shares(profile: ReferenceProfile, feature: str, column: np.ndarray) -> np.ndarray:
    counts = offline_counts(profile, feature, column)
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def offline_psi(cur: np.ndarray, ref: np.ndarray) -> float:
    c, r = np.maximum(cur, PSI_FLOOR), np.maximum(ref, PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


# --- replicas --------------------------------------------------------------------------


@dataclass
class Replica:
    process: Process
    port: int
    fed: int = 0

    def feed(self, rows: np.ndarray, workdir: Path) -> None:
        """Observe ``rows`` in the replica and wait until it has folded them."""
        path = workdir / f"batch-{self.port}-{self.fed}.npy"
        np.save(path, rows)
        stdin = self.process.popen.stdin
        assert stdin is not None
        stdin.write(f"{path}\n".encode())
        stdin.flush()
        self.fed += len(rows)
        wait_until(
            lambda: self._folded() == self.fed,
            20,
            f"replica {self.port} to fold {self.fed} rows",
            details=self.process.logs,
        )

    def ready(self) -> bool:
        self.process.check_alive()
        return "ready" in self.process.log.read_text()

    def _folded(self) -> int:
        self.process.check_alive()
        lines = self.process.log.read_text().split("\n")
        return sum(int(x.split()[1]) for x in lines if x.startswith("observed "))


@contextlib.contextmanager
def replicas(profile_path: Path, workdir: Path) -> Iterator[list[Replica]]:
    with contextlib.ExitStack() as stack:
        out = []
        for i in range(REPLICAS):
            port = free_port()
            argv = [sys.executable, "-m", "tests.integration.apps.fleet_replica"]
            process = stack.enter_context(
                spawn(
                    f"replica{i}",
                    [*argv, str(profile_path), str(port)],
                    workdir,
                    stdin=subprocess.PIPE,
                )
            )
            out.append(Replica(process, port))
        for r in out:
            wait_until(
                r.ready,
                30,
                f"replica on port {r.port} to serve /metrics",
                details=r.process.logs,
            )
        yield out


def scraped_rows(prom: Prometheus) -> dict[str, float]:
    """Rows of one feature each instance has exposed, as Prometheus last saw them."""
    # Bin counters exist (at 0) from start-up; feature_observations_total only after data.
    expr = (
        f'sum by (instance) (modelmon_feature_bin_total{{model="{MODEL}",feature="mean radius"}})'
    )
    return prom.values(expr, "instance")


def wait_scraped(prom: Prometheus, fleet: list[Replica]) -> None:
    want = {f"127.0.0.1:{r.port}": float(r.fed) for r in fleet}
    wait_until(
        lambda: scraped_rows(prom) == want,
        20,
        f"Prometheus to scrape {want}",
        details=lambda: f"last seen: {scraped_rows(prom)}, targets: {prom.up_targets()}",
    )


# --- the test --------------------------------------------------------------------------


def test_fleet_psi_and_js_equal_offline_on_the_union(tmp_path: Path) -> None:
    binary("prometheus")
    data = make_data(tmp_path)
    config = MonitoringConfig(drift_window=WINDOW)
    with replicas(data.profile_path, tmp_path) as fleet:
        prom_config = render_prometheus_config(
            config,
            targets=[f"127.0.0.1:{r.port}" for r in fleet],
            alertmanager="127.0.0.1:1",  # no alert rules are loaded: nothing is sent
            scrape_interval=SCRAPE_INTERVAL,
            evaluation_interval="1s",
        )
        rules = {"recording_rules.yml": render_recording_rules(config)}
        with prometheus(tmp_path / "prom", prom_config, rules) as prom:
            # First scrape of every replica: all bin counters still 0.
            wait_scraped(prom, fleet)
            first_scrape = time.monotonic()
            for part in range(2):  # feed, let Prometheus scrape, feed more
                for r, s in zip(fleet, data.slices, strict=True):
                    r.feed(np.array_split(s, 2)[part], tmp_path)
                wait_scraped(prom, fleet)
            time.sleep(max(0.0, first_scrape + HOLD_SECONDS - time.monotonic()))
            at = time.time()
            psi = prom.values(
                f'{config.rule("feature_psi", WINDOW)}{{model="{MODEL}"}}', "feature", at
            )
            js = prom.values(
                f'{config.rule("feature_js", WINDOW)}{{model="{MODEL}"}}', "feature", at
            )
            increases = prom.query(
                f'increase(modelmon_feature_bin_total{{model="{MODEL}"}}[{WINDOW}])', at
            )
            fleet_detected = prom.values(
                f'{config.rule("feature_drift_detected", WINDOW)}{{model="{MODEL}"}}', "feature", at
            )
            fleet_z = prom.values(
                f'{config.rule("feature_chi2_z", WINDOW)}{{model="{MODEL}"}}', "feature", at
            )
            z_critical = prom.values(
                f'{config.rule("feature_drift_z_critical", "max")}{{model="{MODEL}"}}', "model", at
            )
            assert time.monotonic() - first_scrape < 55, "the first scrape left the 1m window"

    assert_extrapolation_cancels_per_replica(increases, data, fleet)
    union = np.concatenate(data.slices)
    assert set(psi) == set(js) == set(data.names)
    for j, feature in enumerate(data.names):
        cur = offline_shares(data.profile, feature, union[:, j])
        ref = data.profile.features[feature].shares_array
        assert psi[feature] == pytest.approx(offline_psi(cur, ref), abs=TOLERANCE), feature
        assert js[feature] == pytest.approx(float(jensenshannon(cur, ref)), abs=TOLERANCE), feature
    assert_slices_drift_differently(data, psi)
    assert_fleet_decision_equals_in_process(data, fleet_detected, fleet_z, z_critical[MODEL])


def assert_fleet_decision_equals_in_process(
    data: FleetData, detected: dict[str, float], z: dict[str, float], z_critical: float
) -> None:
    """The PromQL drift decision equals the in-process one on the union of the slices."""
    from prometheus_client import CollectorRegistry

    import modelmon

    monitor = modelmon.Monitor(
        MODEL, VERSION, reference=data.profile, registry=CollectorRegistry(), strict=True
    )
    try:
        monitor.observe(inputs=np.concatenate(data.slices))
        monitor.fold()
        decisions = monitor.drift.decisions(time.time())["features"]  # type: ignore[union-attr]
    finally:
        monitor.close()
    assert set(detected) == set(decisions) == set(data.names)
    local = {name: d.detected for name, d in decisions.items()}
    assert {k: v == 1.0 for k, v in detected.items()} == local
    assert z_critical == pytest.approx(next(iter(decisions.values())).z_critical, rel=1e-9)
    for name, d in decisions.items():
        # Same statistic up to increase()'s extrapolation of the window rows (< 5%).
        assert z[name] == pytest.approx(d.test.z, rel=0.05, abs=0.1), name
        # No feature sits so close to the critical score that the 5% could flip it.
        assert abs(d.test.z - z_critical) > 0.1 * z_critical, (name, d.test.z)
    flagged = {k for k, v in local.items() if v}
    # 0.5 sd everywhere is flagged; 1 sd on a third of the rows (0.33 sd on the union of
    # 285 rows against 284 reference rows) is not significant; nothing unshifted is.
    assert "mean radius" in flagged and not flagged - set(SHIFTS), flagged


def assert_extrapolation_cancels_per_replica(
    increases: list[dict[str, Any]], data: FleetData, fleet: list[Replica]
) -> None:
    """Per replica, increase / fed rows is one factor for every bin of every feature."""
    by_port = {f"127.0.0.1:{r.port}": s for r, s in zip(fleet, data.slices, strict=True)}
    factors: dict[str, list[float]] = {}
    for series in increases:
        labels = series["metric"]
        value = float(series["value"][1])
        rows = by_port[labels["instance"]]
        feature = labels["feature"]
        fed = offline_counts(data.profile, feature, rows[:, data.names.index(feature)])
        count = int(fed[int(labels["bin"])])
        if count == 0:
            assert value == 0.0, labels
        else:
            factors.setdefault(labels["instance"], []).append(value / count)
    assert len(factors) == REPLICAS
    for instance, values in factors.items():
        assert max(values) == pytest.approx(min(values), rel=1e-9), instance
        assert 1.0 <= values[0] < 1.05, (instance, values[0])


def assert_slices_drift_differently(data: FleetData, psi: dict[str, float]) -> None:
    """The fleet value is not any replica's view nor their average: the counts are summed."""
    for feature in ("worst texture", "mean concavity"):
        j = data.names.index(feature)
        ref = data.profile.features[feature].shares_array
        per_replica = [
            offline_psi(offline_shares(data.profile, feature, s[:, j]), ref) for s in data.slices
        ]
        assert abs(np.mean(per_replica) - psi[feature]) > 0.2, (feature, per_replica)
        assert max(abs(p - psi[feature]) for p in per_replica) > 0.5, (feature, per_replica)
    unshifted = [v for k, v in psi.items() if k not in SHIFTS]
    assert psi["mean radius"] > 0.25 and max(unshifted) < 0.25, psi
