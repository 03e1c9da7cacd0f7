"""prometheus-client's multiprocess recipe plus modelmon's one line, and the warning without it.

The recipe (prometheus-client's documentation): ``PROMETHEUS_MULTIPROC_DIR`` set, and
``/metrics`` rendering a fresh ``CollectorRegistry`` holding ``MultiProcessCollector``.
The real multi-worker run is ``tests/integration/test_prometheus_multiproc_recipe.py``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.values import MultiProcessValue

import modelmon
import modelmon.multiprocess
from modelmon.errors import ConfigurationError
from modelmon.exporters import multiprocess as mpx

FORK = mp.get_context("fork")
LABELS = {"model": "recipe", "version": "1"}


@pytest.fixture
def promdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("MODELMON_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    yield tmp_path


def _prometheus_client_counter(value: float) -> None:
    """What an app's own prometheus-client Counter does in multiprocess mode: a .db file."""
    MultiProcessValue()("counter", "app_requests", "app_requests_total", [], [], "help").inc(value)


def _scrape_recipe(with_modelmon: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if with_modelmon:
        modelmon.multiprocess.MultiprocessCollector(registry)  # the documented line
    return registry


def _worker(n: int) -> None:
    mon = modelmon.Monitor("recipe", "1")  # the default: the global registry
    for i in range(n):
        mon.observe({"x": float(i)}, 0.5)
    _prometheus_client_counter(n)
    mpx.flush()


def test_the_recipe_sees_modelmon_only_with_the_line(promdir: Path) -> None:
    procs = [FORK.Process(target=_worker, args=(n,)) for n in (3, 4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    plain = _scrape_recipe(with_modelmon=False)
    assert plain.get_sample_value("app_requests_total") == 7
    assert plain.get_sample_value("modelmon_requests_total", LABELS) is None  # the trap
    with_line = _scrape_recipe(with_modelmon=True)
    assert with_line.get_sample_value("app_requests_total") == 7
    assert with_line.get_sample_value("modelmon_requests_total", LABELS) == 7


def test_the_scraping_worker_sees_its_own_latest_calls(promdir: Path) -> None:
    mon = modelmon.Monitor("recipe", "1")  # the default: the global registry
    for i in range(5):
        mon.observe({"x": float(i)}, 0.5)  # buffered, not folded nor written yet
    registry = _scrape_recipe(with_modelmon=True)
    assert registry.get_sample_value("modelmon_requests_total", LABELS) == 5


def test_the_line_refuses_the_registry_that_already_exposes_modelmon(promdir: Path) -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("recipe", "1", registry=registry)
    with pytest.raises(ConfigurationError, match="duplicate"):
        modelmon.multiprocess.MultiprocessCollector(registry)
    assert mon.registry is registry


def test_a_warning_when_the_recipe_never_reads_modelmon(
    promdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    check = mpx.UnreadCheck()
    grace = mpx.UNREAD_WARNING_S
    caplog.set_level(logging.WARNING, logger="modelmon")
    assert not check.check(str(promdir), 1000.0)  # starts the clock
    assert not check.check(str(promdir), 1000.0 + grace + 1)  # no prometheus-client files
    _prometheus_client_counter(1)
    assert not check.check(str(promdir), 1000.0 + grace / 2)  # too early
    assert check.check(str(promdir), 1000.0 + grace + 1)
    assert check.check(str(promdir), 1000.0 + grace + 2)  # once: it stays logged
    messages = [
        r.getMessage() for r in caplog.records if "PROMETHEUS_MULTIPROC_DIR" in r.getMessage()
    ]
    assert len(messages) == 1
    assert "modelmon.multiprocess.MultiprocessCollector(registry)" in messages[0]


def test_no_warning_once_modelmon_was_scraped_or_with_modelmons_own_variable(
    promdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prometheus_client_counter(1)
    grace = mpx.UNREAD_WARNING_S
    scraped = mpx.UnreadCheck()
    list(modelmon.multiprocess.MultiprocessCollector().collect())  # a scrape reads modelmon
    assert not scraped.check(str(promdir), 0.0)
    assert not scraped.check(str(promdir), grace + 1)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(promdir))
    (promdir / mpx.SCRAPED_NAME).unlink()
    own = mpx.UnreadCheck()
    assert not own.check(str(promdir), 0.0)
    assert not own.check(str(promdir), grace + 1)
