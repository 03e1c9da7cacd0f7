"""``modelmon demo``: the packaged FastAPI app under uvicorn, realistic traffic, then trouble.

The demo serves :mod:`modelmon._cli.demo_app.fastapi_app` (shipped in the package, so it
runs from an installed wheel) on 127.0.0.1, sends rows of the held-out split at ``rps``
requests per second with ground truth through ``/feedback``, and after a third of
``duration`` injects data drift into a few features, a burst of requests the model fails
on (errors) and wrong labels (an accuracy drop). Every second it scrapes ``/metrics`` and
shows what :mod:`.view` reads from it. The app's reference profile is built from the
held-out split the traffic resamples, so the normal phase raises no drift alert.

A busy port or a missing optional dependency is a :class:`DemoError`: one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import math
import os
import socket
import sys
import threading
import time
from types import ModuleType
from typing import IO, Any

import numpy as np

from .stack import local_prometheus
from .traffic import DemoOptions, Traffic
from .view import Samples, Thresholds, View, log_line, make_view, number, parse, screen

APP_MODULE = "modelmon._cli.demo_app.fastapi_app"
# What the demo imports beyond modelmon's own dependencies: the 'examples' extra.
EXAMPLES_MODULES = ("fastapi", "uvicorn", "httpx", "sklearn")


class DemoError(Exception):
    """Why the demo cannot run, said in one line."""


def missing_module() -> str | None:
    """The first module of the 'examples' extra that is not installed, if any."""
    return next((m for m in EXAMPLES_MODULES if importlib.util.find_spec(m) is None), None)


def load_app() -> ModuleType:
    """The packaged FastAPI app (trains its model on import, about 50 ms)."""
    try:
        return importlib.import_module(APP_MODULE)
    except ModuleNotFoundError as exc:
        raise DemoError(_extra_message(exc.name or str(exc))) from exc


def _extra_message(module: str) -> str:
    install = "pip install 'modelmon[examples]'"
    return f"needs the 'examples' extra (missing module {module!r}): {install}"


def check_port(port: int) -> None:
    """Raise :class:`DemoError` when ``port`` on 127.0.0.1 is taken (as uvicorn binds it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DemoError(
                    f"port {port} on 127.0.0.1 is busy; pass --port to use another"
                ) from exc
            raise DemoError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc


class Server:
    """uvicorn in a background thread, on loopback."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        # "critical": the injected errors are the demo's point and show on its screen;
        # uvicorn's traceback per failed request (and its bind error, which the demo
        # reports in one line) would only scroll the live view away.
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
        self.port = port
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="demo-uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise DemoError(f"uvicorn did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def intro(url: str, out: IO[str]) -> None:
    print(f"modelmon demo: serving {APP_MODULE}; metrics at {url}", file=out)
    print(
        f"  Prometheus: scrape {url}; `modelmon grafana export DIR` writes the Grafana "
        "dashboard, the rules and a scrape config for it",
        file=out,
    )
    out.flush()


def run(options: DemoOptions, out: IO[str] | None = None) -> int:
    """Run the demo; returns the exit code (0, or 130 after Ctrl-C)."""
    out = out or sys.stdout
    missing = missing_module()
    if missing is not None:
        raise DemoError(_extra_message(missing))
    check_port(options.port)
    import httpx

    example = load_app()
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
    """The four ``summary:`` lines that end a run."""
    if not history:
        print("summary: no data", file=out)
        return
    last = history[-1]
    before = [v for v in history if v.phase == "normal" and not math.isnan(v.accuracy)]
    acc_before = before[-1].accuracy if before else math.nan
    ever_alerts = sorted({a for v in history for a in v.alerts})
    print("", file=out)
    print(
        f"summary: requests={last.requests:.0f} sent={traffic.sent} http_errors={traffic.failed}",
        file=out,
    )
    print(f"summary: drift detected on: {', '.join(last.flagged) or 'none'}", file=out)
    print(
        f"summary: accuracy before={number(acc_before)} after={number(last.accuracy)} "
        f"(target {th.accuracy_target})",
        file=out,
    )
    print(f"summary: alerts that fired: {', '.join(ever_alerts) or 'none'}", file=out)
    out.flush()


def main_from_args(args: Any) -> int:
    """``modelmon demo`` with parsed arguments; a :class:`DemoError` is one stderr line."""
    tty = sys.stdout.isatty() and not args.no_tty and os.environ.get("TERM") != "dumb"
    options = DemoOptions(
        duration=float(args.duration),
        port=int(args.port),
        rps=float(args.rps),
        with_prometheus=bool(args.with_prometheus),
        tty=tty,
    )
    try:
        if options.duration <= 0 or options.rps <= 0:
            raise DemoError("--duration and --rps must be positive")
        return run(options)
    except DemoError as exc:
        print(f"modelmon demo: {exc}", file=sys.stderr)
        return 1
