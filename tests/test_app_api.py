"""The app's documented ``predict`` endpoint through gradio_client, on an app served in-process on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import app_server  # tests/app_server.py (tests/ is on sys.path, as for dicom_fixtures)

CLI_KEYS = {"image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"}
BOXED_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box


@pytest.fixture(scope="module")
def served(model_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CXRDEMO_MAX_UPLOAD_MB", "2")  # a small limit keeps the oversize upload test cheap
        running = app_server.start_app(model_dir, images_dir, tmp_path_factory.mktemp("exports"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served.url, verbose=False)


def call(client, served, image: Path, **overrides):
    from gradio_client import handle_file

    args = dict(source=served.resources.default.source, device="cpu", method="gradcam", target="top-1", threshold=127, truth="")
    args.update(overrides)
    return client.predict(handle_file(str(image)), *args.values(), api_name="/predict")


def test_predict_is_the_only_public_endpoint(client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == ["/predict"]
    names = [p["parameter_name"] for p in info["named_endpoints"]["/predict"]["parameters"]]
    assert names == ["image", "source", "device", "method", "target", "threshold", "truth"]
    assert len(info["named_endpoints"]["/predict"]["returns"]) == 5


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
    for overrides, expected in (
        (dict(threshold=300), "outside 1..254; CLN uses 127 or 180"),
        (dict(method="scorecam"), "unknown CAM method"),
        (dict(device="tpu"), "device"),
        (dict(target="Tumour"), "unknown class"),
    ):
        with pytest.raises(AppError) as info:
            call(client, served, images_dir / BOXED_IMAGE, **overrides)
        message = str(info.value)
        assert expected in message and "\n" not in message.strip() and "list of choices" not in message
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/predict"]["parameters"]
    assert next(p for p in params if p["parameter_name"] == "threshold")["python_type"]["type"] == "int"
