"""modelmon.live: the per-process series read at each collection."""

from __future__ import annotations

import modelmon
from modelmon import names


def _points(mon: modelmon.Monitor, spec: names.MetricSpec) -> list[tuple[dict[str, str], float]]:
    families = mon.live_families(mon.render_context(now=123.0))
    return [(dict(p.labels), p.value) for f in families if f.spec is spec for p in f.points]


def test_health_counters_are_one_point_per_stage_and_reason() -> None:
    mon = modelmon.Monitor("live", "1", registry=None)
    mon.health.error("fold", ValueError("x"))
    mon.health.drop("unsupported_input")
    errors = {p[0][names.STAGE]: p[1] for p in _points(mon, names.INTERNAL_ERRORS)}
    dropped = {p[0][names.REASON]: p[1] for p in _points(mon, names.DROPPED)}
    assert errors["fold"] == 1 and dropped["unsupported_input"] == 1
    assert all(p[0]["model"] == "live" for p in _points(mon, names.DROPPED))
    mon.close()


def test_info_heartbeat_and_in_flight() -> None:
    mon = modelmon.Monitor("live_info", "1", registry=None)
    ((info_labels, info),) = _points(mon, names.MODEL_INFO)
    assert info == 1.0 and info_labels["task"] == "unknown" and info_labels["reference"] == "none"
    assert _points(mon, names.HEARTBEAT) == [({"model": "live_info", "version": "1"}, 123.0)]
    mon.buffer.next_seq()  # a call started, not finished
    assert _points(mon, names.IN_FLIGHT)[0][1] == 1
    assert _points(mon, names.MODEL_TRAINED) == []  # no training time, no reference
    mon.close()
