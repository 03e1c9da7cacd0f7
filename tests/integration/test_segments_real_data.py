"""A model broken for one segment only, on real data, watched by a real Prometheus.

scikit-learn's breast cancer data, with a ``region`` column drawn at random (so every
region has the same distribution as the reference). A logistic regression is trained on
half; rows of the whole set are served (3,000 single-row calls drawn at random, the
reference profiles the whole set), and in the small
``island`` region (6% of traffic) a unit bug multiplies the size features by 2: the model
misreads those rows. Every prediction is labelled with its true class through the id the
call returned (the id carries the segment).

What must hold: the per-segment accuracy and drift show the broken region and only it;
the overall accuracy and drift barely move; Prometheus, with the generated rules, fires
``ModelmonSegmentAccuracyLow`` and ``ModelmonSegmentFeatureDrift`` naming ``island`` and
no other segment, and not ``ModelmonAccuracyBelowTarget``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, make_wsgi_app
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelmon
from modelmon import ReferenceProfile
from modelmon.monitoring import (
    MonitoringConfig,
    render_alert_rules,
    render_prometheus_config,
    render_recording_rules,
)
from tests.conftest import free_port, scrape, value
from tests.integration._prom import Prometheus, binary, prometheus, wait_until

pytestmark = pytest.mark.integration

REGIONS = ("north", "south", "east", "west", "island")
SHARES = (0.3, 0.3, 0.2, 0.14, 0.06)
BROKEN = "island"
SIZE_FEATURES = ("mean radius", "mean perimeter", "mean area", "worst radius",
                 "worst perimeter", "worst area")  # fmt: skip
LIVE_ROWS = 3000
ROUNDS = 6
MODEL, VERSION = "cancer", "1"
CONFIG = MonitoringConfig(
    performance_window="1m",
    performance_for="0s",
    drift_for="0s",
    drift_keep_firing_for="0s",
    min_outcomes=20,
)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def metrics_server(registry: CollectorRegistry) -> Iterator[int]:
    port = free_port()
    server: WSGIServer = make_server(
        "127.0.0.1", port, make_wsgi_app(registry), handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _data() -> dict[str, Any]:
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    X_train, _, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.5, random_state=0, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_train, y_train)
    # The reference profiles all rows (a production snapshot) and live traffic is drawn
    # from them: a healthy segment does not drift, up to sampling noise. (Drawing from
    # the held-out half only would make its own sampling noise significant at 3,000 rows.)
    rng = np.random.default_rng(0)
    X_all, y_all = data.data, data.target
    reference_rows = [
        {"region": str(r), **dict(zip(names, x.tolist(), strict=True))}
        for r, x in zip(rng.choice(REGIONS, size=len(X_all), p=SHARES), X_all, strict=True)
    ]
    profile = ReferenceProfile.from_data(
        reference_rows, predictions=model.predict(X_all), categorical=["region"]
    )
    pick = rng.integers(0, len(X_all), LIVE_ROWS)
    X, y = X_all[pick].copy(), y_all[pick]
    regions = rng.choice(REGIONS, size=LIVE_ROWS, p=SHARES)
    clean_hits = model.predict(X) == y
    broken = regions == BROKEN
    cols = [names.index(c) for c in SIZE_FEATURES]
    X[np.ix_(broken, cols)] *= 2.0  # the unit bug of one region's data source
    return {
        "names": names,
        "model": model,
        "profile": profile,
        "X": X,
        "y": y,
        "regions": regions,
        "clean_hits": clean_hits,
    }


def _serve(mon: modelmon.Monitor, d: dict[str, Any], rows: range) -> None:
    model, names = d["model"], d["names"]

    @mon
    def predict(row: dict[str, Any]) -> int:
        x = np.array([[row[n] for n in names]])
        return int(model.predict(x)[0])

    ids, actuals = [], []
    for i in rows:
        predict(
            {"region": str(d["regions"][i]), **dict(zip(names, d["X"][i].tolist(), strict=True))}
        )
        ids.append(modelmon.last_prediction_id())
        actuals.append(int(d["y"][i]))
    assert set(mon.record_outcomes(ids, actuals)) == {"matched"}


def _firing(prom: Prometheus, alert: str) -> set[str]:
    return {
        a["labels"].get("segment", "")
        for a in prom.alerts()
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
    }


def test_one_broken_segment_is_seen_and_named(tmp_path: Path) -> None:
    binary("prometheus")
    d = _data()
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        MODEL, VERSION, reference=d["profile"], registry=registry, segment="region"
    )
    try:
        with metrics_server(registry) as port:
            prom_config = render_prometheus_config(
                CONFIG,
                targets=[f"127.0.0.1:{port}"],
                alertmanager="127.0.0.1:1",
                scrape_interval="1s",  # a scrape times out after its interval: room under load
                evaluation_interval="1s",
            )
            rules = {
                "recording_rules.yml": render_recording_rules(CONFIG),
                "alert_rules.yml": render_alert_rules(CONFIG),
            }
            with prometheus(tmp_path / "prom", prom_config, rules) as prom:
                seen = f'modelmon_predictions_total{{model="{MODEL}"}}'
                wait_until(lambda: prom.query(seen), 60, "a first scrape")
                for part in np.array_split(np.arange(LIVE_ROWS), ROUNDS):
                    _serve(mon, d, range(int(part[0]), int(part[-1]) + 1))
                    fed = float(part[-1] + 1)
                    wait_until(
                        lambda fed=fed: prom.values(seen, "model").get(MODEL) == fed,
                        60,
                        f"Prometheus to scrape {fed} predictions",
                    )
                wait_until(
                    lambda: (
                        _firing(prom, "ModelmonSegmentAccuracyLow")
                        and _firing(prom, "ModelmonSegmentFeatureDrift")
                    ),
                    90,
                    "the segment alerts to fire",
                    details=lambda: str(prom.alerts()),
                )
                accuracy_low = _firing(prom, "ModelmonSegmentAccuracyLow")
                drift = _firing(prom, "ModelmonSegmentFeatureDrift")
                drifted = {
                    a["labels"]["feature"]
                    for a in prom.alerts()
                    if a["labels"]["alertname"] == "ModelmonSegmentFeatureDrift"
                }
                overall_low = _firing(prom, "ModelmonAccuracyBelowTarget")
        samples = scrape(registry)
        assert mon.drift is not None
        decisions = mon.drift.decisions(mon.render_context().now)
    finally:
        mon.close()
    assert accuracy_low == {BROKEN}
    assert drift == {BROKEN}
    assert drifted and drifted <= set(SIZE_FEATURES)
    assert not overall_low

    # In-process: per-segment accuracy shows the broken region, the overall barely moves.
    broken = d["regions"] == BROKEN
    segment_acc = {}
    labels = {"model": MODEL, "version": VERSION}
    for region in REGIONS:
        key = "modelmon_segment_outcomes_total"
        right = value(samples, key, segment=region, result="correct", **labels)
        wrong = value(samples, key, segment=region, result="wrong", **labels)
        assert right is not None and wrong is not None
        segment_acc[region] = right / (right + wrong)
    clean = d["clean_hits"]
    assert segment_acc[BROKEN] < clean[broken].mean() - 0.2
    for region in REGIONS[:-1]:
        assert segment_acc[region] == pytest.approx(clean[d["regions"] == region].mean())
    outcomes = {k: v for k, v in samples.items() if k[0] == "modelmon_outcomes_total"}
    hits = sum(v for k, v in outcomes.items() if dict(k[1])["actual"] == dict(k[1])["predicted"])
    overall = hits / sum(outcomes.values())
    assert abs(overall - clean.mean()) < 0.03

    # Drift: detected within the broken region; the overall decision stays quiet.
    for feature in SIZE_FEATURES:
        assert not decisions["features"][feature].detected, feature
        in_region = value(
            samples,
            "modelmon_segment_feature_drift_detected",
            feature=feature,
            segment=BROKEN,
            **labels,
        )
        assert in_region == 1.0, feature
