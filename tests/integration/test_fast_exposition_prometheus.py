"""A real Prometheus scrapes modelmon's fast text render and stores every sample.

A monitor with a reference profile (scikit-learn's breast-cancer data) is served by
``modelmon.start_http_server`` (the cached renderer); Prometheus scrapes it every
second. Every series Prometheus stores from the target equals, label for label and
value for value, what prometheus-client's own ``generate_latest`` renders for the same
registry (the heartbeat, whose value is the time of each scrape, is only checked to be
there).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer

import modelmon
from modelmon import names
from modelmon.profile import ReferenceProfile
from tests.conftest import free_port
from tests.integration._prom import prometheus, wait_until

pytestmark = pytest.mark.integration

HEARTBEAT = names.HEARTBEAT.family_name()
Key = tuple[str, tuple[tuple[str, str], ...]]


def _generic(registry: CollectorRegistry) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _equal(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_prometheus_stores_what_generate_latest_renders(tmp_path: Path) -> None:
    data = load_breast_cancer()
    x, y = data.data, data.target
    names_ = [f"f{i}" for i in range(x.shape[1])]
    rng = np.random.default_rng(0)
    train = rng.permutation(len(x))[:300]
    profile = ReferenceProfile.from_data(x[train], feature_names=names_, created_at=0.0)
    registry = CollectorRegistry()
    monitor = modelmon.Monitor(
        "cancer", "1", registry=registry, reference=profile, feature_names=names_, min_samples=50
    )
    for i in rng.permutation(len(x)):
        row = dict(zip(names_, map(float, x[i] * 1.05), strict=True))
        pid = monitor.observe(row, float(y[i]), latency_s=float(rng.exponential(0.02)))
        if i % 3 == 0:
            monitor.record_outcome(pid, float(y[i]))
    monitor.fold()
    port = free_port()
    server, thread = modelmon.start_http_server(port, "127.0.0.1", registry, min_interval=0.0)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "m", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    try:
        want = _generic(registry)
        with prometheus(tmp_path, config, {}) as prom:
            expr = '{job="m", __name__=~"modelmon_.+"}'

            def stored() -> list[dict[str, object]] | None:
                result = prom.query(expr)
                return result if len(result) == len(want) else None

            result = wait_until(stored, 60, f"{len(want)} modelmon series in Prometheus")
        got: dict[Key, float] = {}
        for r in result:
            labels = dict(r["metric"])  # type: ignore[call-overload]
            name = labels.pop("__name__")
            labels.pop("job"), labels.pop("instance")
            got[(name, tuple(sorted(labels.items())))] = float(r["value"][1])  # type: ignore[index]
        assert got.keys() == want.keys()
        beats = [k for k in want if k[0] == HEARTBEAT]
        assert len(beats) == 1
        differ = [k for k in want if k[0] != HEARTBEAT and not _equal(got[k], want[k])]
        assert not differ, differ[:5]
        assert len(want) > 500  # drift bins, ratios, quantiles, decisions, outcomes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
        monitor.close()
