"""``modelmon demo --with-prometheus``: Prometheus and Alertmanager on loopback.

The rules and the Alertmanager routing are rendered from the default
:class:`~modelmon.monitoring.config.MonitoringConfig` into a temporary directory (the
files ``modelmon grafana export`` writes), so the demo needs no checkout.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from modelmon.monitoring.config import MonitoringConfig
from modelmon.monitoring.export import export, render_prometheus_config, to_yaml


@contextlib.contextmanager
def local_prometheus(target: str, out: IO[str]) -> Iterator[None]:
    """Prometheus (and Alertmanager when installed) on loopback with the bundled rules."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("--with-prometheus: no prometheus binary on PATH; skipped", file=out)
        yield
        return
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="modelmon-demo-") as tmp:
        root = Path(tmp)
        export(MonitoringConfig(), root, include_tests=False)
        am_port = free_port()
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if alertmanager:
            procs.append(_alertmanager(alertmanager, root, am_port))
        prom_port = free_port()
        config = root / "prometheus" / "demo.yml"
        config.write_text(_prometheus_config(target, root / "prometheus", am_port), "utf-8")
        procs.append(
            subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'data'}",
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
            _stop(procs)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _alertmanager(binary: str, root: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={root / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _prometheus_config(target: str, rules: Path, am_port: int) -> str:
    config = render_prometheus_config(
        MonitoringConfig(),
        targets=(target,),
        alertmanager=f"127.0.0.1:{am_port}",
        scrape_interval="5s",
        evaluation_interval="5s",
        rule_files=(str(rules / "recording_rules.yml"), str(rules / "alert_rules.yml")),
    )
    return to_yaml(config)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the servers the demo starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
