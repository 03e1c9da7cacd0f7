"""One local SparkSession and one Dask LocalCluster per test session (both are slow to start).

Spark runs in ``local[2]`` mode with the test's own Python on the executors; Dask runs a
``LocalCluster`` of 2 worker processes with 1 thread each. Everything binds 127.0.0.1.
A missing engine or Java skips, or fails under ``MODELMON_REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REQUIRE_INTEGRATION, require_binary


def _require_module(name: str, extra: str) -> None:
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (pip install 'modelmon[{extra}]')"
        if REQUIRE_INTEGRATION:
            pytest.fail(message + " and MODELMON_REQUIRE_INTEGRATION=1")
        pytest.skip(message)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    _require_module("pyspark", "spark")
    require_binary("java")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("modelmon-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    _require_module("distributed", "dask")
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # A free port: with None, distributed still binds 8787 and warns when another
        # cluster on the machine holds it.
        dashboard_address="127.0.0.1:0",
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


ENGINES = ("spark", "dask")


def partitioned(request: pytest.FixtureRequest, engine: str, frame: Any, k: int) -> Any:
    """``frame`` (pandas) as a DataFrame of ``engine`` in exactly ``k`` partitions.

    The engine's session fixture comes from ``request`` (import ``spark`` and
    ``dask_client`` into the test module).
    """
    if engine == "spark":
        part = request.getfixturevalue("spark").createDataFrame(frame).repartition(k)
        assert part.rdd.getNumPartitions() == k
        return part
    request.getfixturevalue("dask_client")
    import dask.dataframe as dd

    part = dd.from_pandas(frame, npartitions=k, sort=False)
    assert part.npartitions == k
    return part


def engine_module(engine: str) -> Any:
    """``modelmon.spark`` or ``modelmon.dask``."""
    return importlib.import_module(f"modelmon.{engine}")
