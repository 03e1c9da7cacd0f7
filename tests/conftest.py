"""Shared test helpers: fresh registries, parsed expositions, external binaries."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

REQUIRE_INTEGRATION = os.environ.get("MODELMON_REQUIRE_INTEGRATION") == "1"


def require_binary(name: str) -> str:
    """Path of ``name``; skip (or fail under MODELMON_REQUIRE_INTEGRATION=1) when missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
        if REQUIRE_INTEGRATION:
            pytest.fail(message + " and MODELMON_REQUIRE_INTEGRATION=1")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """The exposition of ``registry``, parsed back by prometheus-client's parser."""
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    yield CollectorRegistry()
