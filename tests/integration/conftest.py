"""Integration tests: what differs from the unit tests' warning policy, and why.

Every warning is an error (``filterwarnings`` in pyproject.toml), except here for
``ResourceWarning``: these tests drive real servers through third-party clients (Spark's
py4j gateway, Dask's distributed, MLflow, gunicorn) that leave sockets and pipes for the
garbage collector, which reports them in whichever later test it happens to run, so the
failure would land on an unrelated test at random. The unit and adversarial tests keep
``ResourceWarning`` an error, where a leak is modelmon's own and shows deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_IGNORE_RESOURCE_WARNINGS = pytest.mark.filterwarnings("ignore::ResourceWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(_IGNORE_RESOURCE_WARNINGS)


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real OTLP/HTTP metrics receiver on a free port (``tests/integration/_otlp.py``)."""
    from ._otlp import running_receiver

    with running_receiver() as rec:
        yield rec
