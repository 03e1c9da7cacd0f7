"""Real Prometheus, Alertmanager, webhook receivers and serving processes for integration tests.

Every server binds 127.0.0.1 on a free port, keeps its data in the test's temp directory and
is stopped when its context manager exits, also when the test fails. Waiting is bounded
polling (:func:`wait_until`), never a bare sleep whose length a slow machine could outgrow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from modelmon.monitoring.export import to_yaml
from tests.conftest import free_port, require_binary

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 10.0


class WaitTimeout(AssertionError):
    """A condition did not hold within its time limit."""


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns a truthy value (returned), at most ``timeout`` s.

    Exceptions from ``condition`` count as "not yet" (a server still starting refuses
    connections); the last one is reported with ``details()`` when time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the server may not listen yet
            last_error = exc
        if time.monotonic() >= deadline:
            extra = details() if details is not None else ""
            raise WaitTimeout(
                f"timed out after {timeout}s waiting for {what}: {last_error!r}\n{extra}"
            )
        time.sleep(interval)


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    """GET ``url`` (or POST ``data`` as JSON) and decode the JSON answer."""
    body = None if data is None else json.dumps(data).encode()
    headers = {"content-type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def http_status(url: str, data: Any = None, timeout: float = 5.0) -> int:
    """The HTTP status of a GET (or JSON POST), without raising on 4xx/5xx."""
    try:
        http_json(url, data, timeout)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def binary(*names: str) -> str:
    """The first of ``names`` on PATH; skip (or fail when required) naming the first."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return require_binary(names[0])


# --- processes -------------------------------------------------------------------------


@dataclass
class Process:
    """A child process whose stdout and stderr go to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def logs(self, tail: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (pid {self.popen.pid}, rc {self.popen.poll()}) ---\n{text[-tail:]}"

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited early\n{self.logs()}")


def stop(popen: subprocess.Popen[Any]) -> None:
    """Terminate, then kill after a grace period; always reaps the child."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> Iterator[Process]:
    """Start ``argv`` (cwd = the repository) and stop it on exit, whatever happened."""
    log = log_dir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv), cwd=ROOT, env=full_env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Process(name, popen, log)
    finally:
        stop(popen)


# --- Prometheus ------------------------------------------------------------------------


@dataclass
class Prometheus:
    """A running Prometheus server and its HTTP API."""

    url: str
    process: Process

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        answer = http_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {answer}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def values(self, expr: str, key: str, at: float | None = None) -> dict[str, float]:
        """``{labels[key]: value}`` of an instant query."""
        return {r["metric"].get(key, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending and firing) alerts."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def up_targets(self) -> dict[str, str]:
        """Health of each active target by scrape URL."""
        active = self.api("targets", state="active")["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in active}


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` with modelmon's own YAML writer (so the real tools parse its output)."""
    path.write_text(to_yaml(doc), encoding="utf-8")
    return path


@contextlib.contextmanager
def prometheus(
    workdir: Path,
    config: dict[str, Any],
    rules: dict[str, dict[str, Any]],
    startup_timeout: float = 30.0,
) -> Iterator[Prometheus]:
    """Run ``prometheus`` with ``config`` and rule files ``{file name: rules doc}``.

    ``config["rule_files"]`` is replaced by the files written here; storage goes to
    ``workdir/prometheus-data``.
    """
    exe = binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    rule_paths = [str(write_yaml(workdir / name, doc)) for name, doc in rules.items()]
    config_path = write_yaml(workdir / "prometheus.yml", {**config, "rule_files": rule_paths})
    flags = [
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        "--storage.tsdb.retention.time=1h",
    ]
    argv = [exe, f"--config.file={config_path}", *flags]
    with _serve("Prometheus", argv, workdir, startup_timeout) as (url, process):
        yield Prometheus(url, process)


@contextlib.contextmanager
def _serve(
    name: str, argv: list[str], workdir: Path, startup_timeout: float
) -> Iterator[tuple[str, Process]]:
    """Run a Prometheus-family server (``argv`` plus a free loopback port) until it is ready."""
    port = free_port()
    argv = [*argv, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    url = f"http://127.0.0.1:{port}"
    with spawn(name.lower(), argv, workdir) as process:
        wait_until(
            lambda: _ready(url, process),
            startup_timeout,
            f"{name} to be ready",
            details=process.logs,
        )
        yield url, process


def _ready(url: str, process: Process) -> bool:
    process.check_alive()
    with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
        return bool(response.status == 200)


# --- Alertmanager and its webhook ------------------------------------------------------


@dataclass
class Alertmanager:
    """A running Alertmanager."""

    url: str
    process: Process

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (API v2)."""
        alerts: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return alerts


@contextlib.contextmanager
def alertmanager(
    workdir: Path, config: dict[str, Any], startup_timeout: float = 30.0
) -> Iterator[Alertmanager]:
    """Run Alertmanager with ``config``, clustering off, storage in ``workdir``."""
    exe = binary("prometheus-alertmanager", "alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = write_yaml(workdir / "alertmanager.yml", config)
    flags = [f"--storage.path={workdir / 'alertmanager-data'}", "--cluster.listen-address="]
    argv = [exe, f"--config.file={config_path}", *flags]
    with _serve("Alertmanager", argv, workdir, startup_timeout) as (url, process):
        yield Alertmanager(url, process)


@dataclass
class Webhook:
    """Collects the JSON bodies POSTed to it (Alertmanager webhook notifications)."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification, in arrival order."""
        return [alert for payload in self.payloads() for alert in payload.get("alerts", [])]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    """A threaded HTTP server on 127.0.0.1 recording POSTed JSON."""
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            payload = json.loads(self.rfile.read(size) or b"{}")
            with hook.lock:
                hook.received.append(payload)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT)
