"""Measure the app's answer times as a user and an API client see them.

    python bench/app_latency.py [--weights SRC] [--images DIR] [--examples DIR] [--n 8] [--browser] [--json PATH]

Starts ``python app.py`` as a fresh process on a free loopback port (as ``python app.py`` would, warm-up included),
then measures:
- ``server_up_s``: from spawning the process to the page answering HTTP 200;
- ``first_answer_after_start_s``: from spawning the process to the first ``predict`` answer (gradio_client);
- ``api_first_s`` and ``api_later_s``: the wall time of the first and of each later ``predict`` call (different
  images), upload and download of the four panel files included;
- with ``--browser`` (headless Chromium at /usr/bin/chromium): the time from choosing the file in the page to the
  four panels and the IoU text shown, for the first and the later uploads, and for a CAM threshold change (no
  forward pass); then, click to panels, ``browser_cam_changes_s`` (6 CAM changes, no forward pass: the threshold
  and the method, alternately), ``browser_example_clicks_s`` (3 clicks on examples of the gallery: a new image) and,
  when the page has them, ``browser_method_grid_s`` (every CAM method side by side) and
  ``browser_audit_tab_s`` (opening the audit tab).
The app's example gallery is the ``--examples`` folder (default: ``--images``).
Prints one JSON document (and writes it to ``--json``). Research demo, not a diagnostic device.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "nih" / "images"
IMAGES = (
    "00000468_017.png", "00013125_000.png", "00026911_000.png", "00013911_000.png", "00022084_000.png",
    "00001369_000.png", "00000032_037.png", "00002578_000.png", "00000150_002.png", "00000002_000.png",
)  # fmt: skip
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"app did not answer at {url} within {timeout:.0f} s")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def measure_api(url: str, images: list[Path], spawned: float) -> dict[str, object]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=tempfile.mkdtemp())
    times, stages = [], []
    first_after_start = None
    for path in images:
        start = time.monotonic()
        doc, *_ = client.predict(handle_file(str(path)), "", "auto", "gradcam", "top-1", 127, "", api_name="/predict")
        times.append(time.monotonic() - start)
        stages.append(doc["timings_ms"])
        if first_after_start is None:
            first_after_start = time.monotonic() - spawned
    return {
        "first_answer_after_start_s": round(first_after_start or 0.0, 3),
        "api_first_s": round(times[0], 3),
        "api_later_s": summary(times[1:]) if len(times) > 1 else None,
        "stages_ms_later_median": {k: round(statistics.median(s[k] for s in stages[1:]), 1) for k in stages[-1]}
        if len(stages) > 1
        else stages[0],
    }


def measure_browser(url: str, images: list[Path]) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(), executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )  # fmt: skip
        page = context.new_page()
        page.set_default_timeout(180_000)
        start = time.monotonic()
        page.goto(url)
        page.wait_for_selector("#upload input[type=file]", state="attached")
        page_load = time.monotonic() - start
        uploads = []
        for path in images:
            if page.locator("#upload button[aria-label='Clear']").count():
                page.locator("#upload button[aria-label='Clear']").click()
                page.wait_for_selector("#upload input[type=file]", state="attached")
            start = time.monotonic()
            page.set_input_files("#upload input[type=file]", str(path))
            page.wait_for_function(
                "name => document.querySelector('#summary').innerText.includes(name)"
                " && document.querySelectorAll('[id^=panel-] img').length == 4",
                arg=path.name,
            )
            uploads.append(time.monotonic() - start)
        start = time.monotonic()
        page.get_by_label("180").check()
        page.wait_for_function("document.querySelector('#summary').innerText.includes('threshold 180')")
        recam = time.monotonic() - start
        extra = measure_browser_more(page, images)
        context.close()
    return {
        "page_load_s": round(page_load, 3),
        "browser_first_upload_s": round(uploads[0], 3),
        "browser_later_uploads_s": summary(uploads[1:]) if len(uploads) > 1 else None,
        "browser_threshold_change_s": round(recam, 3),
        **extra,
    }


def _wait_summary(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#summary').innerText.includes(t)", arg=text)


def measure_browser_more(page, images: list[Path]) -> dict[str, object]:
    """Click-to-panels of CAM changes (no forward pass), example clicks (new image), and the side-by-side and audit
    controls when the page has them."""
    out: dict[str, object] = {}
    changes = []
    steps = [("threshold", "127"), ("method", "Grad-CAM++"), ("threshold", "180"), ("method", "Grad-CAM"),
             ("threshold", "127"), ("method", "XGrad-CAM")]  # fmt: skip
    for kind, value in steps:
        start = time.monotonic()
        if kind == "threshold":
            page.get_by_label(value, exact=True).check()
            _wait_summary(page, f"threshold {value}")
        else:
            page.locator("#method input").click()
            page.get_by_role("option", name=value, exact=True).click()
            _wait_summary(page, f"CAM: {value} of")
        changes.append(time.monotonic() - start)
    out["browser_cam_changes_s"] = summary(changes)
    thumbs = page.locator("#examples button.thumbnail-item")
    if thumbs.count() >= 4:
        clicks = []
        for i in (1, 2, 3):
            before = page.locator("#summary").inner_text().split(" ")[0]
            start = time.monotonic()
            thumbs.nth(i).click()
            page.wait_for_function(
                "b => { const t = document.querySelector('#summary').innerText; return t && !t.startsWith(b)"
                " && document.querySelectorAll('[id^=panel-] img').length == 4; }",
                arg=before,
            )
            clicks.append(time.monotonic() - start)
        out["browser_example_clicks_s"] = summary(clicks)
    if page.locator("#compare-methods").count():
        start = time.monotonic()
        page.locator("#compare-methods").click()
        page.wait_for_selector("#method-grid img")
        out["browser_method_grid_s"] = round(time.monotonic() - start, 3)
    if page.locator("#audit-tab-button").count():
        start = time.monotonic()
        page.locator("#audit-tab-button").click()
        page.wait_for_selector("#audit-run", state="visible")
        out["browser_audit_tab_s"] = round(time.monotonic() - start, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="model source for the app (default: its own default)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--examples", type=Path, default=None, help="the app's example folder (default: --images)")
    parser.add_argument("--n", type=int, default=8, help="API calls (different images)")
    parser.add_argument("--browser", action="store_true", help="also measure in headless Chromium")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images = [args.images / name for name in IMAGES if (args.images / name).is_file()]
    if not images:
        raise SystemExit(f"no example images in {args.images}")
    images = (images * (args.n // len(images) + 1))[: args.n]
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    env["CXRDEMO_EXAMPLES_DIR"] = str((args.examples or args.images).resolve())
    if args.weights:
        env["CXRDEMO_WEIGHTS"] = args.weights
    url = f"http://127.0.0.1:{port}/"
    log = open(Path(tempfile.gettempdir()) / f"cxrdemo-app-latency-{port}.log", "w")
    spawned = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_up(url)
        result: dict[str, object] = {"server_up_s": round(time.monotonic() - spawned, 3)}
        result.update(measure_api(url, images, spawned))
        if args.browser:
            result.update(measure_browser(url, images[: min(4, len(images))]))
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        result["cpu_count"] = os.cpu_count()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
