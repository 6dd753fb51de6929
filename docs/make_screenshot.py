"""Screenshot of the app's first screen for README.md, on synthetic phantoms only (no NIH pixels).

The repository may not carry anything cut from NIH's radiographs except the example files themselves, and the
gallery shows thumbnails of them; so this script serves the app with a gallery of phantoms it draws (an ellipse
"chest", two darker "lungs", a brighter "heart" and "spine", a few "ribs"; not anatomy, just something with the
grey levels of a film), clicks the first one, types a ground-truth box, applies it, and photographs the page at
1440 x 900. It also writes where the four panels, the status line and the IoU table landed (``--geometry``),
which is how the layout's "result on the first screen" is checked.

    python docs/make_screenshot.py                       # docs/screenshot.png (embedded weights, CPU)
    python docs/make_screenshot.py --out /tmp/s.png --geometry /tmp/s.json --chromium /usr/bin/chromium

Needs Playwright (requirements-dev.txt) and a Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
#: The phantoms of the gallery; the first one is opened, with a ground-truth box on its "heart" (x1, y1, x2, y2).
PHANTOMS = ("phantom_a.png", "phantom_b.png", "phantom_c.png", "phantom_d.png")
HEART_BOX = (400, 520, 700, 780)
VIEWPORT = {"width": 1440, "height": 900}


def draw_phantom(seed: int, side: int = 1024) -> Image.Image:
    """A grey-level phantom of a frontal chest film (8-bit, ``side`` x ``side``), different for each ``seed``."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (side, side), 20)
    d = ImageDraw.Draw(img)
    s = side / 1024
    d.ellipse([120 * s, 80 * s, 904 * s, 1000 * s], fill=150)  # soft tissue
    for cx in (350, 674):  # lungs, a little different per seed
        w, h = rng.uniform(150, 190), rng.uniform(330, 380)
        d.ellipse([(cx - w) * s, (470 - h) * s, (cx + w) * s, (470 + h) * s], fill=70)
    for y in range(200, 820, 62):  # ribs
        d.arc([180 * s, y * s, 520 * s, (y + 160) * s], 190, 350, fill=120, width=int(10 * s))
        d.arc([504 * s, y * s, 844 * s, (y + 160) * s], 190, 350, fill=120, width=int(10 * s))
    d.rectangle([492 * s, 60 * s, 532 * s, 1000 * s], fill=200)  # spine
    hw = rng.uniform(130, 170)
    d.ellipse([(560 - hw) * s, 520 * s, (560 + hw) * s, 780 * s], fill=175)  # heart
    img = img.filter(ImageFilter.GaussianBlur(6 * s))
    noise = rng.normal(0, 6, (side, side))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def write_gallery(folder: Path) -> Path:
    """The phantoms and their manifest (``examples/manifest.csv``'s columns) in ``folder``; returns the manifest."""
    rows = ["image,finding_labels,box_label,box_x,box_y,box_w,box_h"]
    for seed, name in enumerate(PHANTOMS):
        draw_phantom(seed).save(folder / name)
        rows.append(f"{name},synthetic phantom (not a radiograph),,,,,")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def geometry(page) -> dict:
    """Where the parts of the result landed on the page (CSS px from the top of the page, and the viewport)."""
    out: dict = {"viewport": VIEWPORT}
    for key, selector in (("status", "#status"), ("summary", "#summary"), ("apply_button", "#apply-truth"),
                          ("truth_result", "#truth-result"),
                          *((f"panel_{i}", f"#panel-{i} img") for i in range(4))):  # fmt: skip
        box = page.locator(selector).first.bounding_box()
        out[key] = None if box is None else {k: round(v) for k, v in box.items()}
    return out


def shoot(out: Path, geometry_out: Path | None, chromium: str, truth_shot: Path | None = None) -> dict:
    """Serve the app on the phantoms, open one, apply a box, photograph the first screen; returns the geometry."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from playwright.sync_api import sync_playwright

    import app_server  # tests/app_server.py: serve app.py in-process on a free port
    from cxrdemo.webapp.resources import make_resources

    work = Path(tempfile.mkdtemp(prefix="cxrdemo-shot-"))
    manifest = write_gallery(work)
    module = app_server.load_app_module()
    resources = make_resources(REPO, examples_folder=work, export_root=work / "exports", manifest=manifest)
    demo, resources = module.prepare(resources, warm=True)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=app_server.free_port(), prevent_thread_lock=True,
                            quiet=True, **module.launch_options(resources))  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(180_000)
        page.goto(url)
        page.locator("#examples .thumbnail-item").first.click()
        for i in range(4):
            page.wait_for_selector(f"#panel-{i} img")
        page.wait_for_function("document.querySelector('#summary').innerText.includes('phantom_a')")
        page.fill("#truth textarea", ", ".join(str(v) for v in HEART_BOX) + ", Cardiomegaly")
        page.click("#apply-truth")
        page.wait_for_function("document.querySelector('#summary').innerText.includes('your boxes')")
        page.wait_for_timeout(1500)  # let the new panels load
        result = {"after_apply": geometry(page)}
        if truth_shot is not None:  # the viewport where the click left it: the button and its feedback
            page.screenshot(path=str(truth_shot))
        page.evaluate("window.scrollTo(0, 0)")
        # the notes' pop-ups (the phantoms are no NIH images, but the box head's note shows) would cover the examples
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
        page.wait_for_timeout(500)
        result["first_screen"] = geometry(page)
        page.screenshot(path=str(out))
        browser.close()
    demo.close()
    if geometry_out is not None:
        geometry_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--geometry", type=Path, default=None, help="also write where the result landed (JSON)")
    parser.add_argument("--truth-shot", type=Path, default=None, help="also photograph the screen after Apply")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    result = shoot(args.out, args.geometry, args.chromium, args.truth_shot)
    print(json.dumps(result["first_screen"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
