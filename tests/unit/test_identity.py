"""modelmon._internal.identity: one open monitor per model version and registry."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import modelmon
from modelmon._internal import identity
from modelmon.errors import ConfigurationError
from modelmon.monitor import DEFAULT_REGISTRY


def test_the_default_and_the_global_registry_are_one_identity() -> None:
    key = identity.identity_key(DEFAULT_REGISTRY, "ns", "m", "1")
    assert key == identity.identity_key(REGISTRY, "ns", "m", "1")
    assert key != identity.identity_key(CollectorRegistry(), "ns", "m", "1")
    assert identity.identity_key(None, "ns", "m", "1") is None


def test_close_releases_the_identity_and_a_freed_monitor_does_too() -> None:
    reg = CollectorRegistry()
    mon = modelmon.Monitor("ident", "1", registry=reg)
    assert identity.live_monitor(reg, "modelmon", "ident", "1") is mon
    with pytest.raises(ConfigurationError, match="already monitored"):
        modelmon.Monitor("ident", "1", registry=reg)
    mon.close()
    assert identity.live_monitor(reg, "modelmon", "ident", "1") is None
    again = modelmon.Monitor("ident", "1", registry=reg)
    del again
    gc.collect()
    assert identity.live_monitor(reg, "modelmon", "ident", "1") is None  # held weakly
