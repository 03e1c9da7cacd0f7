"""The HTML drift report: its numbers are the exported gauges, its order is by severity."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.cli import main
from modelmon.errors import ConfigurationError
from modelmon.exporters import multiprocess as mpx
from modelmon.multiprocess import MultiprocessCollector
from modelmon.report.snapshot import FALLBACK_PSI_DRIFT, select_samples
from modelmon.report.sources import from_directory
from tests._report_data import (
    SHIFTED,
    cancer_data,
    drifted_monitor,
    elements,
    feature_rows,
    live_rows,
)

LABELS = {"model": "cancer", "version": "1.4.0"}


def _gauge(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, {**LABELS, **labels})


@pytest.fixture(scope="module")
def drifted() -> tuple[CollectorRegistry, modelmon.Monitor, str]:
    reg = CollectorRegistry()
    mon = drifted_monitor(reg)
    return reg, mon, mon.report()


def test_every_number_equals_the_exported_gauge(drifted: Any) -> None:
    reg, _, page = drifted
    rows = feature_rows(page)
    assert len(rows) == 30
    for row in rows:
        f = row["feature"]
        assert float(row["psi"]) == _gauge(reg, "modelmon_feature_drift", feature=f, method="psi")
        seen = _gauge(reg, "modelmon_feature_observations_total", feature=f)
        missing = _gauge(reg, "modelmon_feature_missing_total", feature=f)
        invalid = _gauge(reg, "modelmon_feature_invalid_total", feature=f)
        assert seen is not None and missing is not None and invalid is not None
        assert float(row["observations"]) == seen == 600
        assert float(row["missing-share"]) == missing / seen
        assert float(row["invalid-share"]) == invalid / seen
    by_name = {r["feature"]: r for r in rows}
    assert float(by_name["mean area"]["missing-share"]) == 30 / 600

    perf = {d["metric"]: float(d["value"]) for t, d in elements(page).found if "metric" in d}
    assert perf and perf.keys() >= {"accuracy", "f1"}
    for metric, value in perf.items():
        assert value == _gauge(reg, "modelmon_performance", metric=metric)

    conf = next(d for _, d in elements(page).found if "mean" in d)
    total = _gauge(reg, "modelmon_prediction_confidence_count")
    conf_sum = _gauge(reg, "modelmon_prediction_confidence_sum")
    assert total == float(conf["count"]) == 600
    assert conf_sum is not None and float(conf["mean"]) == conf_sum / total

    header = next(d for t, d in elements(page).found if t == "header")
    assert header["model"] == "cancer" and header["version"] == "1.4.0"
    assert int(header["features"]) == 30


def _expected_decision(reg: CollectorRegistry, feature: str) -> str:
    """From the gauges: the exported test decision when there is one, else the PSI rule."""
    detected = _gauge(reg, "modelmon_feature_drift_detected", feature=feature)
    if detected is not None:
        return "drift" if detected == 1.0 else "ok"
    psi = _gauge(reg, "modelmon_feature_drift", feature=feature, method="psi")
    assert psi is not None
    return "drift" if psi >= FALLBACK_PSI_DRIFT else "ok"


def test_features_come_in_severity_order_with_their_decisions(drifted: Any) -> None:
    reg, _, page = drifted
    rows = feature_rows(page)
    decisions = [r["decision"] for r in rows]
    assert decisions == [_expected_decision(reg, r["feature"]) for r in rows]
    drifted_names = [r["feature"] for r in rows if r["decision"] == "drift"]
    assert set(SHIFTED) <= set(drifted_names)
    assert decisions == sorted(decisions, key=["drift", "ok", "not enough data"].index)
    for group in ("drift", "ok"):  # within a decision: smallest p-value, then largest PSI
        members = [r for r in rows if r["decision"] == group]
        keys = [(float(r["pvalue"]) if r["pvalue"] else 1.0, -float(r["psi"])) for r in members]
        assert keys == sorted(keys)
    header = next(d for t, d in elements(page).found if t == "header")
    assert int(header["drifted"]) == len(drifted_names)


def test_page_is_self_contained_and_small(drifted: Any) -> None:
    _, _, page = drifted
    parsed = elements(page)
    assert not parsed.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not re.search(r"\s(src|href)=\"(?!#)", page)  # only in-page anchors
    assert "url(" not in page and "@import" not in page
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert len(page.encode()) < 300_000  # 30 features, 5 outputs: see docs/report.md


def test_repr_html_is_the_report(drifted: Any) -> None:
    _, mon, page = drifted
    assert feature_rows(mon._repr_html_()) == feature_rows(page)


def test_a_monitor_without_reference_or_data_still_renders() -> None:
    mon = modelmon.Monitor("bare", "1", registry=False)
    page = mon.report()
    assert "No reference profile" in page and "No labels yet" in page
    ref = modelmon.ReferenceProfile.from_data(np.zeros((10, 1)), feature_names=["z"])
    quiet = modelmon.Monitor("quiet", "1", reference=ref, registry=False)
    rows = feature_rows(quiet.report())
    assert [(r["feature"], r["decision"]) for r in rows] == [("z", "not enough data")]


def test_choosing_a_monitor_among_several_is_explicit() -> None:
    from modelmon.exporters.prometheus import to_prometheus

    a = modelmon.Monitor("a", "1", registry=False)
    b = modelmon.Monitor("b", "1", registry=False)
    metrics = list(to_prometheus([*a.collect(), *b.collect()]))
    with pytest.raises(ConfigurationError, match="several monitors match"):
        select_samples(metrics, None, None, "modelmon")
    assert select_samples(metrics, "b", None, "modelmon")[:2] == ("b", "1")
    with pytest.raises(ConfigurationError, match="no monitor matches"):
        select_samples(metrics, "c", None, "modelmon")


# --- sources ------------------------------------------------------------------------------


def test_cli_scores_a_csv_through_a_predict_function(tmp_path: Path) -> None:
    """``--current live.csv --model file.py:predict``: same numbers as a monitor fed directly."""
    X, y, model, profile = cancer_data()
    live = live_rows(X, 400, seed=5).fillna(X.mean())
    live["target"] = y.loc[live.index].to_numpy()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "score.py").write_text(
        "import pickle, pathlib\n"
        "import pandas as pd\n"
        "MODEL = pickle.loads((pathlib.Path(__file__).parent / 'model.pkl').read_bytes())\n"
        "def predict(rows):\n"
        "    # the model was fitted on a DataFrame: give it its column names back\n"
        "    return MODEL.predict_proba(pd.DataFrame(rows, columns=MODEL.feature_names_in_))\n"
    )
    live.to_csv(tmp_path / "live.csv", index=False)
    profile.save(tmp_path / "reference.json")
    out = tmp_path / "report.html"
    code = main(
        [
            "report", "--reference", str(tmp_path / "reference.json"),
            "--current", str(tmp_path / "live.csv"), "--model", f"{tmp_path / 'score.py'}:predict",
            "--label-column", "target", "--model-name", "cancer", "--model-version", "csv",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    rows = {r["feature"]: r for r in feature_rows(out.read_text())}

    reg = CollectorRegistry()
    direct = modelmon.Monitor("cancer", "csv", reference=profile, registry=reg)
    features = live.drop(columns=["target"])
    direct.observe(features.to_numpy(), model.predict_proba(features))  # one chunk, as the CLI
    for f in profile.features:
        psi = reg.get_sample_value(
            "modelmon_feature_drift",
            {"model": "cancer", "version": "csv", "feature": f, "method": "psi"},
        )
        assert psi is not None and math.isclose(float(rows[f]["psi"]), psi, rel_tol=1e-12)
    page = out.read_text()
    perf = {d["metric"]: float(d["value"]) for _, d in elements(page).found if "metric" in d}
    accuracy = float((model.predict(features) == live["target"].to_numpy()).mean())
    assert perf["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys: Any) -> None:
    _, _, _, profile = cancer_data()
    profile.save(tmp_path / "reference.json")
    code = main(
        ["report", "--reference", str(tmp_path / "reference.json"), "--current", "x.txt",
         "-o", str(tmp_path / "r.html")]
    )  # fmt: skip
    assert code == 2
    assert "expected a /metrics URL" in capsys.readouterr().err


def test_state_directory_source_equals_the_merged_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mpx.install()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(tmp_path))
    X, _, model, profile = cancer_data()
    mon = modelmon.Monitor("cancer", "mp", reference=profile, registry=False)
    try:
        live = live_rows(X, 300).fillna(X.mean())
        mon.observe(live, model.predict_proba(live))
        mon.fold()
        mpx.flush()
        snap = from_directory(str(tmp_path), profile, "cancer", "mp")
        reg = CollectorRegistry()
        MultiprocessCollector(reg, path=str(tmp_path))
        for m in snap.features:
            psi = reg.get_sample_value(
                "modelmon_feature_drift",
                {"model": "cancer", "version": "mp", "feature": m.name, "method": "psi"},
            )
            assert m.scores["psi"] == psi
        assert snap.predictions == 300
    finally:
        mon.close()


def test_exported_decisions_and_p_values_are_shown_as_exported() -> None:
    """Samples carrying test decisions (``*_drift_detected``, ``*_pvalue``) drive the page."""
    from modelmon.report.html import render
    from modelmon.report.snapshot import Samples, snapshot_from_samples

    ref = modelmon.ReferenceProfile.from_data(
        np.random.default_rng(0).normal(size=(200, 2)), feature_names=["a", "b"]
    )
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for f, psi, detected, p, missing in (("a", 0.05, 1.0, 1e-9, 1.0), ("b", 0.4, 0.0, 0.2, 0.0)):
        for b, share in enumerate(ref.features[f].shares):
            values[("modelmon_feature_reference_ratio", (("bin", str(b)), ("feature", f)))] = share
        values[("modelmon_feature_drift", (("feature", f), ("method", "psi")))] = psi
        values[("modelmon_feature_drift_detected", (("feature", f),))] = detected
        values[("modelmon_feature_drift_pvalue", (("feature", f), ("method", "chi2")))] = p
        values[("modelmon_feature_missing_drift_detected", (("feature", f),))] = missing
    snap = snapshot_from_samples("m", "1", Samples("modelmon", values), ref)
    page = render(snap)
    rows = feature_rows(page)
    # the exported decision wins over the PSI rule of thumb (b has PSI 0.4 but is not drift)
    assert [(r["feature"], r["decision"], r["pvalue"]) for r in rows] == [
        ("a", "drift", repr(1e-9)),
        ("b", "ok", repr(0.2)),
    ]
    assert page.count('data-missing-detected="1"') == 1
    assert "No test decision is exported" not in page


def test_parquet_rows_with_a_prediction_column(tmp_path: Path) -> None:
    """``--current live.parquet --prediction-column``: the file's predictions are the outputs."""
    from modelmon.report.sources import from_source

    rng = np.random.default_rng(4)
    ref = modelmon.ReferenceProfile.from_data(
        rng.normal(size=(1000, 2)), predictions=rng.normal(size=1000), feature_names=["a", "b"]
    )
    import pandas as pd

    live = pd.DataFrame({"a": rng.normal(1.5, 1.0, 400), "b": rng.normal(size=400)})
    live["score"] = rng.normal(size=400)
    live.to_parquet(tmp_path / "live.parquet")
    snap = from_source(str(tmp_path / "live.parquet"), ref, prediction_column="score")
    assert [m.name for m in snap.drifted] == ["a"]
    assert snap.predictions == 400
    (output,) = snap.outputs
    assert output.name == "prediction" and output.current_total == 400


def test_categorical_features_show_their_categories_and_chi2() -> None:
    rng = np.random.default_rng(6)
    colors = rng.choice(["red", "green", "blue"], 2000, p=[0.6, 0.3, 0.1])
    train = [
        {"color": str(c), "x": float(v)} for c, v in zip(colors, rng.normal(size=2000), strict=True)
    ]
    ref = modelmon.ReferenceProfile.from_data(train)
    reg = CollectorRegistry()
    mon = modelmon.Monitor("cat", "1", reference=ref, registry=reg)
    shifted = rng.choice(["red", "green", "blue", "pink"], 500, p=[0.2, 0.3, 0.3, 0.2])
    live = [
        {"color": str(c), "x": float(v)} for c, v in zip(shifted, rng.normal(size=500), strict=True)
    ]
    mon.observe(live, np.zeros(500))
    page = mon.report()
    row = next(r for r in feature_rows(page) if r["feature"] == "color")
    assert row["decision"] == "drift"
    chi2 = reg.get_sample_value(
        "modelmon_feature_drift",
        {"model": "cat", "version": "1", "feature": "color", "method": "chi2"},
    )
    assert chi2 is not None and f">{chi2:.3g}<" in page
    assert all(f"<title>{c}: " in page for c in ("red", "green", "blue", "other"))
    mon.close()
