"""Every instrument has a unit, and units keep the Prometheus names a Collector derives."""

from __future__ import annotations

import pytest

from modelmon import names

ALL = (*names.CATALOGUE, *names.HTTP_CATALOGUE)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_every_instrument_has_a_unit_or_is_in_data_units(spec: names.MetricSpec) -> None:
    if spec.name in names.DATA_UNIT_METRICS:
        assert spec.unit == ""
    else:
        assert spec.unit, f"{spec.name} has no unit"


def _collector_suffixes(spec: names.MetricSpec) -> str:
    """The suffixes an OTel Collector's Prometheus translation appends (unit, then type).

    Units in braces are annotations and add nothing; ``s`` adds ``_seconds``; ``1`` on a
    gauge adds ``_ratio``; a monotonic sum adds ``_total``. A suffix already at the end of
    the name is not repeated.
    """
    name = spec.otel_name.replace(".", "_")
    suffix = {"s": "seconds", "1": "ratio" if spec.kind == "gauge" else ""}.get(spec.unit, "")
    if suffix and not name.endswith("_" + suffix):
        name += "_" + suffix
    if spec.kind == "counter":
        name += "_total"
    return name


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_units_do_not_rename_series_after_translation(spec: names.MetricSpec) -> None:
    """A unit must not make a Collector add a suffix the Prometheus name lacks."""
    translated = _collector_suffixes(spec)
    prometheus = spec.prometheus_name()
    if spec.unit == "s":
        assert prometheus.endswith("_seconds") and translated.endswith("_seconds")
    if spec.unit == "1" and spec.kind == "gauge":
        assert prometheus.endswith("_ratio")
    if spec.unit.startswith("{"):
        assert not translated.endswith(("_seconds", "_ratio")) or prometheus.endswith(
            ("_seconds", "_ratio")
        )
