"""``modelmon demo``: the FastAPI example under uvicorn, realistic traffic, then trouble.

The demo serves ``examples/fastapi_app.py`` on 127.0.0.1, sends rows of the held-out
split at ``rps`` requests per second with ground truth through ``/feedback``, and after
a third of ``duration`` injects data drift into a few features, a burst of requests
the model fails on (errors) and wrong labels (an accuracy drop). Every second it scrapes
``/metrics`` and shows requests/s, p50/p99 latency, the error rate, the most drifted
features (PSI), accuracy, and which bundled alert rules would fire now, approximated
from the scraped values with the thresholds of :class:`modelmon.monitoring.config.MonitoringConfig`.
The drift alerts come from the same decisions the bundled rules use: the exported
``modelmon_feature_drift_detected`` / ``modelmon_prediction_drift_detected`` /
``modelmon_feature_missing_drift_detected`` (a two-sample test at a known false-alarm rate,
see docs/drift.md). The example's reference profile is built from the held-out split the
traffic resamples, so the normal phase raises no drift alert.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIFTED_FEATURES: tuple[str, ...] = ("mean radius", "worst perimeter", "mean concavity")
DRIFT_SHIFT_STD = 3.0
ERROR_SHARE = 0.15
FEEDBACK_SHARE = 0.5
TOP_FEATURES = 5
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 60.0
    port: int = 8000
    rps: float = 50.0
    with_prometheus: bool = False
    tty: bool = True
    seed: int = 0


@dataclass(frozen=True)
class Thresholds:
    """The bundled alert rules' thresholds (from the Grafana/rules config when present)."""

    error_ratio: float = 14.4 * (1 - 0.999)
    latency_seconds: float = 0.5
    slow_ratio: float = 14.4 * (1 - 0.99)
    psi_critical: float = 0.25
    accuracy_target: float = 0.8

    @classmethod
    def bundled(cls) -> Thresholds:
        try:
            from .monitoring.config import MonitoringConfig
        except ImportError:
            return cls()
        c = MonitoringConfig()
        return cls(
            error_ratio=14.4 * (1 - c.availability_slo),
            latency_seconds=c.latency_slo_seconds,
            slow_ratio=14.4 * (1 - c.latency_slo_target),
            psi_critical=c.psi_critical,
            accuracy_target=c.accuracy_target,
        )


# --- the app --------------------------------------------------------------------------


def load_example() -> ModuleType:
    """``examples/fastapi_app.py`` (importable as ``examples.fastapi_app`` from the repo)."""
    with contextlib.suppress(ImportError):
        return importlib.import_module("examples.fastapi_app")
    path = REPO_ROOT / "examples" / "fastapi_app.py"
    if not path.exists():
        raise FileNotFoundError(
            "modelmon demo runs examples/fastapi_app.py: run it from a clone of the repository"
        )
    spec = importlib.util.spec_from_file_location("modelmon_demo_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Server:
    """uvicorn in a background thread, on loopback."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="demo-uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start (is the port free?)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# --- traffic ---------------------------------------------------------------------------


@dataclass
class Traffic:
    """The load generator: held-out rows, then drift, an error burst and wrong labels."""

    base_url: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    std: np.ndarray
    options: DemoOptions
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def trouble_at(self) -> float:
        return self.options.duration / 3

    def phase(self, elapsed: float) -> str:
        return "normal" if elapsed < self.trouble_at else "drift"

    def run(self, workers: int = 4) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._worker, args=(i, workers), daemon=True)
            for i in range(workers)
        ]
        for t in threads:
            t.start()
        return threads

    def _worker(self, index: int, workers: int) -> None:
        import httpx

        rng = np.random.default_rng(self.options.seed + index)
        interval = workers / self.options.rps
        budget = math.ceil(self.options.rps * self.options.duration / workers)
        next_at = time.monotonic() + index * interval / workers
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for _ in range(budget):
                if self.stop.is_set():
                    return
                delay = next_at - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                next_at += interval
                with contextlib.suppress(httpx.HTTPError):
                    self._one(client, rng)

    def _one(self, client: Any, rng: np.random.Generator) -> None:
        elapsed = time.monotonic() - self.started
        i = int(rng.integers(len(self.X)))
        row = self.X[i].copy()
        actual = int(self.y[i])
        trouble = elapsed >= self.trouble_at
        if trouble:
            cols = [self.feature_names.index(f) for f in DRIFTED_FEATURES]
            row[cols] += DRIFT_SHIFT_STD * self.std[cols]
            actual = 1 - actual  # the world changed: the old decision is now wrong
        payload: dict[str, Any] = dict(zip(self.feature_names, row.tolist(), strict=True))
        in_burst = trouble and elapsed < self.trouble_at * 1.5
        if in_burst and rng.random() < ERROR_SHARE:
            # The model fails on a NaN (a 500, a model error); a malformed request would
            # be the client's fault (a 400), which the error budget rightly ignores.
            payload[self.feature_names[0]] = float("nan")
        body = json.dumps(payload)  # NaN as the JSON extension Python and Starlette read
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        with self.lock:
            self.sent += 1
            self.failed += response.status_code >= 400
        if response.status_code == 200 and rng.random() < FEEDBACK_SHARE:
            pid = response.json()["prediction_id"]
            client.post("/feedback", json={"prediction_id": pid, "actual": actual})


# --- reading the metrics ------------------------------------------------------------------


def parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _select(samples: Samples, name: str, **labels: str) -> Iterator[tuple[dict[str, str], float]]:
    for (n, lbl), v in samples.items():
        d = dict(lbl)
        if n == name and all(d.get(k) == val for k, val in labels.items()):
            yield d, v


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for _, v in _select(samples, name, **labels))


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts (by upper bound)."""
    bounds = sorted(buckets)
    count = buckets[bounds[-1]] if bounds else 0.0
    if count <= 0:
        return math.nan
    rank = q * count
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if math.isinf(b):
                return prev_bound
            return prev_bound + (b - prev_bound) * (rank - prev_count) / max(c - prev_count, 1e-12)
        prev_bound, prev_count = b, c
    return prev_bound


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for labels, v in _select(samples, name + "_bucket"):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + v
    return out


@dataclass(frozen=True)
class View:
    """What one refresh shows."""

    elapsed: float
    phase: str
    requests: float
    rps: float
    p50: float
    p99: float
    error_rate: float
    psi: tuple[tuple[str, float], ...]
    prediction_psi: float
    accuracy: float
    alerts: tuple[str, ...]
    flagged: tuple[str, ...] = ()  # features whose drift decision is 1


def make_view(
    prev: Samples | None, cur: Samples, dt: float, elapsed: float, phase: str, th: Thresholds
) -> View:
    name = "modelmon_request_duration_seconds"
    requests = total(cur, "modelmon_requests_total")
    d_req = requests - (total(prev, "modelmon_requests_total") if prev else 0.0)
    errors = total(cur, "modelmon_request_errors_total")
    d_err = errors - (total(prev, "modelmon_request_errors_total") if prev else 0.0)
    cur_b, prev_b = _buckets(cur, name), _buckets(prev, name) if prev else {}
    window = {b: c - prev_b.get(b, 0.0) for b, c in cur_b.items()}
    if not any(window.values()):
        window = cur_b
    psi = sorted(
        ((lb["feature"], v) for lb, v in _select(cur, "modelmon_feature_drift", method="psi")),
        key=lambda kv: -kv[1],
    )
    pred_psi = max(
        (v for _, v in _select(cur, "modelmon_prediction_drift", method="psi")), default=math.nan
    )
    acc = next((v for _, v in _select(cur, "modelmon_performance", metric="accuracy")), math.nan)
    error_rate = d_err / d_req if d_req > 0 else 0.0
    slow = _slow_share(window, th.latency_seconds)
    alerts = []
    if error_rate > th.error_ratio:
        alerts.append("ModelmonErrorBudgetBurn")
    if slow > th.slow_ratio:
        alerts.append("ModelmonLatencyBudgetBurn")
    flagged = _flagged(cur, "modelmon_feature_drift_detected", "feature")
    if flagged:
        alerts.append("ModelmonFeatureDrift")
    if _flagged(cur, "modelmon_prediction_drift_detected", "output"):
        alerts.append("ModelmonPredictionDrift")
    if _flagged(cur, "modelmon_feature_missing_drift_detected", "feature"):
        alerts.append("ModelmonFeatureMissingShift")
    if acc < th.accuracy_target:
        alerts.append("ModelmonAccuracyBelowTarget")
    return View(
        elapsed,
        phase,
        requests,
        d_req / dt if dt > 0 else 0.0,
        histogram_quantile(0.5, window),
        histogram_quantile(0.99, window),
        error_rate,
        tuple(psi[:TOP_FEATURES]),
        pred_psi,
        acc,
        tuple(alerts),
        flagged,
    )


def _flagged(samples: Samples, name: str, key: str) -> tuple[str, ...]:
    """Members whose exported decision is 1 (the same decision the bundled rules make)."""
    return tuple(sorted(lb[key] for lb, v in _select(samples, name) if v == 1.0))


def _slow_share(buckets: Mapping[float, float], slo: float) -> float:
    count = buckets.get(math.inf, 0.0)
    if count <= 0:
        return 0.0
    fast = max((c for b, c in buckets.items() if b <= slo), default=0.0)
    return 1.0 - fast / count


# --- rendering -------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}ms"


def _num(x: float, fmt: str = ".3f") -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def log_line(v: View) -> str:
    drift = ", ".join(f"{f}={p:.2f}" for f, p in v.psi[:3]) or "-"
    return (
        f"[{v.elapsed:5.1f}s] phase={v.phase} requests={v.requests:.0f} rps={v.rps:.1f} "
        f"p50={_ms(v.p50)} p99={_ms(v.p99)} errors={v.error_rate:.1%} "
        f"accuracy={_num(v.accuracy)} psi: {drift} flagged: {', '.join(v.flagged) or '-'} "
        f"alerts: {', '.join(v.alerts) or 'none'}"
    )


def screen(v: View, url: str, duration: float) -> str:
    lines = [
        f"modelmon demo  {v.elapsed:5.1f}s / {duration:.0f}s  phase: {v.phase}   metrics: {url}",
        "",
        f"  requests/s   {v.rps:8.1f}      total requests {v.requests:.0f}",
        f"  latency      p50 {_ms(v.p50):>9}   p99 {_ms(v.p99):>9}",
        f"  error rate   {v.error_rate:8.1%}",
        f"  accuracy     {_num(v.accuracy):>8}      prediction PSI {_num(v.prediction_psi, '.2f')}",
        "",
        "  top drifted features (PSI; * = flagged by the drift test)",
    ]
    lines += [
        f"  {'*' if f in v.flagged else ' '} {f:<28} {p:6.2f}  {'#' * min(int(p * 10), 40)}"
        for f, p in v.psi
    ]
    lines += ["", "  alert rules that would fire now:"]
    lines += [f"    \x1b[31m{a}\x1b[0m" for a in v.alerts] or ["    none"]
    return "\x1b[H\x1b[2J" + "\n".join(lines) + "\n"


def intro(url: str, out: IO[str]) -> None:
    grafana = REPO_ROOT / "grafana"
    print(f"modelmon demo: serving examples/fastapi_app.py; metrics at {url}", file=out)
    print(
        f"  Prometheus: scrape {url} (see {grafana / 'prometheus' / 'prometheus.yml'}, rules in "
        f"{grafana / 'prometheus'}); Grafana: import {grafana / 'dashboards' / 'modelmon.json'}",
        file=out,
    )
    out.flush()


# --- Prometheus and Alertmanager ---------------------------------------------------------


@contextlib.contextmanager
def local_prometheus(target: str, out: IO[str]) -> Iterator[None]:
    """Prometheus (and Alertmanager when installed) on loopback with the bundled rules."""
    prometheus = shutil.which("prometheus")
    rules = REPO_ROOT / "grafana" / "prometheus"
    if prometheus is None or not (rules / "alert_rules.yml").exists():
        print(
            "--with-prometheus: prometheus or grafana/prometheus/ rules missing; skipped", file=out
        )
        yield
        return
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="modelmon-demo-") as tmp:
        am_port = _free_port()
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        am_config = REPO_ROOT / "grafana" / "alertmanager" / "alertmanager.yml"
        if alertmanager and am_config.exists():
            procs.append(_alertmanager(alertmanager, am_config, am_port, tmp))
        prom_port = _free_port()
        config = Path(tmp) / "prometheus.yml"
        config.write_text(_prometheus_config(target, rules, am_port if len(procs) else None))
        procs.append(
            subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        print(f"Prometheus: http://127.0.0.1:{prom_port}/alerts", file=out)
        if len(procs) > 1:
            print(f"Alertmanager: http://127.0.0.1:{am_port}", file=out)
        try:
            yield
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def _alertmanager(binary: str, config: Path, port: int, tmp: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp}/alertmanager",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _prometheus_config(target: str, rules: Path, am_port: int | None) -> str:
    alerting = (
        "alerting:\n  alertmanagers:\n  - static_configs:\n"
        f'    - targets: ["127.0.0.1:{am_port}"]\n'
        if am_port
        else ""
    )
    return (
        'global:\n  scrape_interval: "5s"\n  evaluation_interval: "5s"\n'
        f'rule_files:\n- "{rules / "recording_rules.yml"}"\n- "{rules / "alert_rules.yml"}"\n'
        f"{alerting}"
        "scrape_configs:\n- job_name: modelmon\n  metrics_path: /metrics\n"
        f'  static_configs:\n  - targets: ["{target}"]\n'
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the run ----------------------------------------------------------------------------


def run(options: DemoOptions, out: IO[str] | None = None) -> int:
    """Run the demo; returns the exit code (0, or 130 after Ctrl-C)."""
    out = out or sys.stdout
    import httpx

    example = load_example()
    model = example.MODEL
    url = f"http://127.0.0.1:{options.port}"
    th = Thresholds.bundled()
    std = np.asarray(model.X_test, dtype=float).std(axis=0)
    traffic = Traffic(url, model.X_test, model.y_test, model.feature_names, std, options)
    intro(url + "/metrics", out)
    history: list[View] = []
    interrupted = False
    prometheus = (
        local_prometheus(f"127.0.0.1:{options.port}", out)
        if options.with_prometheus
        else contextlib.nullcontext()
    )
    with Server(example.app, options.port), prometheus:
        traffic.started = time.monotonic()
        threads = traffic.run()
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                history = _watch(client, traffic, options, th, url + "/metrics", out)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            traffic.stop.set()
            for t in threads:
                t.join(10)
    summary(history, traffic, th, out)
    return 130 if interrupted else 0


def _watch(
    client: Any, traffic: Traffic, options: DemoOptions, th: Thresholds, url: str, out: IO[str]
) -> list[View]:
    history: list[View] = []
    prev: Samples | None = None
    prev_t = time.monotonic()
    end = traffic.started + options.duration
    while time.monotonic() < end:
        time.sleep(min(1.0, max(end - time.monotonic(), 0.0)))
        now = time.monotonic()
        cur = parse(client.get("/metrics").text)
        elapsed = now - traffic.started
        view = make_view(prev, cur, now - prev_t, elapsed, traffic.phase(elapsed), th)
        history.append(view)
        out.write(screen(view, url, options.duration) if options.tty else log_line(view) + "\n")
        out.flush()
        prev, prev_t = cur, now
    return history


def summary(history: list[View], traffic: Traffic, th: Thresholds, out: IO[str]) -> None:
    if not history:
        print("summary: no data", file=out)
        return
    last = history[-1]
    before = [v for v in history if v.phase == "normal" and not math.isnan(v.accuracy)]
    acc_before = before[-1].accuracy if before else math.nan
    drifted = list(last.flagged)
    ever_alerts = sorted({a for v in history for a in v.alerts})
    print("", file=out)
    print(
        f"summary: requests={last.requests:.0f} sent={traffic.sent} http_errors={traffic.failed}",
        file=out,
    )
    print(
        f"summary: drift detected on: {', '.join(drifted) or 'none'}",
        file=out,
    )
    print(
        f"summary: accuracy before={_num(acc_before)} after={_num(last.accuracy)} "
        f"(target {th.accuracy_target})",
        file=out,
    )
    print(f"summary: alerts that fired: {', '.join(ever_alerts) or 'none'}", file=out)
    out.flush()


def main_from_args(args: Any) -> int:
    tty = sys.stdout.isatty() and not args.no_tty and os.environ.get("TERM") != "dumb"
    options = DemoOptions(
        duration=float(args.duration),
        port=int(args.port),
        rps=float(args.rps),
        with_prometheus=bool(args.with_prometheus),
        tty=tty,
    )
    if options.duration <= 0 or options.rps <= 0:
        raise SystemExit("modelmon demo: --duration and --rps must be positive")
    return run(options)
