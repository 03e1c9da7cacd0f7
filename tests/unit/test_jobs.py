"""BatchJob: partition states merged on a driver equal one process observing every row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelmon import Monitor, ReferenceProfile
from modelmon.jobs import BatchJob, JobSpec, decode_state, encode_state, partition_state

NOW = 1_700_000_000.0


def scoring_data() -> tuple[ReferenceProfile, pd.DataFrame, Any]:
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns=["target"]).iloc[:, :10]
    X_train, X_live, y_train, _ = train_test_split(X, data.target, test_size=0.5, random_state=0)
    model = LogisticRegression(max_iter=5000).fit(X_train.to_numpy(), y_train)
    ref = ReferenceProfile.from_data(
        X_train, predictions=model.predict(X_train.to_numpy()), created_at=0.0
    )
    live = X_live.copy()
    live["mean radius"] *= 1.3  # drift
    live.loc[live.index[::11], "mean texture"] = np.nan
    return ref, live.reset_index(drop=True), model


REF, LIVE, MODEL = scoring_data()


def predict(frame: pd.DataFrame) -> Any:
    return MODEL.predict(frame.fillna(0.0).to_numpy())  # the model imputes missing as 0


def single_process() -> Monitor:
    mon = Monitor("m", "1", reference=REF, registry=False, min_samples=10)
    mon.observe(LIVE, predict(LIVE))
    mon.fold(NOW)
    return mon


def merged_job(partitions: int) -> BatchJob:
    spec = JobSpec("m", "1", REF.dumps(), now=NOW, options={"min_samples": 10})
    job = BatchJob(spec)
    for part in np.array_split(np.arange(len(LIVE)), partitions):
        batches = [LIVE.iloc[b] for b in np.array_split(part, 2) if b.size]
        state = partition_state(spec, batches, predict=predict)
        job.merge_state(decode_state(encode_state(state)))  # as it travels from an executor
    return job


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_merged_counts_and_drift_equal_one_process(partitions: int) -> None:
    one = single_process()
    job = merged_job(partitions)
    mon = job.monitor
    assert job.partitions == partitions
    assert mon.traffic.predictions == one.traffic.predictions == len(LIVE)
    assert mon.traffic.requests == 2 * partitions  # one per batch observed
    assert mon.traffic.duration.counts.sum() == 2 * partitions
    assert np.array_equal(mon.inputs.observations, one.inputs.observations)
    assert np.array_equal(mon.inputs.missing, one.inputs.missing)
    assert mon.inputs.missing.sum() > 0
    assert mon.drift is not None and one.drift is not None
    assert np.array_equal(mon.drift.cum_features, one.drift.cum_features)
    assert np.array_equal(mon.drift.cum_outputs, one.drift.cum_outputs)
    assert mon.drift.cum_features.sum() > 0
    scores = mon.drift.drift_scores(NOW)
    assert scores == one.drift.drift_scores(NOW)
    assert scores["features"]["mean radius"]["psi"] > 0.25
    job.close()
    one.close()


def test_job_renders_at_its_start_time() -> None:
    job = merged_job(3)
    registry = job.registry()
    labels = {"model": "m", "version": "1", "feature": "mean radius", "method": "psi"}
    psi = registry.get_sample_value("modelmon_feature_drift", labels)
    assert psi == job.monitor.drift.drift_scores(NOW)["features"]["mean radius"]["psi"]
    job.close()


def test_a_failing_model_is_counted_not_raised() -> None:
    spec = JobSpec("m", "1", REF.dumps(), now=NOW)

    def broken(frame: pd.DataFrame) -> Any:
        raise RuntimeError("model down")

    state = partition_state(spec, [LIVE.iloc[:10]], predict=broken)
    job = BatchJob(spec)
    job.merge_state(state)
    assert job.monitor.traffic.errors["RuntimeError"] == 1
    assert job.monitor.traffic.predictions == 0
    job.close()
