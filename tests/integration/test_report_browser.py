"""The report in real headless Chromium (Debian's package), driven by Playwright.

No browser is downloaded: Playwright launches ``/usr/bin/chromium``. The page must load
from its file with no other request, no console error, paint its charts, and list every
feature with its decision in severity order.

``python -m tests.integration.test_report_browser docs/img/report.png`` writes the
documentation screenshot from the same data.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelmon.report.html import CUR_COLOR, REF_COLOR
from modelmon.report.snapshot import FALLBACK_PSI_DRIFT
from tests._report_data import SHIFTED, drifted_monitor
from tests.conftest import REQUIRE_INTEGRATION
from tests.integration._png import read_png

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LABELS = {"model": "cancer", "version": "1.4.0"}


def _require_browser() -> None:
    problems = []
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        problems.append("chromium is not installed (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        problems.append("playwright is not installed (pip install -e '.[dev]')")
    if problems:
        message = "; ".join(problems)
        if REQUIRE_INTEGRATION:
            pytest.fail(message + " and MODELMON_REQUIRE_INTEGRATION=1")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile_dir:
        context = pw.chromium.launch_persistent_context(
            profile_dir,  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def _hex(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def _has_color(pixels: np.ndarray, color: str) -> int:
    return int(np.all(pixels[..., :3] == np.array(_hex(color)), axis=-1).sum())


def test_report_in_headless_chromium(browser_page: Any, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    mon = drifted_monitor(registry)
    path = tmp_path / "report.html"
    path.write_text(mon.report(), encoding="utf-8")
    url = path.as_uri()

    requests: list[str] = []
    blocked: list[str] = []
    console_errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url == url:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page = browser_page.new_page()
    page.route("**/*", route)
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    page.goto(url, wait_until="load")

    assert requests == [url]
    assert blocked == []
    assert console_errors == []

    rows = page.locator("#features tbody tr")
    assert rows.count() == 30
    seen = []
    previous_y = -1.0
    for i in range(rows.count()):
        row = rows.nth(i)
        assert row.is_visible()
        feature = row.get_attribute("data-feature")
        decision = row.get_attribute("data-decision")
        assert row.locator(".badge").inner_text() == decision
        box = row.bounding_box()
        assert box is not None and box["y"] > previous_y  # shown in this order, top down
        previous_y = box["y"]
        seen.append((feature, decision))
    expected = {}
    for feature, _ in seen:
        psi = registry.get_sample_value(
            "modelmon_feature_drift", {**LABELS, "feature": str(feature), "method": "psi"}
        )
        detected = registry.get_sample_value(
            "modelmon_feature_drift_detected", {**LABELS, "feature": str(feature)}
        )
        assert psi is not None
        drift = detected == 1.0 if detected is not None else psi >= FALLBACK_PSI_DRIFT
        expected[feature] = "drift" if drift else "ok"
    assert dict(seen) == expected
    assert {f for f, d in seen if d == "drift"} >= set(SHIFTED)
    order = [d for _, d in seen]
    assert order == sorted(order, key=["drift", "ok", "not enough data"].index)

    page_png = page.screenshot(full_page=True)
    assert read_png(page_png).shape[1] == 1200
    card = page.locator("article.card").first
    assert card.get_attribute("data-decision") == "drift"
    pixels = read_png(card.screenshot())
    assert _has_color(pixels, REF_COLOR) > 200 and _has_color(pixels, CUR_COLOR) > 200
    non_white = np.any(pixels[..., :3] < 240, axis=-1).mean()
    assert non_white > 0.05
    page.close()
    mon.close()


def write_screenshot(target: Path) -> None:  # pragma: no cover - documentation helper
    """Write the documentation image: the first 1640 px of the drifted example's report."""
    from playwright.sync_api import sync_playwright

    mon = drifted_monitor(CollectorRegistry())
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        html = Path(tmp) / "report.html"
        html.write_text(mon.report(), encoding="utf-8")
        context = pw.chromium.launch_persistent_context(
            str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1200, "height": 1640},
        )  # fmt: skip
        page = context.new_page()
        page.goto(html.as_uri())
        page.screenshot(path=str(target))
        context.close()
    mon.close()


if __name__ == "__main__":  # pragma: no cover
    write_screenshot(Path(sys.argv[1]))
