"""The app's documented endpoints (``predict``, ``compare_methods``, ``compare_models``, ``audit``) through
gradio_client, on an app served in-process on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import app_server  # tests/app_server.py (tests/ is on sys.path, as for dicom_fixtures)
from conftest import REPO

CLI_KEYS = {"image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"}
BOXED_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box
ENDPOINTS = {
    "/predict": ["image", "source", "device", "method", "target", "threshold", "truth", "score_threshold"],
    "/compare_methods": ["image", "source", "device", "target", "threshold", "truth"],
    "/compare_models": ["image", "source", "source_b", "device", "method", "target", "threshold", "truth", "score_threshold"],
    "/audit": ["dataset", "source", "device", "methods", "threshold", "max_images", "faithfulness", "faithfulness_images",
               "sanity", "sanity_images", "unseen"],
}  # fmt: skip
EMBEDDED = str(REPO / "weights")  # model B: the embedded EfficientNet-Lite0


@pytest.fixture(scope="module")
def served(model_dir: Path, data_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CXRDEMO_MAX_UPLOAD_MB", "2")  # a small limit keeps the oversize upload test cheap
        patch.setenv("CXRDEMO_AUDIT_DATASETS", f"shared={images_dir}:{data_dir / 'labels.csv'}:{data_dir / 'boxes.csv'}")
        running = app_server.start_app(model_dir, images_dir, tmp_path_factory.mktemp("exports"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served.url, verbose=False)


def call(client, served, image: Path, **overrides):
    from gradio_client import handle_file

    args = dict(source=served.resources.default.source, device="cpu", method="gradcam", target="top-1", threshold=127, truth="",
                score_threshold="")
    args.update(overrides)
    return client.predict(handle_file(str(image)), *args.values(), api_name="/predict")


def test_the_public_endpoints_and_their_parameters(client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == list(ENDPOINTS)  # the page's own events stay private
    for name, params in ENDPOINTS.items():
        assert [p["parameter_name"] for p in info["named_endpoints"][name]["parameters"]] == params
    returns = {name: len(info["named_endpoints"][name]["returns"]) for name in ENDPOINTS}
    assert returns == {"/predict": 5, "/compare_methods": 2, "/compare_models": 2, "/audit": 2}
    audit = {p["parameter_name"]: p["parameter_default"] for p in info["named_endpoints"]["/audit"]["parameters"]}
    assert audit["dataset"] == "examples" and audit["methods"] == "gradcam" and audit["sanity_images"] == 4


def test_predict_returns_cli_json_and_panels(client, served, images_dir: Path) -> None:
    doc, *panels = call(client, served, images_dir / BOXED_IMAGE)
    assert set(doc) == CLI_KEYS
    assert doc["image"] == BOXED_IMAGE
    assert doc["model"]["architecture"] == "mobilenet_v3_small"
    assert len(doc["probabilities"]) == 14
    assert [g["label"] for g in doc["ground_truth"]] == ["Atelectasis"]
    (row,) = doc["iou"]
    assert row["label"] == "Atelectasis"
    assert 0.0 <= row["box_iou"] <= 1.0 and 0.0 <= row["cam_iou"] <= 1.0
    assert doc["cam"]["method"] == "gradcam" and doc["cam"]["threshold"] == 127
    assert doc["cam"]["target"] == doc["probabilities"][0]["label"]
    assert len(panels) == 4
    for path, fmt in zip(panels, ("JPEG", "JPEG", "PNG", "JPEG")):  # film panels JPEG, the chart PNG
        with Image.open(path) as img:
            assert img.format == fmt and max(img.size) >= 256
    # The same answer as the package gives directly (the app adds nothing and loses nothing).
    from cxrdemo.webapp.actions import analyse_case
    from cxrdemo.webapp.upload import read_upload

    direct = analyse_case(served.resources.cache, read_upload(images_dir / BOXED_IMAGE), served.resources.default)
    assert direct.json["iou"] == doc["iou"] and direct.json["probabilities"] == doc["probabilities"]


def test_predict_with_typed_ground_truth_and_options(client, served, images_dir: Path) -> None:
    doc, *_ = call(
        client, served, images_dir / "00000002_000.png", method="eigencam", target="Nodule", threshold=180,
        truth="600, 300, 800, 500, Nodule",
    )  # fmt: skip
    assert doc["ground_truth"] == [{"label": "Nodule", "xyxy": [600.0, 300.0, 800.0, 500.0]}]
    assert doc["iou"][0]["label"] == "Nodule"
    assert doc["cam"] == {**doc["cam"], "method": "eigencam", "target": "Nodule", "threshold": 180}


def test_bad_inputs_give_one_line_errors_and_the_server_stays_up(client, served, images_dir: Path, tmp_path: Path) -> None:
    from gradio_client.exceptions import AppError

    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is text, not a PNG")
    with pytest.raises(AppError) as info:
        call(client, served, fake)
    assert "not an image" in str(info.value) and "\n" not in str(info.value).strip()
    with pytest.raises(AppError, match="wrong order"):
        call(client, served, images_dir / BOXED_IMAGE, truth="300, 300, 100, 100, Nodule")
    with pytest.raises(AppError, match="does not exist"):
        call(client, served, images_dir / BOXED_IMAGE, source=str(tmp_path / "no-model-here"))
    doc, *_ = call(client, served, images_dir / BOXED_IMAGE)  # still serving
    assert doc["image"] == BOXED_IMAGE


def test_upload_size_limit_is_enforced_by_the_server(served) -> None:
    limit = served.demo.max_file_size
    assert limit == 2 * 1024 * 1024
    import httpx

    too_big = b"\0" * (limit + 1)
    response = httpx.post(f"{served.url}gradio_api/upload", files={"files": ("big.dcm", too_big)}, timeout=60)
    assert response.status_code >= 400


def test_api_threshold_method_and_device_are_checked_by_the_package(client, served, images_dir: Path) -> None:
    """The API takes any threshold, method and device and answers a bad one with the package's one-line error,
    never Gradio's raw 'Value: 150 (type: <class 'int'>) is not in the list of choices: [127, 180]'."""
    from gradio_client.exceptions import AppError

    doc, *_ = call(client, served, images_dir / BOXED_IMAGE, threshold=150)  # any of 1..254 works
    assert doc["cam"]["threshold"] == 150
    doc, *_ = call(client, served, images_dir / BOXED_IMAGE, threshold=None)  # an empty number field: the default
    assert doc["cam"]["threshold"] == 127
    for overrides, expected in (
        (dict(threshold=300), "outside 1..254; CLN uses 127 or 180"),
        (dict(method="scorecam"), "unknown CAM method"),
        (dict(device="tpu"), "device"),
        (dict(target="Tumour"), "unknown class"),
        # issue 27 E5: text or None in a number field got Gradio's generic "upstream Gradio app has raised an
        # exception"; 1e308 was echoed as 309 digits
        (dict(threshold="abc"), "CAM threshold 'abc' is not a finite number"),
        (dict(threshold=1e308), "CAM threshold 1e+308 is outside 1..254"),
    ):
        with pytest.raises(AppError) as info:
            call(client, served, images_dir / BOXED_IMAGE, **overrides)
        message = str(info.value)
        assert expected in message and "\n" not in message.strip() and "list of choices" not in message, message
        assert len(message) < 300 and "upstream" not in message
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/predict"]["parameters"]
    assert next(p for p in params if p["parameter_name"] == "threshold")["python_type"]["type"] == "int"


def test_compare_methods_every_method_on_one_forward_pass(client, served, images_dir: Path) -> None:
    from gradio_client import handle_file

    source = served.resources.default.source
    doc, grid = client.predict(handle_file(str(images_dir / BOXED_IMAGE)), source, "cpu", "Atelectasis", 180, "",
                               api_name="/compare_methods")  # fmt: skip
    assert set(doc) == {"image", "model", "target", "threshold", "ground_truth", "methods", "timings_ms"}
    assert doc["target"] == "Atelectasis" and doc["threshold"] == 180 and doc["image"] == BOXED_IMAGE
    assert [m["method"] for m in doc["methods"]][:2] == ["gradcam", "gradcam++"] and len(doc["methods"]) == 7
    for cell in doc["methods"]:
        assert [r["label"] for r in cell["iou"]] == ["Atelectasis"] and cell["threshold"] == 180
    with Image.open(grid) as img:
        assert img.format == "JPEG" and img.width > 1000
    # Grad-CAM's cell is the predict endpoint's CAM for the same request
    single, *_ = call(client, served, images_dir / BOXED_IMAGE, target="Atelectasis", threshold=180)
    assert doc["methods"][0]["iou"][0]["cam_iou"] == single["iou"][0]["cam_iou"]
    assert doc["methods"][0]["box"] == single["cam"]["box"]


def test_compare_models_a_and_b(client, served, images_dir: Path) -> None:
    from gradio_client import handle_file

    source = served.resources.default.source
    doc, rows = client.predict(handle_file(str(images_dir / BOXED_IMAGE)), source, EMBEDDED, "cpu", "gradcam", "top-1",
                               127, "", api_name="/compare_models")  # fmt: skip
    assert set(doc) == {"a", "b", "top_changed", "differences"}
    assert set(doc["a"]) == CLI_KEYS and set(doc["b"]) == CLI_KEYS
    assert doc["a"]["model"]["architecture"] == "mobilenet_v3_small" and doc["b"]["model"]["architecture"] == "efficientnet_lite0"
    assert doc["top_changed"] == (doc["a"]["probabilities"][0]["label"] != doc["b"]["probabilities"][0]["label"])
    assert set(doc["differences"][0]) == {"label", "b_minus_a"}
    assert [r["label"] for r in doc["b"]["iou"]] == ["Atelectasis"]
    with Image.open(rows) as img:
        assert img.format == "JPEG" and img.height > 2 * 384


def test_a_detector_through_predict_and_compare_models(client, served, images_dir: Path, tmp_path_factory) -> None:
    """A torchvision detector folder as the source: predict's boxes are torchvision's own above the typed score
    threshold (same network, same float ops, then the JSON's rounding: 0.05 px for 0.1 px, 5e-7 for 6 decimals,
    plus test_detectors' 1e-3 px / 1e-6), under the page's names for the model's labels, with the detection block; blank
    is the model's own threshold; the same detector as model B gets the same boxes; a bad threshold is one line."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from model_formats import tv_detector_folder, tv_detector_reference

    folder = tv_detector_folder(tmp_path_factory.mktemp("api-detector"))
    film = images_dir / "00000001_000.png"
    doc, *panels = call(client, served, film, source=str(folder), method="eigencam", score_threshold="0.2")
    ref = tv_detector_reference(folder, film, 0.2)
    assert 0 < len(doc["boxes"]) == len(ref) and doc["detection"]["score_threshold"] == 0.2
    own_name = {p["label"]: p.get("model_label", p["label"]) for p in doc["probabilities"]}
    left = list(ref)  # each JSON box is one of torchvision's, each used once (scores tie after rounding: no sort)
    for b in doc["boxes"]:
        same = [r for r in left if r[0] == own_name[b["label"]] and abs(r[2] - b["score"]) <= 5e-7 + 1e-6
                and max(abs(u - v) for u, v in zip(r[1], b["xyxy"])) <= 0.05 + 1e-3]
        assert same, f"{b} is not one of torchvision's boxes"
        left.remove(same[0])
    own, *_ = call(client, served, film, source=str(folder), method="eigencam")
    assert own["detection"]["score_threshold"] == 0.5 and all(b["score"] > 0.5 for b in own["boxes"])
    pair, _ = client.predict(handle_file(str(film)), served.resources.default.source, str(folder), "cpu", "eigencam", "top-1",
                             127, "", "0.2", api_name="/compare_models")  # fmt: skip
    assert pair["b"]["boxes"] == doc["boxes"] and pair["a"]["boxes"] != doc["boxes"]
    with pytest.raises(AppError) as err:
        call(client, served, film, source=str(folder), score_threshold="1.5")
    assert "outside [0, 1]" in str(err.value) and len(str(err.value).strip().splitlines()) == 1


def test_audit_endpoint_with_sanity_on_two_images(client, served) -> None:
    import zipfile

    source = served.resources.default.source
    report, archive = client.predict("examples", source, "cpu", "gradcam", 127, 2, False, 8, True, 2, api_name="/audit")
    assert report["n_images"] == 2 and report["plausibility"]["n_boxes"] == 2
    assert report["sanity"]["n_images"] == 2 and report["faithfulness"] is None
    assert report["model"]["architecture"] == "mobilenet_v3_small"
    with zipfile.ZipFile(archive) as zf:
        names = {n.split("/", 1)[1] for n in zf.namelist()}
    assert {"report.json", "report.md", "cases.csv", "gallery.html", "sanity.png"} <= names


def test_audit_counts_that_are_not_numbers_get_the_apps_line(client, served) -> None:
    """Issue 27 E5: text in the audit's number fields reaches parse_count (one line), not Gradio's generic error."""
    from gradio_client.exceptions import AppError

    source = served.resources.default.source
    with pytest.raises(AppError) as info:
        client.predict("examples", source, "cpu", "gradcam", 127, "lots", False, 8, False, 4, api_name="/audit")
    message = str(info.value)
    assert "'lots' is not a number; give a whole number of 0 or more" in message and "upstream" not in message, message


def test_audit_offers_only_named_data_sets(client, served) -> None:
    from gradio_client.exceptions import AppError

    for name in ("../../etc", "/work/shared/data/nih/images"):
        with pytest.raises(AppError) as info:
            client.predict(name, "", "cpu", "gradcam", 127, 1, False, 8, False, 4, api_name="/audit")
        message = str(info.value)
        assert "unknown data set" in message and "examples, shared" in message and "\n" not in message.strip()


def test_cancelling_an_audit_job_stops_it_and_keeps_what_was_done(client, served) -> None:
    """Issue 19 finding 6: gradio_client's job.cancel() stops the audit (not only the client's wait): the engine ends
    after its batch and leaves a partial report; the next audit then runs."""
    import time

    source = served.resources.default.source
    runs = served.resources.export_root / "audits"
    before = set(runs.glob("*/*-partial.zip")) if runs.is_dir() else set()
    # ROAD on every image makes each batch of 4 take several seconds: the cancel lands while the audit runs.
    job = client.submit("examples", source, "cpu", "gradcam", 127, 0, True, 0, False, 4, False, api_name="/audit")
    end = time.monotonic() + 300  # a bound so a broken server fails the test instead of hanging it; not a speed check
    seen: list[str] = []
    while time.monotonic() < end and not job.done():
        seen += [str(p.desc) for p in (job.status().progress_data or []) if p.desc]
        if seen and seen[-1].startswith(("Forward pass and CAMs:", "ROAD")):
            break
        time.sleep(0.1)
    assert seen and seen[-1].startswith(("Forward pass and CAMs:", "ROAD")), seen[-3:]
    job.cancel()
    while time.monotonic() < end and not set(runs.glob("*/*-partial.zip")) - before:
        time.sleep(0.2)
    assert set(runs.glob("*/*-partial.zip")) - before  # stopped after its batch, what was done kept
    report, _ = client.predict("examples", source, "cpu", "gradcam", 127, 1, False, 8, False, 4, False, api_name="/audit")
    assert report["n_images"] == 1 and report["partial"] is None  # the slot is free for the next audit
