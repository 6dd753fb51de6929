"""The audit page in a real headless Chromium (Playwright), on a few shared NIH images with Grad-CAM only: run an
audit, sort its gallery, click a case through to the single-case page; a second visitor waits with a message and
Stop stops only one's own audit. Skipped with the reason when no browser can start (see tests/test_browser.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from test_browser import TIMEOUT_MS, browser, served  # noqa: F401 - the same fixtures: a Chromium and a served app

AUDIT_TIMEOUT_MS = 240_000
SHOTS = Path(os.environ["CXRDEMO_SHOTS"]) if os.environ.get("CXRDEMO_SHOTS") else None  # screenshots to look at


def open_audit(browser, served):  # noqa: F811 - fixtures passed on
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served.url)
    page.click("#audit-tab-button")
    page.wait_for_selector("#audit-run", state="visible")
    page.wait_for_function("document.querySelector('#audit-dataset-info').innerText.includes('images in')")
    return page


def captions(page) -> list[str]:
    return page.locator("#audit-gallery .caption-label").all_inner_texts()


def test_audit_runs_sorts_and_opens_a_case(browser, served, tmp_path: Path) -> None:  # noqa: F811
    page = open_audit(browser, served)
    try:
        assert "examples" in page.locator("#audit-dataset-info").inner_text()
        page.locator("#audit-max input").fill("3")
        page.click("#audit-run")
        page.wait_for_function("document.querySelector('#audit-status').innerText.includes('audit finished')",
                               timeout=AUDIT_TIMEOUT_MS)  # fmt: skip
        page.wait_for_function("document.querySelectorAll('#audit-gallery button.thumbnail-item').length == 3")
        assert "3 images, 3 ground-truth boxes" in page.locator("#audit-summary").inner_text()
        page.locator("#audit-download").wait_for(state="visible")  # shown by the same update, drawn a moment later
        assert "AUC" in page.locator("#audit-auc-box").inner_text()
        shown = captions(page)
        values = [float(re.search(r"CAM-box IoU ([0-9.]+)", c).group(1)) for c in shown]
        assert values == sorted(values)  # worst first
        page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
        page.locator("#audit-sort input").click()
        page.get_by_role("option", name="Energy in box", exact=True).click()
        page.wait_for_function("[...document.querySelectorAll('#audit-gallery .caption-label')].every(e => e.innerText.includes('Energy in box'))")
        shown = captions(page)
        values = [float(re.search(r"Energy in box ([0-9.]+)", c).group(1)) for c in shown]
        assert values == sorted(values)
        image, label = shown[0].split(" \u00b7 ")[:2]
        page.locator("#audit-gallery button.thumbnail-item").first.click()
        page.wait_for_function("name => document.querySelector('#summary').innerText.includes(name)", arg=image)
        assert page.locator("#case-tab").is_visible() and not page.locator("#audit-run").is_visible()
        assert f"Grad-CAM of {label}" in page.locator("#summary").inner_text().replace("_", " ")  # the case's class
        assert page.locator("#method input").input_value() == "Grad-CAM"
        assert not page.locator("#method-box").is_visible()  # nothing of another case is left on the page
        page.screenshot(path=str(tmp_path / "opened.png"))
    finally:
        page.close()


def test_second_visitor_waits_and_stop_stops_only_ones_own(browser, served) -> None:  # noqa: F811
    first, second = open_audit(browser, served), open_audit(browser, served)
    try:
        first.locator("#audit-dataset input").click()
        first.get_by_role("option", name="shared", exact=True).click()
        first.wait_for_function("document.querySelector('#audit-dataset-info').innerText.includes('shared')")
        first.click("#audit-run")  # every shared image: long enough to be running when the second one asks
        first.wait_for_function("/Starting the audit|Loading the model|Forward pass/.test(document.querySelector('#audit-status').innerText)")
        second.click("#audit-run")
        second.wait_for_function("document.querySelector('#audit-status').innerText.includes('yours starts when it ends')")
        assert "(position 1)" in second.locator("#audit-status").inner_text()
        second.click("#audit-stop")
        second.wait_for_function("document.querySelector('#audit-status').innerText.includes('taken out of the line')")
        first.click("#audit-stop")
        first.wait_for_function("document.querySelector('#audit-status').innerText.includes('Stopped after')",
                                timeout=AUDIT_TIMEOUT_MS)  # fmt: skip
        status = first.locator("#audit-status").inner_text()
        if "partial report" in status:  # what was done is kept and shown, marked partial
            first.wait_for_function("document.querySelectorAll('#audit-gallery button.thumbnail-item').length > 0")
            assert "Partial report" in first.locator("#audit-summary").inner_text()
            assert first.locator("#audit-summary").inner_text().lower().count("partial report") == 1  # said once
            # issue 27 C5: the summary's table was cut at the right edge at 1440 px; tables scroll inside their box
            cut = first.evaluate(
                "() => [...document.querySelectorAll('#audit-tab table')].filter(t => t.offsetParent !== null)"
                ".filter(t => { const b = t.getBoundingClientRect(), p = t.parentElement.getBoundingClientRect();"
                " return b.right > Math.min(p.right, innerWidth) + 1; }).length"
            )
            assert cut == 0 and first.evaluate("document.documentElement.scrollWidth <= innerWidth")
            first.screenshot(path=str(SHOTS / "partial.png"), full_page=True) if SHOTS else None
        else:  # stopped while loading: nothing to keep
            assert "before the first image" in status
    finally:
        first.close()
        second.close()
