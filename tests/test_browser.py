"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Starts the app on a free loopback port, uploads a shared NIH image that has an NIH box, waits for the four panels,
checks that the IoU text and the top probability appear, draws a ground-truth box, and takes screenshots into the
test's temporary folder. When no browser can start here, the tests are skipped with the reason (never passed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import app_server  # tests/app_server.py (tests/ is on sys.path, as for dicom_fixtures)

BOXED_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box
CHROMIUM = os.environ.get("CXRDEMO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """A headless Chromium with a fresh profile; skips (with the reason) where none can start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}); pip install playwright")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CXRDEMO_CHROMIUM)")
    manager = sync_playwright().start()
    try:
        context = manager.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )
    except Exception as exc:  # the browser cannot start on this machine: say why
        manager.stop()
        pytest.skip(f"Chromium at {CHROMIUM} could not start: {str(exc).splitlines()[0][:300]}")
    yield context
    context.close()
    manager.stop()


@pytest.fixture(scope="module")
def served(model_dir: Path, data_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:  # the audit page offers the examples and every shared image
        patch.setenv("CXRDEMO_AUDIT_DATASETS", f"shared={images_dir}:{data_dir / 'labels.csv'}:{data_dir / 'boxes.csv'}")
        running = app_server.start_app(model_dir, images_dir, tmp_path_factory.mktemp("exports"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def expected(served, images_dir: Path):
    """What the package itself says about the boxed image (the page must show the same)."""
    from cxrdemo.webapp.actions import analyse_case
    from cxrdemo.webapp.upload import read_upload

    return analyse_case(served.resources.cache, read_upload(images_dir / BOXED_IMAGE), served.resources.default)


@pytest.fixture(scope="module")
def page(browser, served, images_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The app's page after uploading the boxed NIH image and getting its result."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served.url)
    page.wait_for_selector("#upload input[type=file]", state="attached")
    page.set_input_files("#upload input[type=file]", str(images_dir / BOXED_IMAGE))
    for i in range(4):
        page.wait_for_selector(f"#panel-{i} img")
    page.wait_for_function(
        "name => document.querySelector('#summary').innerText.includes(name)", arg=BOXED_IMAGE
    )
    yield page
    page.close()


def test_upload_shows_four_panels_iou_and_top_probability(page, expected, tmp_path: Path) -> None:
    for i in range(4):
        box = page.locator(f"#panel-{i} img").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
    summary = page.locator("#summary").inner_text()
    (row,) = expected.json["iou"]
    assert "box IoU" in summary and "CAM IoU" in summary
    assert row["label"] == "Atelectasis" and "Atelectasis" in summary
    assert f"{row['box_iou']:.2f}" in summary and f"{row['cam_iou']:.2f}" in summary
    top = expected.case.analysis.top
    assert f"{top.label} {top.probability:.1%}" in summary
    ranked = page.locator("#probabilities").inner_text()
    assert top.label in ranked and f"{round(top.probability * 100)}%" in ranked
    assert "not a diagnostic device" in page.locator("#disclaimer").inner_text()
    shot = tmp_path / "result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_threshold_change_updates_without_reload(page) -> None:
    page.get_by_label("180").check()
    page.wait_for_function("document.querySelector('#summary').innerText.includes('threshold 180')")
    assert "cached forward pass" in page.locator("#status").inner_text()


def test_every_cam_method_side_by_side(page, tmp_path: Path) -> None:
    page.click("#compare-methods")
    page.wait_for_function("document.querySelectorAll('#method-grid img').length == 7")
    assert BOXED_IMAGE in page.locator("#method-title").inner_text()
    assert "every CAM method redone from the cached forward pass" in page.locator("#status").inner_text()
    # the tiles are laid out once their pictures have loaded
    page.wait_for_function(
        "[...document.querySelectorAll('#method-grid img')].every(i => i.complete && i.naturalWidth > 0"
        " && i.getBoundingClientRect().width > 0)"
    )
    tile = page.locator("#method-grid img").first.bounding_box()
    assert tile is not None and tile["width"] > 200  # 4 across at 1440 px
    page.locator("#method-box").screenshot(path=str(tmp_path / "methods.png"))


def test_second_model_side_by_side(page, tmp_path: Path) -> None:
    page.fill("#source-b :is(input, textarea)", str(app_server.REPO / "weights"))
    page.click("#compare-models")
    page.wait_for_function("document.querySelectorAll('#ab-box img').length == 8")
    summary = page.locator("#ab-summary").inner_text()
    assert "Top class changed" in summary and "Atelectasis: CAM IoU" in summary and "efficientnet_lite0" in summary
    assert page.locator("#ab-title-b").inner_text().startswith("Model B: efficientnet_lite0")
    page.locator("#ab-box").screenshot(path=str(tmp_path / "models.png"))


def test_drawn_box_becomes_ground_truth(page, expected, tmp_path: Path) -> None:
    annotator = page.locator("#annotator")
    if not annotator.count():
        pytest.skip("gradio_image_annotation is not installed; typed boxes only")
    canvas = annotator.locator("canvas").first
    canvas.scroll_into_view_if_needed()
    annotator.get_by_role("button", name="Create box").click()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.85  # lower left, clear of NIH's box
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.1, y + box["height"] * 0.08, steps=8)
    page.mouse.up()
    # While the class dialog is open the box has no class: the text must not show it with another class.
    assert page.locator("#truth textarea").input_value().count("\n") == 0
    page.get_by_role("button", name="OK").first.click()  # the class dialog: first class, Atelectasis
    page.click("#apply-truth")  # at once: Apply reads the control's current value, not the text's last copy
    page.wait_for_function("document.querySelector('#summary').innerText.includes('your boxes')")
    rows = page.locator("#summary table tbody tr")
    assert rows.count() == 2  # NIH's box (kept in the text) and the drawn one
    # the class picked in the dialog, not the CAM target that a box without a class would get
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(2)] == ["Atelectasis", "Atelectasis"]
    print(f"CAM target while drawing: {expected.case.analysis.top.label}")
    text = page.locator("#truth textarea").input_value()
    assert page.locator(".toast-body.error").count() == 0  # no handler failed on the way (e.g. on a pending box)
    assert text.count("Atelectasis") == 2 and len(text.splitlines()) == 2
    page.screenshot(path=str(tmp_path / "drawn.png"), full_page=True)


def test_typed_text_is_the_whole_ground_truth(page) -> None:
    """Issue 27 C4: replacing the text with one box gave NIH's box plus the new one. The text is the whole truth:
    one typed box is the only ground truth, an empty text is none, and NIH's button brings NIH's box back."""
    page.fill("#truth textarea", "600, 300, 800, 500, Atelectasis")
    page.click("#apply-truth")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('your boxes')"
                           " && document.querySelectorAll('#summary table tbody tr').length == 1")  # fmt: skip
    assert page.locator("#truth textarea").input_value() == "600, 300, 800, 500, Atelectasis"
    page.fill("#truth textarea", "")
    page.click("#apply-truth")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('empty box list')")
    assert page.locator("#summary table").count() == 0
    page.fill("#truth textarea", "600, 300, 800, 500, Atelectasis\n1, 2, 30, 40, Tumour")
    page.click("#apply-truth")
    toast = page.locator(".toast-body").filter(has_text="Tumour").first
    toast.wait_for()
    assert "line 2: class 'Tumour'" in toast.inner_text()  # counted in the user's own text
    assert page.locator("#truth textarea").input_value().endswith("Tumour")  # what the user typed is kept
    page.click("#nih-truth")
    page.wait_for_function("document.querySelector('#summary').innerText.includes(\"NIH's radiologist boxes\")")
    assert page.locator("#truth textarea").input_value().endswith("Atelectasis")  # NIH's box, as a line


def test_bad_file_shows_one_line_error_and_keeps_the_result(page, tmp_path: Path) -> None:
    before = page.locator("#summary").inner_text()
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"text, not a PNG")
    page.locator("#upload button[aria-label='Clear']").click()
    page.set_input_files("#upload input[type=file]", str(fake))
    toast = page.locator(".toast-body").filter(has_text="not an image").first
    toast.wait_for()
    assert "fake.png is not an image" in toast.inner_text()
    assert page.locator("#summary").inner_text() == before
    assert page.locator("#panel-0 img").count() == 1
    # the status bar says the step failed (no red badge over the last success message)
    page.wait_for_function("document.querySelector('#status').innerText.includes('failed')")
    assert page.locator("#status .error").count() == 0


def test_phone_layout_puts_the_panels_on_the_first_screen(browser, served, images_dir: Path, tmp_path: Path) -> None:
    phone = browser.new_page()
    try:
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.set_default_timeout(TIMEOUT_MS)
        phone.goto(served.url)
        phone.wait_for_selector("#upload input[type=file]", state="attached")
        phone.set_input_files("#upload input[type=file]", str(images_dir / BOXED_IMAGE))
        phone.wait_for_selector("#panel-0 img")
        top = lambda selector: phone.locator(selector).bounding_box()["y"]  # noqa: E731
        assert top("#title") < top("#upload") < top("#examples") < top("#status") < top("#panel-0") < 844
        assert top("#panel-0") < top("#summary") < top("#source")  # results first, settings after them
        label = phone.locator("#examples label").first  # the gallery's label is not cut
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        caption = phone.locator("#examples .caption-label").first.inner_text()
        assert caption.startswith(served.resources.examples[0].finding_labels.split("|")[0])  # findings first
        phone.screenshot(path=str(tmp_path / "phone.png"))
    finally:
        phone.close()


def test_result_is_on_the_first_screen_at_1440x900(browser, served, images_dir: Path) -> None:
    """A laptop screen: after an upload the four panels and the top finding are visible without scrolling, and the
    IoU table is repeated right under *Apply ground truth*."""
    laptop = browser.new_page()
    try:
        laptop.set_viewport_size({"width": 1440, "height": 900})
        laptop.set_default_timeout(TIMEOUT_MS)
        laptop.goto(served.url)
        laptop.wait_for_selector("#upload input[type=file]", state="attached")
        laptop.set_input_files("#upload input[type=file]", str(images_dir / BOXED_IMAGE))
        laptop.wait_for_function("document.querySelector('#status').innerText.includes('top finding')")
        for i in range(4):
            laptop.wait_for_selector(f"#panel-{i} img")
            box = laptop.locator(f"#panel-{i} img").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900 and box["width"] > 250  # 4 across, whole
        status = laptop.locator("#status").bounding_box()
        assert status is not None and status["y"] + status["height"] <= 900
        apply, table = laptop.locator("#apply-truth").bounding_box(), laptop.locator("#truth-result").bounding_box()
        assert apply is not None and table is not None and 0 <= table["y"] - (apply["y"] + apply["height"]) < 60
        assert "box IoU" in laptop.locator("#truth-result").inner_text()  # NIH's box: the table is already there
    finally:
        laptop.close()


#: Layout facts measured in the page (positions, not timings): every label whole, no caption over its thumbnail.
LAYOUT_FACTS = """() => {
  const rect = s => document.querySelector(s).getBoundingClientRect();
  const label = document.querySelector('#upload > label'), clear = document.querySelector('#upload button[aria-label=Clear]');
  const caption = rect('#examples .caption-label'), thumb = rect('#examples .thumbnail-item img');
  return {
    uploadLabelWhole: label.scrollWidth <= label.clientWidth + 1,
    uploadLabelClearOfButton: !clear || label.getBoundingClientRect().right <= clear.getBoundingClientRect().left + 1,
    uploadLabelInside: label.getBoundingClientRect().right <= rect('#upload').right + 1,
    captionUnderThumbnail: caption.top >= thumb.bottom - 1,
    examplesLabelAboveGrid: rect('#examples > label').bottom <= rect('#examples .grid-wrap').top + 1,
  };
}"""


@pytest.mark.parametrize("width,height", [(1440, 900), (1024, 768)])
def test_layout_keeps_panels_on_the_first_screen_and_labels_whole(
    browser, served, images_dir: Path, tmp_path: Path, width: int, height: int
) -> None:
    """Issue 27 C5: at 1024x768 the panels were a 2x2 grid starting at y = 529 (c, d on the second screen), the
    upload label was cut ("...or DICOI"), captions covered the thumbnails and the examples' label covered scrolled
    thumbnails. Now the four panels are one row, whole on the first screen, at both sizes."""
    view = browser.new_page()
    try:
        view.set_viewport_size({"width": width, "height": height})
        view.set_default_timeout(TIMEOUT_MS)
        view.goto(served.url)
        view.wait_for_selector("#upload input[type=file]", state="attached")
        view.set_input_files("#upload input[type=file]", str(images_dir / BOXED_IMAGE))
        view.wait_for_function("document.querySelector('#status').innerText.includes('top finding')")
        boxes = []
        for i in range(4):
            view.wait_for_selector(f"#panel-{i} img")
            boxes.append(view.locator(f"#panel-{i}").bounding_box())
        assert all(b is not None for b in boxes)
        assert len({round(b["y"]) for b in boxes}) == 1  # one row of four
        for b in boxes:
            assert 0 < b["y"] and b["y"] + b["height"] <= height, (width, b)
        facts = view.evaluate(LAYOUT_FACTS)
        assert all(facts.values()), facts
        view.screenshot(path=str(tmp_path / f"layout-{width}.png"))
    finally:
        view.close()


def test_detector_score_field_starts_blank(page) -> None:
    """A blank field means the model's own score threshold (else 0.5). A gr.Number without a value showed and sent
    0, which would have shown every candidate box of a detector: the field is text, blank until the user types."""
    from cxrdemo.webapp.state import Settings

    sent = page.locator("#score-threshold textarea, #score-threshold input").first.input_value()
    assert sent == ""
    assert Settings.from_controls("", "cpu", "gradcam", "top-1", 127, sent).score_threshold is None
