"""The renderer keeps escaped label names: the same text as prometheus-client's, bounded."""

from __future__ import annotations

from prometheus_client.openmetrics.exposition import escape_label_name

from modelmon.exporters import exposition


def test_label_names_kept_escaped_are_prometheus_clients_and_bounded() -> None:
    names_ = ["model", "feature", "a.b", "ünï", "le", "x-y", *(f"n{i}" for i in range(2000))]
    for _ in range(2):  # the second pass reads the kept texts
        for name in names_:
            expected = escape_label_name(name)
            assert exposition.label_text([(name, 'v"1')]) == f'{{{expected}="v\\"1"}}'
    assert len(exposition._LABEL_NAMES) <= 1024
