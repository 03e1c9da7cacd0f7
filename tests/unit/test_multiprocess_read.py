"""A scrape decodes only the worker files that changed; cached states are never mutated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelmon.exporters.multiprocess import CACHE
from modelmon.profile import ReferenceProfile
from tests.unit._mp_files import FIRST_PID, merged_view, write_process

REQUESTS = ("modelmon_requests_total", (("model", "m"), ("version", "1")))


def _reference() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(0.5, 0.2, 500), rng.integers(0, 3, 500).astype(float)])
    return ReferenceProfile.from_data(data, feature_names=["a", "b"], created_at=0.0)


def test_a_scrape_decodes_only_the_files_that_changed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = _reference()
    for i in range(4):
        write_process(tmp_path, FIRST_PID + i, 10 + i, rng.exponential(0.05, 30), reference)
    start = CACHE.decoded
    first = merged_view(tmp_path)
    assert first[REQUESTS] == 120
    assert CACHE.decoded - start == 4
    for _ in range(3):  # unchanged: nothing decoded, and merging never altered a cached state
        assert merged_view(tmp_path) == first
    assert CACHE.decoded - start == 4
    write_process(tmp_path, FIRST_PID + 2, 12, rng.exponential(0.05, 50), reference)
    after = merged_view(tmp_path)
    assert CACHE.decoded - start == 5
    assert after[REQUESTS] == 140
    drift = [k for k in after if k[0].startswith("modelmon_feature_drift")]
    assert drift, "the reference's drift series are merged too"


def test_a_file_rewritten_to_older_content_is_decoded_again(tmp_path: Path) -> None:
    write_process(tmp_path, FIRST_PID, 1, np.full(5, 0.01))
    assert merged_view(tmp_path)[REQUESTS] == 5
    target = tmp_path / f"modelmon_{FIRST_PID}.state"
    old = target.read_bytes()
    write_process(tmp_path, FIRST_PID, 1, np.full(6, 0.01))
    assert merged_view(tmp_path)[REQUESTS] == 6
    target.write_bytes(old)  # back to the first content: decoded again, not served stale
    assert merged_view(tmp_path)[REQUESTS] == 5
