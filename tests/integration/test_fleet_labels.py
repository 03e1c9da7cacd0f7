"""Ground truth in a fleet: two replicas, labels joined on any worker of any replica.

Replica A is gunicorn with 4 uvicorn workers, replica B a single uvicorn process; each
has its own multi-process directory (as two hosts would) and both share one
``MODELMON_ID_KEY``. Predictions (single rows and batches) go to random replicas, and
gunicorn hands them to its workers; labels are posted in random batches to random
replicas. Summed over both replicas' scrapes, the confusion matrix, accuracy, F1, RMSE
and MAE equal scikit-learn's on the joined pairs, and nothing is counted ``unknown``.
"""

from __future__ import annotations

import contextlib
import math
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
)

import modelmon
from modelmon.aggregates.outcomes import classification_metrics
from tests.conftest import free_port
from tests.integration._gunicorn import Samples, multiproc_env, scrape, serve_app, venv_binary

pytestmark = pytest.mark.integration
APP = "tests.integration.apps.fleet_labels_app:app"


BOOT_SECONDS = 180  # workers import scikit-learn and fit two models; the CI box is shared


@contextlib.contextmanager
def serve(argv: list[str], port: int, tmp: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run one replica until the block ends; waits (bounded) until it answers ``/pid``."""
    environ = multiproc_env(tmp, **env)
    with serve_app(argv, port, tmp, environ, boot_seconds=BOOT_SECONDS, stop_seconds=30) as proc:
        yield proc


def summed(
    scrapes: list[Samples], name: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for samples in scrapes:
        for (n, lab), v in samples.items():
            if n == name and all(dict(lab).get(k) == val for k, val in labels.items()):
                out[lab] = out.get(lab, 0.0) + v
    return out


def total(scrapes: list[Samples], name: str, **labels: str) -> float:
    return sum(summed(scrapes, name, **labels).values())


def test_two_replicas_join_every_label_exactly(tmp_path: Path) -> None:
    rng = random.Random(12)
    key = secrets.token_urlsafe(32)
    ports = [free_port(), free_port()]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    gunicorn = [
        venv_binary("gunicorn"), "-w", "4", "-k", "uvicorn.workers.UvicornWorker",
        "-b", f"127.0.0.1:{ports[0]}", "-c", "tests/integration/apps/gunicorn_conf.py", APP,
    ]  # fmt: skip
    uvicorn = [
        venv_binary("uvicorn"), "--port", str(ports[1]), "--host", "127.0.0.1",
        "--log-level", "warning", APP,
    ]  # fmt: skip
    Xc, yc = load_breast_cancer(return_X_y=True)
    Xr, yr = load_diabetes(return_X_y=True)
    with (
        serve(gunicorn, ports[0], dirs[0], MODELMON_ID_KEY=key),
        serve(uvicorn, ports[1], dirs[1], MODELMON_ID_KEY=key),
    ):
        # A new connection per request: gunicorn hands each to a random worker.
        def post(path: str, json: object) -> requests.Response:
            url = f"http://127.0.0.1:{rng.choice(ports)}{path}"
            return requests.post(url, json=json, timeout=30, headers={"Connection": "close"})

        pids: set[int] = set()

        pairs: dict[str, list[tuple[str, float, float]]] = {"clf": [], "reg": []}
        for kind, X, y in (("clf", Xc, yc), ("reg", Xr, yr)):
            rows = list(range(1, len(X), 2))  # held-out rows
            i = 0
            while i < len(rows):
                n = rng.choice([1, 1, 1, 3, 8])
                chunk = rows[i : i + n]
                i += n
                body = post(f"/predict/{kind}", X[chunk].tolist()).json()
                assert len(body["ids"]) == len(chunk)
                pids.add(body["pid"])
                pairs[kind] += [
                    (pid, float(y[r]), float(p))
                    for pid, r, p in zip(body["ids"], chunk, body["predicted"], strict=True)
                ]
        assert len(pids) >= 3  # several workers of replica A, and replica B
        accepted = {"clf": 0, "reg": 0}
        for kind, joined in pairs.items():
            order = joined[:]
            rng.shuffle(order)
            while order:
                n = rng.choice([1, 5, 20])
                batch, order = order[:n], order[n:]
                labels = [{"prediction_id": pid, "actual": actual} for pid, actual, _ in batch]
                response = post(f"/feedback/{kind}", labels[0] if n == 1 else labels)
                assert response.status_code == 202, response.text
                accepted[kind] += len(batch)

        # Workers write their state after each fold; wait (bounded) until every label
        # is visible in the replicas' merged views, then compare exactly.
        expected = len(pairs["clf"])
        deadline = time.monotonic() + 60
        while True:
            scrapes = [scrape(p) for p in ports]
            seen = total(scrapes, "modelmon_outcomes_total", model="fleet_clf")
            seen_reg = total(scrapes, "modelmon_regression_outcomes_total", model="fleet_reg")
            if (seen, seen_reg) == (expected, len(pairs["reg"])) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (seen, seen_reg) == (accepted["clf"], accepted["reg"])

        # Negative control: the replicas verify. An id minted for the same model by a
        # process with another key is refused; with the fleet's key it is scored.
        for id_key, status in ((secrets.token_urlsafe(32), 422), (key, 202)):
            outsider = modelmon.Monitor(
                "fleet_clf", "1", registry=False, id_key=id_key, classes=["0", "1"]
            )
            outsider.observe(Xc[:1], np.array([[0.3, 0.7]]))
            token = modelmon.last_prediction_id()
            url = f"http://127.0.0.1:{ports[1]}/feedback/clf"
            answer = requests.post(url, json={"prediction_id": token, "actual": 1}, timeout=30)
            assert answer.status_code == status, answer.text
            outsider.close()

    for model in ("fleet_clf", "fleet_reg"):
        for reason in ("unknown", "invalid_id", "invalid", "duplicate", "expired"):
            assert (
                total(scrapes, "modelmon_outcomes_unmatched_total", model=model, reason=reason) == 0
            )

    # Classification: the summed confusion matrix is scikit-learn's on the joined pairs.
    actual = [int(a) for _, a, _ in pairs["clf"]]
    predicted = [int(p) for _, _, p in pairs["clf"]]
    confusion = {
        (dict(lab)["actual"], dict(lab)["predicted"]): v
        for lab, v in summed(scrapes, "modelmon_outcomes_total", model="fleet_clf").items()
    }
    expected_matrix = confusion_matrix(actual, predicted, labels=[0, 1])
    for a in (0, 1):
        for p in (0, 1):
            assert confusion.get((str(a), str(p)), 0.0) == expected_matrix[a, p]
    metrics = classification_metrics({k: int(v) for k, v in confusion.items()}, "1")
    assert metrics["accuracy"] == accuracy_score(actual, predicted)
    assert metrics["f1"] == pytest.approx(f1_score(actual, predicted, average="macro"), abs=1e-15)
    assert metrics["f1_positive"] == pytest.approx(f1_score(actual, predicted), abs=1e-15)

    # Regression: RMSE and MAE from the summed error sums.
    y_true = np.array([a for _, a, _ in pairs["reg"]])
    y_pred = np.array([p for _, _, p in pairs["reg"]])
    n = total(scrapes, "modelmon_regression_squared_error_count", model="fleet_reg")
    squared = total(scrapes, "modelmon_regression_squared_error_sum", model="fleet_reg")
    absolute = total(scrapes, "modelmon_regression_absolute_error_sum", model="fleet_reg")
    assert n == len(y_true)
    assert math.sqrt(squared / n) == pytest.approx(
        math.sqrt(mean_squared_error(y_true, y_pred)), rel=1e-12
    )
    assert absolute / n == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-12)
