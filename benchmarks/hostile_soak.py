"""Soak: a real uvicorn app under honest traffic, then under honest plus hostile traffic.

Run: ``.venv/bin/python benchmarks/hostile_soak.py --seconds 20 --rounds 1``

Each run starts a fresh server (``uvicorn benchmarks.hostile_soak:app``, one worker,
loopback port) serving a scikit-learn classifier (breast cancer data set, bundled) with
one categorical feature, the feedback route and ``/metrics``. For ``--seconds`` it sends

* honest traffic (both runs): single-row predictions from 4 client threads, each label
  posted back with its id; one scraper every 0.5 s timing each scrape;
* hostile traffic (second run only, from threads of a second client process): a
  200-row request with one 250 kB category value and a 300-label POST of junk labels
  (unknown ids, unknown classes) twice a second each, a huge batch every 2 s (the most
  rows the app accepts: 2,283 rows, a 1 MiB body), and a flood of scrapes from 4 threads.

Both apps (with and without modelmon) are built as a service on a public port is: a
request body over 1 MiB (``MAX_BODY_BYTES``, nginx's default ``client_max_body_size``)
is answered 413 unread (:class:`BodyLimit`). Without the limit, one worker parsing a
20,000-row JSON body on its event loop cost the bare app alone 4.5-41x its p99
(``--no-body-limit`` runs that set-up: no limit, 20,000-row batches).

``--bare`` also runs the same app without modelmon under both traffics (feedback parsed
and dropped, an empty ``/metrics``): what the hostile traffic costs the app itself.
``--metrics-port`` serves ``/metrics`` on a separate loopback port
(``instrument(metrics_port=...)``, its own server thread) instead of the app's port.

It prints, per run: the server's peak RSS (VmHWM), the p99 latency of honest predictions
(client side), the longest timed scrape, and the accuracy /metrics reports against the
accuracy of the honest (prediction, label) pairs computed by scikit-learn; then the
ratios hostile / honest. Goals (issue 13): RSS within 1.5x, p99 within 2x, longest
scrape under 1 s, accuracy unchanged.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY_BYTES = 1 << 20  # the apps' documented request body limit (413 beyond)
# ``--no-body-limit``: no limit, and the huge batch is 20,000 rows (the set-up before it).
UNLIMITED = os.environ.get("MODELMON_SOAK_NO_BODY_LIMIT") == "1"


def build_app() -> Any:
    import numpy as np
    from fastapi import FastAPI, HTTPException
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelmon
    from modelmon.integrations.fastapi import feedback_router, instrument
    from modelmon.profile import ReferenceProfile

    data = load_breast_cancer()
    X, y = data.data, data.target
    names = [f"f{i}" for i in range(X.shape[1])]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    frame = [dict(zip(names, row.tolist(), strict=True)) for row in X]
    for i, row in enumerate(frame):
        row["site"] = ("north", "south", "east")[i % 3]
    reference = ReferenceProfile.from_data(
        [[r[n] for n in [*names, "site"]] for r in frame],
        feature_names=[*names, "site"],
        categorical=["site"],
    )

    def predict(rows: list[dict[str, Any]]) -> np.ndarray:
        matrix = np.array([[float(r.get(n, 0.0)) for n in names] for r in rows])
        return model.predict(matrix)

    metrics_port = int(os.environ.get("MODELMON_SOAK_METRICS_PORT") or 0) or None
    if os.environ.get("MODELMON_SOAK_BARE") == "1":  # the same app without modelmon
        app = _bare_app(FastAPI(), metrics_port)
    else:
        mon = modelmon.Monitor("soak", "1", reference=reference, task="classification")
        predict = mon(predict)
        app = instrument(FastAPI(), metrics_port=metrics_port)
        app.include_router(feedback_router(mon))
    if not UNLIMITED:
        app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # both apps: outermost

    @app.post("/predict")
    def predict_route(rows: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            out = predict(rows)
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, "bad rows") from exc
        return {"y": out.tolist(), "id": modelmon.last_prediction_id()}

    return app


def _bare_app(app: Any, metrics_port: int | None) -> Any:
    """The peer: same routes, no monitoring (feedback parsed and dropped, empty /metrics)."""
    from fastapi import Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client import start_http_server as serve

    empty = CollectorRegistry()
    if metrics_port is not None:
        serve(metrics_port, "127.0.0.1", empty)

    @app.post("/feedback")
    def feedback(body: dict[str, Any] | list[dict[str, Any]]) -> dict[str, str]:
        return {"status": "dropped"}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(empty), media_type=CONTENT_TYPE_LATEST)

    return app


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, unread.

    What a service on a public port does (nginx's ``client_max_body_size`` is 1 MiB by
    default): with one uvicorn worker, a body is parsed and validated on the event loop
    holding the GIL, so its size bounds how long every other request waits.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and int(length) > self.max_bytes:
            return await _too_large(send)
        seen = 0

        async def limited() -> Any:  # a chunked body: count what arrives
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Any) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b"request body too large"})


app = build_app() if os.environ.get("MODELMON_SOAK_APP") == "1" else None


# --- the client side ----------------------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rows = []
    for i, row in enumerate(data.data):
        r: dict[str, Any] = {f"f{j}": float(v) for j, v in enumerate(row)}
        r["site"] = ("north", "south", "east")[i % 3]
        rows.append(r)
    return rows


def _largest_batch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most rows (cycling through ``rows``) whose JSON body the apps accept."""
    import json

    def size(n: int) -> int:
        return len(json.dumps([rows[i % len(rows)] for i in range(n)]))

    lo, hi = 1, 20_000  # the largest n in [lo, hi] with size(n) <= MAX_BODY_BYTES
    if UNLIMITED:
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if size(mid) <= MAX_BODY_BYTES else (lo, mid - 1)
    n = lo
    return [rows[i % len(rows)] for i in range(n)]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _accuracy_from_metrics(text: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    right = total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "modelmon_outcomes_total" and s.labels.get("model") == "soak":
                total += s.value
                if s.labels.get("actual") == s.labels.get("predicted"):
                    right += s.value
    return right / total if total else None


def _hostile_clients(base: str, metrics: str, seconds: float, ready: Any) -> None:
    """The hostile traffic, from threads of its own process, for ``seconds``.

    Bodies are encoded once, before ``ready`` is set (the attacker's CPU is not the
    server's).
    """
    import json

    import requests

    rows = _rows()
    headers = {"Content-Type": "application/json"}
    long_rows = [dict(rows[0]) for _ in range(200)]
    long_rows[0]["site"] = "z" * 250_000
    long_body = json.dumps(long_rows).encode()
    huge_body = json.dumps(_largest_batch(rows)).encode()
    rng = random.Random(5)
    junk_bodies = [
        json.dumps([{"prediction_id": f"{rng.getrandbits(64):016x}",
                     "actual": f"junk-{rng.getrandbits(32)}"} for _ in range(300)]).encode()
        for _ in range(64)
    ]  # fmt: skip
    stop = threading.Event()

    statuses: dict[str, set[int]] = {}

    def every(period: float, url: str, bodies: list[bytes], name: str) -> None:
        s = requests.Session()
        i = 0
        while not stop.wait(period):
            r = s.post(url, data=bodies[i % len(bodies)], headers=headers, timeout=120)
            statuses.setdefault(name, set()).add(r.status_code)
            i += 1

    def scrape_flood() -> None:
        s = requests.Session()
        while not stop.is_set():
            s.get(metrics, timeout=60)

    attacks = [
        threading.Thread(target=every, args=(0.5, f"{base}/predict", [long_body], "long")),
        threading.Thread(target=every, args=(0.5, f"{base}/feedback", junk_bodies, "junk")),
        threading.Thread(target=every, args=(2.0, f"{base}/predict", [huge_body], "huge")),
        *[threading.Thread(target=scrape_flood) for _ in range(4)],
    ]
    for t in attacks:
        t.start()
    ready.set()
    time.sleep(seconds)
    stop.set()
    for t in attacks:
        t.join(180)
    print(f"hostile client: HTTP statuses {statuses} (huge: {len(huge_body)} bytes)")


def run(
    seconds: float, hostile: bool, port: int, bare: bool = False, metrics_port: int | None = None
) -> dict[str, float]:
    import requests
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import accuracy_score

    env = {**os.environ, "MODELMON_SOAK_APP": "1", "PYTHONPATH": str(ROOT)}
    env["MODELMON_SOAK_BARE"] = "1" if bare else "0"
    env["MODELMON_SOAK_METRICS_PORT"] = str(metrics_port or "")
    metrics = f"http://127.0.0.1:{metrics_port or port}/metrics"
    env.pop("MODELMON_MULTIPROC_DIR", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.hostile_soak:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/metrics", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        rows = _rows()
        target = load_breast_cancer().target
        stop = threading.Event()
        latencies: list[float] = []
        scrapes: list[float] = []
        pairs: list[tuple[int, int]] = []
        lock = threading.Lock()

        def honest(k: int) -> None:
            s = requests.Session()
            rng = random.Random(k)
            while not stop.is_set():
                i = rng.randrange(len(rows))
                t0 = time.perf_counter()
                r = s.post(f"{base}/predict", json=[rows[i]], timeout=60)
                dt = time.perf_counter() - t0
                body = r.json()
                s.post(f"{base}/feedback", json={"prediction_id": body["id"] or "none",
                       "actual": int(target[i])}, timeout=60)  # fmt: skip
                with lock:
                    latencies.append(dt)
                    pairs.append((int(body["y"][0]), int(target[i])))

        def scraper() -> None:
            s = requests.Session()
            while not stop.wait(0.5):
                t0 = time.perf_counter()
                s.get(metrics, timeout=60)
                scrapes.append(time.perf_counter() - t0)

        workers = [threading.Thread(target=honest, args=(k,)) for k in range(4)]
        workers.append(threading.Thread(target=scraper))
        attacker = None
        if hostile:  # its own process: the honest client's timings do not share its GIL
            spawn = multiprocessing.get_context("spawn")
            ready = spawn.Event()
            attacker = spawn.Process(
                target=_hostile_clients, args=(base, metrics, seconds, ready), daemon=True
            )
            attacker.start()
            if not ready.wait(120):
                raise RuntimeError("hostile clients did not start")
        for w in workers:
            w.start()
        time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join(180)
        if attacker is not None:
            attacker.join(180)
        text = requests.get(metrics, timeout=60).text
        reported = _accuracy_from_metrics(text)
        truth = accuracy_score([a for _, a in pairs], [p for p, _ in pairs]) if pairs else 0.0
        return {
            "peak_rss_mb": _peak_rss_mb(server.pid),
            "p99_ms": 1000 * statistics.quantiles(latencies, n=100)[98],
            "longest_scrape_s": max(scrapes) if scrapes else float("nan"),
            "accuracy_metrics": float("nan") if reported is None else reported,
            "accuracy_sklearn": float(truth),
            "honest_calls": float(len(latencies)),
        }
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also run the same app without modelmon under both traffics (the app's own share)",
    )
    parser.add_argument(
        "--metrics-port",
        action="store_true",
        help="serve /metrics on a separate loopback port (instrument(metrics_port=...))",
    )
    parser.add_argument(
        "--no-body-limit",
        action="store_true",
        help="no request body limit, 20,000-row huge batches (the set-up before the limit)",
    )
    args = parser.parse_args()
    if args.no_body_limit:  # read by the servers and the hostile clients (spawned)
        os.environ["MODELMON_SOAK_NO_BODY_LIMIT"] = "1"
    from tests.conftest import free_port

    sides = ["honest", "hostile"] + (["bare-honest", "bare-hostile"] if args.bare else [])
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for r in range(args.rounds):  # sides alternate, order rotating per round
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        for side in order:
            hostile, bare = side.endswith("hostile"), side.startswith("bare")
            mport = free_port() if args.metrics_port else None
            results[side].append(run(args.seconds, hostile, free_port(), bare, mport))
    for side, runs in results.items():
        for i, res in enumerate(runs):
            print(f"{side:8s} round {i}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items()))

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    def spread(values: list[float], unit: str = "x") -> str:
        """Median [min-max] of per-round values."""
        return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"

    def ratios(top: str, bottom: str, key: str) -> list[float]:  # paired by round
        return [t[key] / b[key] for t, b in zip(results[top], results[bottom], strict=True)]

    pairs = [("with modelmon", "hostile", "honest")]
    if args.bare:  # what the hostile traffic costs the app itself, without modelmon
        pairs.append(("without modelmon", "bare-hostile", "bare-honest"))
    for label, hostile_side, honest_side in pairs:
        print(
            f"{label}: hostile/honest peak RSS "
            f"{spread(ratios(hostile_side, honest_side, 'peak_rss_mb'))} (goal <= 1.5), p99 "
            f"{spread(ratios(hostile_side, honest_side, 'p99_ms'))} (goal <= 2), longest "
            f"scrape {spread([r['longest_scrape_s'] for r in results[hostile_side]], ' s')} "
            "(goal < 1 s)"
        )
    for side in ("honest", "hostile"):
        reported, truth = med(side, "accuracy_metrics"), med(side, "accuracy_sklearn")
        print(f"accuracy {side} run: /metrics {reported:.4f} vs scikit-learn {truth:.4f}")
    if args.bare:
        for key in ("peak_rss_mb", "p99_ms"):
            share = spread(ratios("hostile", "bare-hostile", key))
            print(f"hostile traffic, {key} with / without modelmon: {share}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
