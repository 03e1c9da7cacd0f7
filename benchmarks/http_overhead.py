"""HTTP cost of modelmon against its peers: in-process, and under real servers with load.

    benchmarks/.venv-peers/bin/python benchmarks/http_overhead.py [--rounds 5] [--quick]

The user-level work is the same for every variant (see ``benchmarks/_apps.py``): a
``POST /predict/churn`` with a JSON row of 20 features, validated and passed to a
predict function, and a ``/metrics`` scrape every 2,000 requests. modelmon's variant is
its framework integration plus ``@monitored`` on the predict function; the peers'
are their middleware plus prometheus-client ``Histogram.time()`` + ``Counter`` (or
the OTel SDK's histogram + counter) on the same function.

1. In-process: every app driven directly (a prepared ASGI scope or WSGI environ, no
   network), all variants in one process, interleaved with rotating order; process
   CPU time per request, minus the bare app's, gives the added cost.
2. Under a server: FastAPI under uvicorn (1 worker) and Flask under gunicorn (gthread,
   4 threads, keep-alive), one server per variant, all running at once; per round
   and variant a separate load-generator process (``benchmarks/_load.py``, 4 keep-alive
   connections to 127.0.0.1) sends the requests. Measured: the server process tree's
   CPU time (from /proc) per request, minus the bare server's.

Variants whose packages are missing are skipped (the peers live in benchmarks/.venv-peers).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _apps
import _load
from _harness import Figure, Report, Stat, added, header, interleave, parser, ratios, version

HERE = Path(__file__).resolve().parent
SCRAPE_EVERY = 2000
PEERS = {
    "instrumentator": "prometheus-fastapi-instrumentator",
    "otel": "opentelemetry-instrumentation-fastapi",
    "flask-exporter": "prometheus-flask-exporter",
}


# --- in-process drivers ---------------------------------------------------------------


def asgi_driver(app: Any, bodies: list[bytes]) -> Callable[[int], int]:
    """Calls ``app`` n times in one event loop; returns the number of 200 answers."""
    from prometheus_client import generate_latest

    registry = app.state.registry
    loop = asyncio.new_event_loop()

    async def drive(n: int) -> int:
        ok = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal ok
            if message["type"] == "http.response.start" and message["status"] == 200:
                ok += 1

        for i in range(n):
            body = bodies[i % len(bodies)]

            async def receive(body: bytes = body) -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/predict/churn",
                "raw_path": b"/predict/churn",
                "query_string": b"",
                "root_path": "",
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
                "headers": [
                    (b"host", b"127.0.0.1:8000"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
            await app(scope, receive, send)
            if (i + 1) % SCRAPE_EVERY == 0:
                generate_latest(registry)
        return ok

    return lambda n: loop.run_until_complete(drive(n))


def wsgi_driver(app: Any, bodies: list[bytes]) -> Callable[[int], int]:
    """Calls the WSGI ``app`` n times; returns the number of 200 answers."""
    from prometheus_client import generate_latest

    registry = app.config["BENCH_REGISTRY"]

    def drive(n: int) -> int:
        ok = 0
        for i in range(n):
            body = bodies[i % len(bodies)]
            environ = {
                "REQUEST_METHOD": "POST",
                "SCRIPT_NAME": "",
                "PATH_INFO": "/predict/churn",
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_HOST": "127.0.0.1:8000",
                "wsgi.input": io.BytesIO(body),
                "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
                "wsgi.version": (1, 0),
            }
            status: list[str] = []
            out = app(environ, lambda s, h, e=None, status=status: status.append(s))
            for _ in out:
                pass
            close = getattr(out, "close", None)
            if close is not None:
                close()
            ok += status[0].startswith("200")
            if (i + 1) % SCRAPE_EVERY == 0:
                generate_latest(registry)
        return ok

    return drive


def in_process(framework: str, requests: int, rounds: int, report: Report) -> None:
    bodies = _load.bodies(256, 0)
    variants = _apps.FASTAPI_VARIANTS if framework == "fastapi" else _apps.FLASK_VARIANTS
    sides: dict[str, Callable[[], float]] = {}
    for variant in variants:
        try:
            if framework == "fastapi":
                drive = asgi_driver(_apps.fastapi_app(variant), bodies)
            else:
                drive = wsgi_driver(_apps.flask_app(variant), bodies)
        except ImportError as exc:
            report.note(f"{framework} in-process: {variant} skipped ({exc})")
            continue
        drive(200)  # warm caches and lazy imports

        def run(drive: Callable[[int], int] = drive, variant: str = variant) -> float:
            t0 = time.process_time()
            ok = drive(requests)
            cpu = time.process_time() - t0
            if ok != requests:
                raise RuntimeError(f"{variant}: only {ok} of {requests} requests answered 200")
            return cpu / requests

        sides[variant] = run
    print(f"- {framework}, in-process ({requests} requests/variant/round)", flush=True)
    _figures(f"{framework}.inproc", f"{framework} in-process", interleave(sides, rounds), report)


def _figures(key: str, label: str, per: dict[str, list[float]], report: Report) -> None:
    bare = per["bare"]
    mm = added(per["modelmon"], bare)
    for variant, values in per.items():
        report.add(
            Figure(
                f"{key}.{variant}_us",
                f"{label}: {variant} CPU per request",
                "us",
                Stat.of(values).scaled(1e6),
                peer=PEERS.get(variant),
            )
        )
    for variant in per:
        if variant in ("bare", "modelmon"):
            continue
        report.add(
            Figure(
                f"{key}.ratio_{variant}",
                f"{label}: modelmon / {variant} added cost",
                "x",
                ratios(mm, added(per[variant], bare)),
                peer=PEERS.get(variant),
            )
        )


# --- real servers ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(framework: str, port: int) -> list[str]:
    if framework == "fastapi":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "_apps:fastapi_app",
            "--factory",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "--threads",
        "4",
        "-w",
        "1",
        "--keep-alive",
        "5",
        "--chdir",
        str(HERE),
        "--log-level",
        "warning",
        "-b",
        f"127.0.0.1:{port}",
        "_apps:flask_app()",
    ]


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0.0) for p in tree)


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request(
                "POST",
                "/predict/churn",
                body=json.dumps(dict.fromkeys(_apps.FEATURES, 0.0)),
                headers={"Content-Type": "application/json"},
            )
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


@contextlib.contextmanager
def servers(framework: str, variants: tuple[str, ...]) -> Iterator[dict[str, tuple[int, int]]]:
    """Start one server per variant; yields variant -> (pid, port); stops them all."""
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for variant in variants:
            port = free_port()
            env = {**os.environ, "BENCH_VARIANT": variant}
            proc = subprocess.Popen(server_command(framework, port), env=env, cwd=HERE)
            procs[variant] = (proc, port)
        for proc, port in procs.values():
            wait_ready(port, proc)
        yield {v: (proc.pid, port) for v, (proc, port) in procs.items()}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def available(framework: str) -> tuple[str, ...]:
    variants = _apps.FASTAPI_VARIANTS if framework == "fastapi" else _apps.FLASK_VARIANTS
    out = []
    for variant in variants:
        try:
            (_apps.fastapi_app if framework == "fastapi" else _apps.flask_app)(variant)
        except ImportError:
            continue
        out.append(variant)
    return tuple(out)


def under_server(framework: str, requests: int, rounds: int, report: Report) -> None:
    variants = available(framework)
    skipped = set(_apps.FASTAPI_VARIANTS if framework == "fastapi" else _apps.FLASK_VARIANTS)
    for variant in skipped - set(variants):
        report.note(f"{framework} under a server: {variant} skipped (package missing)")
    server = "uvicorn" if framework == "fastapi" else "gunicorn gthread"
    print(f"- {framework} under {server} ({requests} requests/variant/round)", flush=True)
    walls: dict[str, list[float]] = {}
    with servers(framework, variants) as running:

        def side(variant: str) -> Callable[[], float]:
            pid, port = running[variant]

            def run() -> float:
                cmd = [
                    sys.executable,
                    str(HERE / "_load.py"),
                    str(port),
                    str(requests),
                    "--scrape-every",
                    str(SCRAPE_EVERY),
                ]
                before = tree_cpu(pid)
                w0 = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                walls.setdefault(variant, []).append(time.perf_counter() - w0)
                after = tree_cpu(pid)
                if done.returncode != 0:
                    raise RuntimeError(
                        f"{variant}: load generator failed: {done.stdout}{done.stderr}"
                    )
                return (after - before) / requests

            return run

        per = interleave({v: side(v) for v in variants}, rounds)
    _figures(f"{framework}.server", f"{framework} under {server}", per, report)
    for variant, values in walls.items():
        rps = [requests / w for w in values[1:]]
        report.add(
            Figure(
                f"{framework}.server.{variant}_rps",
                f"{framework} under {server}: {variant} requests/s (4 connections)",
                "req/s",
                Stat.of(rps),
                peer=PEERS.get(variant),
            )
        )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--requests", type=int, default=5_000, help="in-process, per variant")
    p.add_argument("--server-requests", type=int, default=4_000, help="per variant and round")
    p.add_argument("--no-server", action="store_true", help="skip the real-server part")
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    requests = 400 if args.quick else args.requests
    server_requests = 200 if args.quick else args.server_requests
    report = Report(
        "http_overhead.py",
        "HTTP cost: integration + decorated predict, like for like",
        "benchmarks/.venv-peers/bin/python benchmarks/http_overhead.py",
        rounds,
    )
    report.peers = {
        d: version(d) or "missing"
        for d in ("prometheus-client", "fastapi", "flask", "uvicorn", "gunicorn", *PEERS.values())
    }
    header(report)
    in_process("fastapi", requests, rounds, report)
    in_process("flask", requests, rounds, report)
    if not args.no_server:
        under_server("fastapi", server_requests, rounds, report)
        under_server("flask", server_requests, rounds, report)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
