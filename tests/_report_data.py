"""A real model on real data with known drift, for the report's tests and its screenshot.

scikit-learn's breast-cancer data (30 numeric features), a logistic regression, a
reference profile of the training rows; the live rows are a resample with two features
shifted (``mean radius`` x1.3, ``worst texture`` +6), 5% of ``mean area`` missing, and
every row labelled.
"""

from __future__ import annotations

import functools
from html.parser import HTMLParser
from typing import Any

import numpy as np

import modelmon

SHIFTED = ("mean radius", "worst texture")


@functools.cache
def cancer_data() -> tuple[Any, Any, Any, modelmon.ReferenceProfile]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    profile = modelmon.ReferenceProfile.from_data(
        X, predictions=model.predict_proba(X), classes=["0", "1"], created_at=1_700_000_000.0
    )
    return X, y, model, profile


def live_rows(X: Any, n: int = 600, seed: int = 3) -> Any:
    live = X.sample(n, replace=True, random_state=seed).copy()
    live["mean radius"] *= 1.3
    live["worst texture"] += 6.0
    live.iloc[: n // 20, live.columns.get_loc("mean area")] = np.nan
    return live


def drifted_monitor(registry: Any, n: int = 600, batch: int = 50, **kw: Any) -> modelmon.Monitor:
    """A monitor that has seen ``n`` drifted rows in batches, each row labelled."""
    X, y, model, profile = cancer_data()
    mon = modelmon.Monitor("cancer", "1.4.0", reference=profile, registry=registry, **kw)
    live = live_rows(X, n)
    proba = model.predict_proba(live.fillna(X.mean()))
    truth = y.loc[live.index].to_numpy()
    for i in range(0, n, batch):
        mon.observe(live.iloc[i : i + batch], proba[i : i + batch], latency_s=0.002)
        ids = modelmon.last_prediction_ids()  # one authenticated id per row
        mon.record_outcomes(ids, truth[i : i + batch].tolist())
    return mon


class _Elements(HTMLParser):
    """Every element with ``data-*`` attributes: (tag, {attribute: value})."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        data = {k[5:]: v or "" for k, v in attrs if k.startswith("data-")}
        if data:
            self.found.append((tag, data))


def elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def feature_rows(page: str) -> list[dict[str, str]]:
    return [d for tag, d in elements(page).found if tag == "tr" and "feature" in d]
