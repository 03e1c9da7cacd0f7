"""End to end: the FastAPI example, a real Prometheus with the generated rules, a real
Alertmanager with the generated routing, and a webhook receiver inside the test.

Healthy traffic (the held-out split) must page nobody; drifted traffic (three features
shifted by several reference std) must deliver ``ModelmonFeatureDrift`` to the webhook with
the right labels; and every dashboard panel's query must return data from what was scraped.

The windows are shortened (drift window 1m, ``for`` 10s). Two thresholds differ from the
defaults because the held-out split has only 143 rows: its own PSI against the training
reference reaches 0.15 for some features (sampling noise of 143 rows), above the default
warning level 0.1, so the warning level is 0.2 here (critical stays 0.25); and PSI over
fewer than ~600 rows is dominated by nearly empty bins (the 1e-4 floor), so the fleet
rules report drift only from 600 rows on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from modelmon.monitoring import (
    MonitoringConfig,
    dashboard_queries,
    render_alert_rules,
    render_alertmanager_config,
    render_prometheus_config,
    render_recording_rules,
)
from tests.conftest import free_port
from tests.integration._prom import (
    Alertmanager,
    Prometheus,
    Webhook,
    alertmanager,
    binary,
    prometheus,
    spawn,
    wait_until,
    webhook_receiver,
)

pytestmark = pytest.mark.integration

MODEL, VERSION = "breast_cancer", "1.0"  # examples/fastapi_app.py
CONFIG = MonitoringConfig(
    drift_window="1m", drift_for="10s", psi_warning=0.2, drift_min_samples=600
)
DRIFTED = ("mean radius", "worst perimeter", "mean concavity")
SHIFT_STD = 4.0
HEALTHY_SECONDS = 30.0  # > min samples reached (~8 s) + drift_for + delivery
BATCH = 8
PACE = 0.1  # seconds between batches: ~80 rows/s
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$model": ".+",
    "$version": ".+",
    "$instance": ".+",
    "$feature": DRIFTED[0],
    "$segment": ".+",
}
# Panels whose queries cannot return data for the example app, with the reason.
_NO_SEGMENT = (
    "the example app configures no segment= (tests/integration/test_segments_real_data.py)"
)
NO_DATA_EXPECTED: dict[str, str] = {
    "Worst segments (accuracy, 1h)": _NO_SEGMENT,
    "Predictions per second by segment": _NO_SEGMENT,
    "Accuracy by segment (1h, fleet)": _NO_SEGMENT,
    "Feature drift (PSI) by segment, selected feature": _NO_SEGMENT,
    "RMSE by segment (1h, fleet)": _NO_SEGMENT,
}


@dataclass(frozen=True)
class HeldOut:
    """The example's held-out split (reproduced, then checked against /example)."""

    names: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    std: np.ndarray


def held_out() -> HeldOut:
    data = load_breast_cancer()
    X_train, X_test, _, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    names = tuple(str(n) for n in data.feature_names)
    return HeldOut(names, X_test, y_test, X_train.std(axis=0))


# --- the app and its traffic -----------------------------------------------------------


@dataclass
class App:
    url: str
    client: httpx.Client
    data: HeldOut
    sent: int = 0

    def rows(self, X: np.ndarray) -> list[dict[str, float]]:
        return [dict(zip(self.data.names, row.tolist(), strict=True)) for row in X]

    def batch(self, X: np.ndarray, y: np.ndarray) -> None:
        """Predict a batch, then feed back the true labels of its rows."""
        answer = self.client.post(f"{self.url}/predict", json=self.rows(X))
        answer.raise_for_status()
        ids = [p["prediction_id"] for p in answer.json()["predictions"]]
        feedback = [{"prediction_id": i, "actual": int(a)} for i, a in zip(ids, y, strict=True)]
        self.client.post(f"{self.url}/feedback", json=feedback).raise_for_status()
        self.sent += len(X)

    def bad_request(self) -> None:
        """One client error and one model error.

        A row without its first feature: predict raises KeyError, the app answers 400
        (counted as aborted, the client's fault). A NaN feature: the model itself fails,
        the app answers 500 (a model error, what the error panels and budget count).
        """
        row = self.rows(self.data.X[:1])[0]
        row.pop(self.data.names[0])
        assert self.client.post(f"{self.url}/predict", json=row).status_code == 400
        row = self.rows(self.data.X[:1])[0]
        row[self.data.names[0]] = float("nan")
        body = json.dumps(row)  # NaN as the JSON extension Python and Starlette read
        headers = {"content-type": "application/json"}
        answer = self.client.post(f"{self.url}/predict", content=body, headers=headers)
        assert answer.status_code == 500

    def drive(
        self,
        shift: np.ndarray,
        seconds: float,
        until: Callable[[], bool] | None = None,
        bad_every: int = 0,
    ) -> bool:
        """Send batches cycling through the held-out rows (shifted by ``shift``)."""
        order = np.random.default_rng(self.sent).permutation(len(self.data.X))
        cycle = itertools.cycle(np.array_split(order, len(order) // BATCH))
        deadline = time.monotonic() + seconds
        for n in itertools.count(1):
            idx = next(cycle)
            self.batch(self.data.X[idx] + shift, self.data.y[idx])
            if bad_every and n % bad_every == 0:
                self.bad_request()
            if until is not None and n % 10 == 0 and until():
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(PACE)
        return False


@contextlib.contextmanager
def example_app(workdir: Path, data: HeldOut) -> Iterator[App]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with spawn("uvicorn", argv, workdir) as process, httpx.Client(timeout=10) as client:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            process.check_alive()
            return client.get(f"{url}/example", params={"i": 0}).status_code == 200

        wait_until(ready, 60, "the FastAPI example to serve", details=process.logs)
        for i in (0, 1, len(data.X) - 1):  # the split reproduced here is the example's
            row = client.get(f"{url}/example", params={"i": i}).json()
            assert [row[n] for n in data.names] == data.X[i].tolist()
        yield App(url, client, data)


# --- the stack -------------------------------------------------------------------------


@dataclass
class Regressor:
    """The Flask example (diabetes regression): it gives the RMSE/MAE panels their data."""

    url: str
    client: httpx.Client

    def predict_and_label(self, rows: int = 200) -> None:
        from sklearn.datasets import load_diabetes

        data = load_diabetes()
        names = [str(n) for n in data.feature_names]
        for start in range(0, rows, 10):
            X, y = data.data[start : start + 10], data.target[start : start + 10]
            batch = [dict(zip(names, row.tolist(), strict=True)) for row in X]
            answer = self.client.post(f"{self.url}/predict", json=batch)
            answer.raise_for_status()
            ids = [p["prediction_id"] for p in answer.json()["predictions"]]
            for pid, actual in zip(ids, y, strict=True):
                item = {"prediction_id": pid, "actual": float(actual)}
                self.client.post(f"{self.url}/feedback", json=item).raise_for_status()


@contextlib.contextmanager
def regression_app(workdir: Path) -> Iterator[Regressor]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"]
    argv += ["examples.flask_app:app"]
    with spawn("gunicorn-flask", argv, workdir) as process, httpx.Client(timeout=10) as client:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            process.check_alive()
            try:
                return client.get(f"{url}/metrics").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "the Flask example to serve", details=process.logs)
        yield Regressor(url, client)


@dataclass
class Stack:
    app: App
    regressor: Regressor
    prom: Prometheus
    am: Alertmanager
    hook: Webhook

    def logs(self) -> str:
        return "\n".join(p.logs() for p in (self.prom.process, self.am.process))


@contextlib.contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    data = held_out()
    with contextlib.ExitStack() as es:
        hook = es.enter_context(webhook_receiver())
        am_config = render_alertmanager_config(
            CONFIG, webhook_url=hook.url, group_wait="1s", group_interval="2s"
        )
        am = es.enter_context(alertmanager(workdir / "am", am_config))
        app = es.enter_context(example_app(workdir, data))
        regressor = es.enter_context(regression_app(workdir))
        prom_config = render_prometheus_config(
            CONFIG,
            targets=[app.url.removeprefix("http://"), regressor.url.removeprefix("http://")],
            alertmanager=am.url.removeprefix("http://"),
            scrape_interval="1s",
            evaluation_interval="1s",
        )
        rules = {
            "recording_rules.yml": render_recording_rules(CONFIG),
            "alert_rules.yml": render_alert_rules(CONFIG),
        }
        prom = es.enter_context(prometheus(workdir / "prom", prom_config, rules))
        wait_until(
            lambda: set(prom.up_targets().values()) == {"up"},
            20,
            "Prometheus to scrape the app",
            details=lambda: str(prom.up_targets()),
        )
        yield Stack(app, regressor, prom, am, hook)


def firing(prom: Prometheus) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["state"] == "firing"]


def drift_alerts(hook: Webhook, severity: str = "critical") -> dict[str, dict[str, str]]:
    """Labels of the firing ModelmonFeatureDrift alerts of ``severity`` delivered, by feature.

    The warning twin fires first (PSI rises through 0.2 before 0.25) and is delivered then;
    inhibition only mutes it once the critical one is active.
    """
    return {
        a["labels"]["feature"]: a["labels"]
        for a in hook.alerts()
        if a["status"] == "firing"
        and a["labels"].get("alertname") == "ModelmonFeatureDrift"
        and a["labels"].get("severity") == severity
    }


def panel_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


# --- the test --------------------------------------------------------------------------


def test_healthy_traffic_is_quiet_drift_pages_and_every_panel_has_data(tmp_path: Path) -> None:
    binary("prometheus")
    binary("prometheus-alertmanager", "alertmanager")
    with stack(tmp_path) as s:
        none = np.zeros(len(s.app.data.names))
        s.app.drive(none, HEALTHY_SECONDS)
        assert_quiet(s)

        shift = none.copy()
        for feature in DRIFTED:
            j = s.app.data.names.index(feature)
            shift[j] = SHIFT_STD * s.app.data.std[j]
        delivered = s.app.drive(
            shift, 90, until=lambda: set(DRIFTED) <= set(drift_alerts(s.hook)), bad_every=5
        )
        assert delivered, f"no drift alert for {DRIFTED}: {s.hook.payloads()}\n{s.logs()}"
        assert_drift_alert_labels(s.hook)
        # Labelled regression traffic (too little for drift scores: no alert from it).
        s.regressor.predict_and_label()
        wait_until(
            lambda: bool(s.prom.query(CONFIG.rule("rmse", "1h"))),
            30,
            "the fleet RMSE rule to have data",
            details=s.logs,
        )
        assert_every_panel_has_data(s.prom)


def assert_quiet(s: Stack) -> None:
    """No alert fired, and not for lack of data: the fleet PSI was evaluated, below 0.2."""
    rule = f'{CONFIG.rule("feature_psi", "1m")}{{model="{MODEL}"}}'
    psi = s.prom.values(rule, "feature")
    assert set(psi) == set(s.app.data.names), psi
    highest = s.prom.query(f"max(max_over_time({rule}[{HEALTHY_SECONDS:.0f}s]))")
    assert float(highest[0]["value"][1]) < CONFIG.psi_warning, psi
    assert firing(s.prom) == [], s.prom.alerts()
    assert s.hook.payloads() == []


def assert_drift_alert_labels(hook: Webhook) -> None:
    alerts = drift_alerts(hook)
    assert set(alerts) == set(DRIFTED), sorted(alerts)
    for feature in DRIFTED:
        labels = alerts[feature]
        assert labels["alertname"] == "ModelmonFeatureDrift"
        assert (labels["model"], labels["version"]) == (MODEL, VERSION)
        assert labels["severity"] == "critical"
        assert "instance" not in labels, "fleet alerts aggregate instances away"
    assert set(drift_alerts(hook, "warning")) <= set(DRIFTED)
    groups = {
        (p["receiver"], tuple(sorted(p["groupLabels"].items())))
        for p in hook.payloads()
        if p["groupLabels"].get("alertname") == "ModelmonFeatureDrift"
    }
    group = (("alertname", "ModelmonFeatureDrift"), ("model", MODEL), ("version", VERSION))
    assert groups == {(f"{CONFIG.namespace}-chat", group)}


def assert_every_panel_has_data(prom: Prometheus) -> None:
    queries = dashboard_queries(CONFIG)
    assert set(NO_DATA_EXPECTED) <= {title for title, _ in queries}, "stale exclusion"
    empty = [
        (title, expr)
        for title, expr in queries
        if title not in NO_DATA_EXPECTED and not prom.query(panel_expr(expr))
    ]
    assert empty == [], f"panels without data: {empty}"
