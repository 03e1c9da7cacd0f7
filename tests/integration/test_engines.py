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
from tests.integration._engines import dask_client, spark  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

PARTITIONS = (1, 3, 7)
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


def test_spark_profile_is_partition_independent_and_equals_local(spark: Any) -> None:  # noqa: F811
    from modelmon import spark as mm_spark

    sdf = spark.createDataFrame(FRAME)
    prints = {}
    for k in PARTITIONS:
        part = sdf.repartition(k)
        assert part.rdd.getNumPartitions() == k
        prints[k] = mm_spark.profile(part, **PROFILE_ARGS).fingerprint
    assert set(prints.values()) == {local_fingerprint()}, prints


def test_dask_profile_is_partition_independent_and_equals_local(dask_client: Any) -> None:  # noqa: F811
    import dask.dataframe as dd

    from modelmon import dask as mm_dask

    prints = {}
    for k in PARTITIONS:
        ddf = dd.from_pandas(FRAME, npartitions=k, sort=False)
        assert ddf.npartitions == k
        prints[k] = mm_dask.profile(ddf, **PROFILE_ARGS).fingerprint
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


def test_spark_batch_job_equals_one_process(spark: Any) -> None:  # noqa: F811
    from modelmon import spark as mm_spark

    ref, live = reference(), live_frame()
    one = one_process(ref, live)
    sdf = spark.createDataFrame(live)
    for k in (1, 3):
        job = mm_spark.monitor(
            sdf.repartition(k),
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


def test_dask_batch_job_equals_one_process(dask_client: Any) -> None:  # noqa: F811
    import dask.dataframe as dd

    from modelmon import dask as mm_dask

    ref, live = reference(), live_frame()
    one = one_process(ref, live)
    for k in (1, 3, 7):
        job = mm_dask.monitor(
            dd.from_pandas(live, npartitions=k, sort=False),
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
