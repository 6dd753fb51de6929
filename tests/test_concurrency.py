"""The app under concurrent load: 32 simultaneous API calls over 8 shared images equal the same calls made one by one.

The app (``app.py``: ``prepare`` + ``launch`` with ``launch_options``, as ``python app.py`` does, minus the start-up
warm-up thread) is served from a thread of this process on a free loopback port, with conftest's small random model
(whose answers differ per image) given through ``CXRDEMO_WEIGHTS``, and ``CXRDEMO_CONCURRENCY=4`` so that four model
jobs really run at once (the default of 1 would serialise them in Gradio's queue and prove little). Requests go
through gradio_client to the documented ``/predict`` endpoint; each varies the image, the CAM method and the
threshold; a few bad uploads are mixed in and must fail alone, leaving the server serving. Compared with the same
requests run one by one through the served app's own handler: the whole prediction JSON except timings
(probabilities, boxes, CAM target and box, ground truth, IoUs) and the four panels pixel for pixel (the CAM overlay
carries the CAM map). Hooks on the served model must not grow, and the model is loaded once.

Two races were found here and fixed in the app: a rendered panel handed to Gradio as a PIL image is re-encoded into
a content-addressed cache file in place, so two requests with an identical panel could truncate each other's
download (the app now hands over uniquely named image files, which Gradio copies atomically:
``cxrdemo.webapp.view.write_page_panels``); and an uploaded file could be used before Gradio's background task had moved it
to the path it returned (``cxrdemo.webapp.upload.read_upload`` waits briefly for it). Any failure fails the test.
Everything is bounded by timeouts; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
#: Eight shared NIH images: the five with a radiologist's box used across the tests, and three without one.
IMAGES = (
    "00013125_000.png",
    "00000468_017.png",
    "00022084_000.png",
    "00013911_000.png",
    "00026911_000.png",
    "00000001_000.png",
    "00000001_001.png",
    "00000001_002.png",
)
METHODS = ("gradcam", "gradcam++", "eigencam", "layercam")
N_REQUESTS = 32
CONCURRENCY = 4
REQUEST_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hooks(model: torch.nn.Module) -> int:
    return sum(
        len(getattr(m, name, {}) or {})
        for m in model.modules()
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, images_dir: Path) -> Iterator[tuple[str, Any, Any]]:
    """``(url, resources, predict handler)`` of the app served on a free loopback port; closed after the module."""
    missing = [name for name in IMAGES if not (images_dir / name).is_file()]
    if missing:
        pytest.skip(f"shared images {missing} not found in {images_dir}")
    saved = {k: os.environ.get(k) for k in ("CXRDEMO_WEIGHTS", "CXRDEMO_CONCURRENCY", "GRADIO_ANALYTICS_ENABLED")}
    os.environ.update(CXRDEMO_WEIGHTS=str(model_dir), CXRDEMO_CONCURRENCY=str(CONCURRENCY), GRADIO_ANALYTICS_ENABLED="False")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import app as app_module
    from cxrdemo.webapp.resources import make_resources

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: intra-op threads only fight the request threads
    tmp = tmp_path_factory.mktemp("served")
    resources = make_resources(REPO, examples_folder=images_dir, export_root=tmp / "exports")
    demo, resources = app_module.prepare(resources, warm=False)  # the first request loads the model (counted below)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app_module.launch_options(resources))
    try:
        handler = next(f.fn for f in demo.fns.values() if getattr(f, "api_name", None) == "predict")
        yield f"http://127.0.0.1:{port}/", resources, handler
    finally:
        demo.close()
        torch.set_num_threads(threads)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _request(i: int, images_dir: Path) -> tuple[str, str, int]:
    """The ``i``-th request: (image path, CAM method, threshold); each image gets every method and both thresholds."""
    return (
        str(images_dir / IMAGES[i % len(IMAGES)]),
        METHODS[(i // len(IMAGES)) % len(METHODS)],
        (127, 180)[(i // len(IMAGES) + i) % 2],
    )


def _arrays(panels: list[Any]) -> list[np.ndarray]:
    """Panels as RGB arrays: PIL images (the handler) or downloaded files (gradio_client gives paths)."""
    from PIL import Image

    out = []
    for panel in panels:
        if isinstance(panel, Image.Image):
            out.append(np.asarray(panel.convert("RGB")))
            continue
        path = panel["path"] if isinstance(panel, dict) else panel
        with Image.open(path) as img:
            out.append(np.asarray(img.convert("RGB")))
    return out


def _comparable(result: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The JSON without timings, and the four panels as arrays."""
    doc, *panels = result
    return {k: v for k, v in doc.items() if k != "timings_ms"}, _arrays(panels)


def _known_gradio_race(exc: BaseException) -> str | None:
    """Name the race an exception comes from, if it is one of the two this test once found (both now fixed)."""
    text = f"{exc.__class__.__name__}: {exc}"
    if "Content-Length" in text or "peer closed connection without sending complete message body" in text:
        return "output file rewritten while downloaded"
    if "does not exist" in text and "gradio" in text:
        return "upload path used before Gradio's background task moved the file there"
    return None


def test_concurrent_requests_equal_serial(served: tuple[str, Any], images_dir: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    from corpus import synthetic_film

    url, resources, handler = served
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)
    requests = [_request(i, images_dir) for i in range(N_REQUESTS)]

    def call(req: tuple[str, str, int]) -> Any:
        path, method, threshold = req
        job = client.submit(handle_file(path), "", "cpu", method, "top-1", threshold, "", api_name="/predict")
        return job.result(timeout=REQUEST_TIMEOUT_S)

    call(requests[0])  # through the server: loads the model before anything is compared
    predictors = [resources.cache.get(key) for key in resources.cache.keys()]
    hooks_before = [_hooks(p.model) for p in predictors]

    # The same requests one by one, through the served app's own handler (same model instance, no HTTP, no queue).
    start = time.perf_counter()
    serial = [handler(path, "", "cpu", method, "top-1", threshold, "") for path, method, threshold in requests]
    serial_s = time.perf_counter() - start

    # Bad uploads mixed into the concurrent batch: each must fail alone with the app's one-line message.
    bad_text = tmp_path / "notes.png"
    bad_text.write_text("not an image\n" * 10)
    png = io.BytesIO()
    Image.fromarray(synthetic_film()).save(png, format="PNG")
    bad_cut = tmp_path / "cut.png"
    bad_cut.write_bytes(png.getvalue()[: len(png.getvalue()) // 2])  # synthetic: nothing cut from a shared image
    bad = [str(bad_text), str(bad_cut)] * 2

    def attempt(fn: Any, arg: Any) -> tuple[Any, BaseException | None]:
        try:
            return fn(arg), None
        except Exception as exc:  # noqa: BLE001 - classified below
            return None, exc

    def call_bad(path: str) -> Any:
        return client.submit(handle_file(path), "", "cpu", "gradcam", "top-1", 127, "", api_name="/predict").result(timeout=REQUEST_TIMEOUT_S)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=N_REQUESTS + len(bad)) as pool:
        good_futures = [pool.submit(attempt, call, req) for req in requests]
        bad_futures = [pool.submit(attempt, call_bad, path) for path in bad]
        concurrent = [f.result(timeout=REQUEST_TIMEOUT_S * 3) for f in good_futures]
        bad_results = [f.result(timeout=REQUEST_TIMEOUT_S * 3) for f in bad_futures]
    concurrent_s = time.perf_counter() - start
    after, after_error = attempt(call, requests[1])  # the server still serves

    races: list[str] = []
    failures: list[str] = []
    for (result, exc), path in zip(bad_results, bad):
        if exc is None:
            failures.append(f"bad upload {Path(path).name} gave a result")
        elif not isinstance(exc, AppError):
            race = _known_gradio_race(exc)
            (races if race else failures).append(f"bad upload {Path(path).name}: {race or repr(exc)}")
        else:
            message = str(exc)
            if "Traceback" in message or "\n" in message.strip() or not ("not an image" in message or "corrupt or truncated" in message):
                failures.append(f"bad upload {Path(path).name}: unclear message {message!r}")
    compared = 0
    for i, (req, (result, exc), reference) in enumerate(zip(requests, concurrent, serial)):
        if exc is not None:
            race = _known_gradio_race(exc)
            (races if race else failures).append(f"request {i} {req[1:]}: {race or repr(exc)}")
            continue
        doc_a, panels_a = _comparable(result)
        doc_b, panels_b = _comparable(reference)
        if doc_a["image"] != Path(req[0]).name or doc_a["cam"]["method"] != req[1] or doc_a["cam"]["threshold"] != req[2]:
            failures.append(f"request {i} {req}: answered for {doc_a['image']} {doc_a['cam']}")
        if doc_a != doc_b:
            failures.append(f"request {i} {req}: JSON differs from the serial run")
        for name, pa, pb in zip(("prediction", "comparison", "probabilities", "cam"), panels_a, panels_b):
            if pa.shape != pb.shape or not np.array_equal(pa, pb):
                failures.append(f"request {i} {req}: {name} panel differs from the serial run")
        compared += 1
    if after_error is not None and not _known_gradio_race(after_error):
        failures.append(f"the server stopped serving after the batch: {after_error!r}")
    print(
        f"\n{N_REQUESTS} requests + {len(bad)} bad uploads at once (limit {CONCURRENCY}): {concurrent_s:.1f} s; "
        f"serial through the handler {serial_s:.1f} s; {compared} compared equal, {len(races)} hit a race"
    )
    assert not failures and not races, "\n".join(failures + races)
    # Different images really gave different answers (the comparison is not vacuous).
    assert len({str(_comparable(r)[0]["probabilities"]) for r in serial}) == len(IMAGES)
    assert [_hooks(p.model) for p in predictors] == hooks_before, "hooks grew on the served model"
    assert resources.cache.loads == 1, "the default model was loaded more than once"
    assert compared >= N_REQUESTS // 2, f"only {compared} of {N_REQUESTS} concurrent requests completed"
