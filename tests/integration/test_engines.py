"""Real local Spark (``local[2]``) and a real Dask ``LocalCluster`` (2 worker processes).

* The reference profile of the same rows is the same, byte for byte (same fingerprint),
  over 1, 3 and 7 partitions, on Spark, on Dask and on one machine.
* A batch-scoring job's merged counts and drift equal one process's ``Monitor.observe``
  over the same rows, exactly.

Data: scikit-learn's breast cancer set (569 rows), with missing values, a categorical
column, an integer column and the label, and a logistic regression as the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelmon import Monitor, ReferenceProfile
from modelmon.profile_builder import build_profile
from tests.integration._engines import (  # noqa: F401 - the engines' fixtures
    ENGINES,
    dask_client,
    engine_module,
    partitioned,
    spark,
)

pytestmark = pytest.mark.integration

PARTITIONS = (1, 3, 7)
BATCH_PARTITIONS = {"spark": (1, 3), "dask": (1, 3, 7)}  # Spark starts a JVM job per run
NOW = 1_700_000_000.0
PROFILE_ARGS: dict[str, Any] = {"prediction": "label", "exclude": ["id"], "created_at": 0.0}


def training_frame() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"]).iloc[:, :6].copy()
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.1, "mean texture"] = np.nan
    size = pd.cut(frame["mean area"], [0, 400, 700, 1000, 5000], labels=list("SMLX"))
    frame["size"] = size.astype(object)
    frame.loc[frame.index[::13], "size"] = None
    frame["visits"] = rng.poisson(3, len(frame)).astype(np.int64)
    frame["id"] = np.arange(len(frame), dtype=np.int64)
    frame["label"] = data.target.astype(np.int64)
    return frame


FRAME = training_frame()
FEATURES = [c for c in FRAME.columns if c not in ("id", "label", "size")]


def fit_model() -> LogisticRegression:
    X = FRAME[FEATURES].fillna(0.0).to_numpy()
    return LogisticRegression(max_iter=5000).fit(X, FRAME["label"])


MODEL = fit_model()


def predict(frame: pd.DataFrame) -> Any:
    """The scoring function shipped to executors and workers (the model imputes 0)."""
    return MODEL.predict(frame[FEATURES].fillna(0.0).to_numpy())


def local_fingerprint() -> str:
    return build_profile(lambda: [FRAME], **PROFILE_ARGS).fingerprint


@pytest.mark.parametrize("engine", ENGINES)
def test_profile_is_partition_independent_and_equals_local(
    request: pytest.FixtureRequest, engine: str
) -> None:
    prints = {}
    for k in PARTITIONS:
        part = partitioned(request, engine, FRAME, k)
        prints[k] = engine_module(engine).profile(part, **PROFILE_ARGS).fingerprint
    assert set(prints.values()) == {local_fingerprint()}, prints


# --- batch scoring ----------------------------------------------------------------------


def reference() -> ReferenceProfile:
    return ReferenceProfile.from_data(
        FRAME[FEATURES], predictions=MODEL.predict(FRAME[FEATURES].fillna(0.0).to_numpy())
    )


def live_frame() -> pd.DataFrame:
    live = FRAME[FEATURES].copy()
    live["mean radius"] = live["mean radius"] * 1.25  # the batch drifts
    return live


def one_process(ref: ReferenceProfile, live: pd.DataFrame) -> Monitor:
    mon = Monitor("batch", "1", reference=ref, registry=False, min_samples=10)
    mon.observe(live, predict(live))
    mon.fold(NOW)
    return mon


def assert_job_equals_one_process(job: Any, one: Monitor, rows: int) -> None:
    mon = job.monitor
    assert mon.traffic.predictions == one.traffic.predictions == rows
    assert np.array_equal(mon.inputs.observations, one.inputs.observations)
    assert np.array_equal(mon.inputs.missing, one.inputs.missing)
    assert mon.inputs.missing.sum() > 0
    assert np.array_equal(mon.drift.cum_features, one.drift.cum_features)
    assert np.array_equal(mon.drift.cum_outputs, one.drift.cum_outputs)
    assert mon.drift.cum_outputs.sum() == rows
    scores = mon.drift.drift_scores(NOW)
    assert scores == one.drift.drift_scores(NOW)
    assert scores["features"]["mean radius"]["psi"] > 0.25


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_job_equals_one_process(request: pytest.FixtureRequest, engine: str) -> None:
    ref, live = reference(), live_frame()
    one = one_process(ref, live)
    for k in BATCH_PARTITIONS[engine]:
        job = engine_module(engine).monitor(
            partitioned(request, engine, live, k),
            model="batch",
            version="1",
            reference=ref,
            predict=predict,
            now=NOW,
            min_samples=10,
        )
        assert job.partitions == k
        assert_job_equals_one_process(job, one, len(live))
        job.close()
    one.close()


# --- the job's metrics through a real Pushgateway, scraped by a real Prometheus ------------

PUSH_WINDOW = "1m"
PUSH_JOB = "nightly_scoring"


def offline_psi(profile: ReferenceProfile, feature: str, column: np.ndarray) -> float:
    """PSI of the rows' shares in the reference bins, as the recording rules define it."""
    from modelmon.monitoring.rules import PSI_FLOOR

    f = profile.features[feature]
    values = column[np.isfinite(column)]
    counts = np.bincount(np.searchsorted(f.edges_array, values, side="left"), minlength=f.n_bins)
    cur = np.maximum(counts / counts.sum(), PSI_FLOOR)
    ref = np.maximum(f.shares_array, PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def test_batch_job_pushed_to_pushgateway_reaches_the_fleet_drift_rules(
    dask_client: Any,  # noqa: F811
    tmp_path: Any,
) -> None:
    import dask.dataframe as dd

    from modelmon import dask as mm_dask
    from modelmon.jobs import BatchJob, JobSpec
    from modelmon.monitoring import MonitoringConfig, render_recording_rules
    from tests.conftest import free_port
    from tests.integration._prom import binary, prometheus, spawn, wait_until

    gateway_exe = binary("prometheus-pushgateway", "pushgateway")
    binary("prometheus")
    ref, live = reference(), live_frame()
    config = MonitoringConfig(drift_window=PUSH_WINDOW)
    port = free_port()
    gateway_argv = [
        gateway_exe,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={tmp_path / 'pushgateway.data'}",
        "--log.level=warn",
    ]
    prom_config = {
        "global": {"scrape_interval": "250ms", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,  # keep the pushed job / model / version labels
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ],
    }
    rules = {"recording_rules.yml": render_recording_rules(config)}
    selector = '{model="batch",feature="mean radius"}'
    rows_seen = f"sum(modelmon_feature_bin_total{selector})"
    with spawn("pushgateway", gateway_argv, tmp_path) as gateway:
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"),
            30,
            "the Pushgateway to be ready",
            details=gateway.logs,
        )
        with prometheus(tmp_path / "prom", prom_config, rules) as prom:
            spec = JobSpec("batch", "1", ref.dumps(), options={"min_samples": 10})
            job = BatchJob(spec, pushgateway=f"127.0.0.1:{port}", job=PUSH_JOB)
            job.start()  # the run's bin counters at 0
            wait_until(
                lambda: prom.values(rows_seen, "") == {"": 0.0},
                30,
                "Prometheus to scrape the job's zero counters",
            )
            batch = dd.from_pandas(live, npartitions=3, sort=False)
            mm_dask.monitor(batch, job=job, predict=predict)
            job.finish()
            wait_until(
                lambda: prom.values(rows_seen, "") == {"": float(len(live))},
                30,
                "Prometheus to scrape the job's totals",
            )
            psi_rule = f'{config.rule("feature_psi", PUSH_WINDOW)}{{model="batch"}}'
            fleet = wait_until(
                lambda: _fleet_psi(prom, psi_rule),
                30,
                "the fleet PSI rule to include the job",
            )
            pushed = prom.values(
                f'modelmon_feature_drift{{model="batch",method="psi",job="{PUSH_JOB}"}}', "feature"
            )
    job_scores = job.monitor.drift.drift_scores(spec.now)["features"]
    assert set(fleet) == set(FEATURES)
    for feature in FEATURES:
        expected = offline_psi(ref, feature, live[feature].to_numpy(dtype=float))
        assert fleet[feature] == pytest.approx(expected, abs=1e-9), feature
        assert pushed[feature] == pytest.approx(job_scores[feature]["psi"], abs=1e-12)
        assert pushed[feature] == pytest.approx(expected, abs=1e-9), feature
    assert fleet["mean radius"] > 0.25
    job.close()


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _fleet_psi(prom: Any, expr: str) -> dict[str, float]:
    """The rule's per-feature values once every feature has one (else {} to keep waiting)."""
    values = prom.values(expr, "feature")
    return values if set(values) == set(FEATURES) else {}


def test_cli_engine_spark_equals_local(spark: Any, tmp_path: Any) -> None:  # noqa: F811
    """``modelmon profile --engine spark`` (the session of this test run) equals the local run."""
    from modelmon.cli import main

    src = tmp_path / "train.csv"
    FRAME.drop(columns=["id"]).to_csv(src, index=False)
    local, remote = tmp_path / "local.json", tmp_path / "spark.json"
    base = ["profile", str(src), "--prediction-column", "label", "--no-progress"]
    assert main([*base, "-o", str(local)]) == 0
    assert main([*base, "--engine", "spark", "-o", str(remote)]) == 0
    a, b = ReferenceProfile.load(local), ReferenceProfile.load(remote)
    assert a.features == b.features and a.outputs == b.outputs
    assert b.features["size"].kind == "categorical" and b.features["visits"].kind == "numeric"
    assert spark.range(3).count() == 3  # the caller's session was used, not stopped


def test_cli_engine_spark_stops_the_session_it_started(tmp_path: Any) -> None:
    """Run alone (no session of the caller's), ``--engine spark`` stops its own session."""
    import os
    import subprocess
    import sys

    from tests.conftest import require_binary
    from tests.integration._engines import _require_module

    _require_module("pyspark", "spark")
    require_binary("java")
    src, out = tmp_path / "train.csv", tmp_path / "spark.json"
    FRAME.drop(columns=["id"]).to_csv(src, index=False)
    code = (
        "import sys\n"
        "from modelmon.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "from pyspark.sql import SparkSession\n"
        "assert SparkSession.getActiveSession() is None, 'the session is still active'\n"
        "sys.exit(rc)\n"
    )
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false "
        "--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 "
        "pyspark-shell",
    }
    argv = ["profile", str(src), "--engine", "spark", "--spark-master", "local[1]"]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv, "--no-progress", "-o", str(out)],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert ReferenceProfile.load(out).features["size"].kind == "categorical"
