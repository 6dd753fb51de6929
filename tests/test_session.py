"""The app's logic (cxrdemo.webapp) without a browser: upload, analysis, re-CAM without a forward pass, user
ground truth, review notes, CSV and report export, the examples manifest."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdemo.datasets import nih
from cxrdemo.cams import CamRequest
from cxrdemo.webapp import actions, boxes_text, models, resources, review, state, upload
from cxrdemo.webapp import view as webview
from cxrdemo.boxes import Box
from cxrdemo.errors import BoxError, CxrDemoError, ImageError, InputError, WeightsError
from cxrdemo.imaging import Radiograph

REPO = Path(__file__).resolve().parent.parent
CLI_KEYS = {"image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"}
BOXED_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box


@pytest.fixture(scope="module")
def view(boxed_view: state.CaseView) -> state.CaseView:
    return boxed_view


class CountingForward:
    """Wraps a predictor's ``forward`` and counts the calls."""

    def __init__(self, predictor) -> None:
        self.calls = 0
        self._forward = predictor.forward

    def __call__(self, radiograph):
        self.calls += 1
        return self._forward(radiograph)


# ------------------------------------------------------------------------------------------------------ upload
def test_read_upload_decodes_a_shared_image(images_dir: Path) -> None:
    radiograph = upload.read_upload(images_dir / BOXED_IMAGE)
    assert radiograph.name == BOXED_IMAGE
    assert radiograph.size == (1024, 1024)


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image", "not an image"),
        ("truncated.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x04\x00\x08\x00", "png"),
        ("notes.txt", b"hello", "not accepted"),
        ("scan.gif", b"GIF89a", "not accepted"),
    ],
)
def test_read_upload_refuses_bad_files_with_one_line(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError) as info:
        upload.read_upload(path)
    message = str(info.value)
    assert "\n" not in message and expected.lower() in message.lower()


def test_read_upload_size_limit_and_missing_file(tmp_path: Path, images_dir: Path) -> None:
    with pytest.raises(ImageError, match="upload limit"):
        upload.read_upload(images_dir / BOXED_IMAGE, max_bytes=1000)
    with pytest.raises(ImageError, match="no radiograph"):
        upload.read_upload(None)


def test_upload_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXRDEMO_MAX_UPLOAD_MB", "3")
    assert upload.max_upload_bytes() == 3 * 1024 * 1024
    monkeypatch.delenv("CXRDEMO_MAX_UPLOAD_MB")
    assert upload.max_upload_bytes() == upload.DEFAULT_MAX_UPLOAD_MB * 1024 * 1024


def test_dicom_upload_is_analysed_with_nih_ground_truth(cache: models.ModelCache, settings: state.Settings, images_dir: Path, tmp_path: Path) -> None:
    from dicom_fixtures import write_dicom

    with Image.open(images_dir / BOXED_IMAGE) as img:
        pixels = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    path = write_dicom(tmp_path / "00000468_017.dcm", 65535 - pixels, photometric="MONOCHROME1", bits=16)
    radiograph = upload.read_upload(path)
    assert radiograph.format == "dicom" and radiograph.size == (1024, 1024)
    view = actions.analyse_case(cache, radiograph, settings)
    assert [r["label"] for r in view.json["iou"]] == ["Atelectasis"]  # found by the NIH name in the file name


# ---------------------------------------------------------------------------------------------------- settings
def test_settings_from_controls_checks_values() -> None:
    got = state.Settings.from_controls(" ", None, "Grad-CAM++", "top-1 ", 180)
    assert got == state.Settings("", "auto", CamRequest("gradcam++", None, 180))
    assert state.Settings.from_controls("", "cpu", "gradcam", "Nodule", "127").cam.target == "Nodule"
    with pytest.raises(InputError, match="CAM method"):
        state.Settings.from_controls("", "cpu", "scorecam", None, 127)
    with pytest.raises(InputError, match="threshold"):
        state.Settings.from_controls("", "cpu", "gradcam", None, 300)


def test_bad_device_and_missing_folder_are_one_line_errors(cache: models.ModelCache, images_dir: Path, tmp_path: Path) -> None:
    radiograph = upload.read_upload(images_dir / BOXED_IMAGE)
    with pytest.raises(InputError, match="device"):
        actions.analyse_case(cache, radiograph, state.Settings(source="", device="tpu"))
    with pytest.raises(WeightsError, match="does not exist"):
        actions.analyse_case(cache, radiograph, state.Settings(source=str(tmp_path / "nowhere" / "model"), device="cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CxrDemoError) as info:
        actions.analyse_case(cache, radiograph, state.Settings(source=str(tmp_path / "empty"), device="cpu"))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ model cache
def test_model_cache_is_a_small_lru() -> None:
    loaded: list[str] = []

    def loader(source: str, device: str) -> object:
        loaded.append(source)
        return object()

    cache = models.ModelCache(capacity=2, loader=loader)  # type: ignore[arg-type]
    a, b, c = (models.ModelKey(x, "cpu") for x in "abc")
    first = cache.get(a)
    cache.get(b)
    assert cache.get(a) is first  # a is now the most recent
    cache.get(c)  # evicts b
    assert cache.keys() == [a, c] and b not in cache
    cache.get(b)
    assert loaded == ["a", "b", "c", "b"] and len(cache) == 2


def test_model_cache_loads_once_under_concurrency() -> None:
    calls: list[str] = []

    def slow_loader(source: str, device: str) -> object:
        calls.append(source)
        time.sleep(0.2)
        return object()

    cache = models.ModelCache(capacity=2, loader=slow_loader)  # type: ignore[arg-type]
    key = models.ModelKey("m", "cpu")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(key))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["m"] and len({id(r) for r in results}) == 1


# ---------------------------------------------------------------------------------------------------- analysis
def test_analyse_happy_path(view: state.CaseView) -> None:
    doc = view.json
    assert set(doc) == CLI_KEYS
    assert doc["image"] == BOXED_IMAGE
    assert [g["label"] for g in doc["ground_truth"]] == ["Atelectasis"]
    (row,) = doc["iou"]
    assert row["label"] == "Atelectasis" and 0.0 <= row["box_iou"] <= 1.0 and 0.0 <= row["cam_iou"] <= 1.0
    for name in ("prediction", "comparison", "probabilities", "cam"):
        assert isinstance(getattr(view.panels, name), Image.Image)
    assert len(view.label) == 14 and list(view.label.values()) == sorted(view.label.values(), reverse=True)
    assert all("threshold" in k for k in view.label)
    assert "box IoU" in view.summary and "NIH" in view.summary and f"{row['box_iou']:.2f}" in view.summary
    assert view.target_choices[0][1] == nih.TOP1 and view.target_choices[0][0].startswith("top-1 (")
    assert view.case.truth_source == "NIH" and view.forward_ran
    assert "render" in doc["timings_ms"] and "cam" in doc["timings_ms"]
    assert BOXED_IMAGE in view.status


def test_changing_method_class_threshold_reuses_the_forward_pass(
    cache: models.ModelCache, settings: state.Settings, images_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    predictor = cache.get(models.model_key(settings.source, settings.device))
    counter = CountingForward(predictor)
    predictor.forward = counter  # instance attribute: only this test's predictor is counted
    try:
        view = actions.analyse_case(cache, upload.read_upload(images_dir / BOXED_IMAGE), settings)
        assert counter.calls == 1
        for change in ({"method": "eigencam"}, {"target": "Nodule"}, {"threshold": 180}, {"method": "gradcam++"}):
            new = replace(settings, cam=replace(settings.cam, **change)).cam
            updated = actions.update_case(cache, view.case, replace(settings, cam=new))
            assert not updated.forward_ran
            cam = updated.json["cam"]
            assert cam["method"] == new.method and cam["threshold"] == new.threshold
            assert cam["target"] == (new.target or view.json["probabilities"][0]["label"])
            assert updated.json["probabilities"] == view.json["probabilities"]
        assert counter.calls == 1
    finally:
        del predictor.forward
    # Another model (a copy of the weights in another folder): the image is run again, through the new model.
    other = Path(shutil.copytree(model_dir, tmp_path / "same-weights"))
    moved = actions.update_case(cache, view.case, state.Settings(source=str(other), device="cpu"))
    assert moved.forward_ran and moved.case.key != view.case.key
    assert counter.calls == 1


# ------------------------------------------------------------------------------------------ user ground truth
def test_typed_boxes_parse_and_format_round_trip() -> None:
    classes = ["Atelectasis", "Infiltration", "Nodule", "Pleural_Thickening"]
    text = "10, 20, 110, 220, Nodule\n# comment\n\n5 6 50 60 infiltrate\n1;2;30;40;pleural thickening"
    boxes = boxes_text.parse_boxes_text(text, classes)
    assert [b.label for b in boxes] == ["Nodule", "Infiltration", "Pleural_Thickening"]
    assert boxes[0].xyxy == (10, 20, 110, 220)
    assert boxes_text.parse_boxes_text(boxes_text.format_boxes_text(boxes), classes) == boxes
    with pytest.raises(BoxError, match="line 1"):
        boxes_text.parse_boxes_text("1, 2, 3, Nodule", classes)
    with pytest.raises(BoxError, match="numbers"):
        boxes_text.parse_boxes_text("a, 2, 3, 4, Nodule", classes)
    with pytest.raises(BoxError, match="not one of"):
        boxes_text.parse_boxes_text("1, 2, 3, 4, Tumour", classes)


def test_user_ground_truth_replaces_nih_without_a_forward(cache: models.ModelCache, view: state.CaseView) -> None:
    predictor = cache.get(view.case.key)
    counter = CountingForward(predictor)
    predictor.forward = counter
    try:
        mine = actions.apply_truth(cache, view.case, "600, 300, 800, 500, Nodule\n100, 500, 300, 600, Atelectasis")
        assert [g["label"] for g in mine.json["ground_truth"]] == ["Nodule", "Atelectasis"]
        assert [r["label"] for r in mine.json["iou"]] == ["Nodule", "Atelectasis"]
        assert all(0.0 <= r["box_iou"] <= 1.0 for r in mine.json["iou"])
        assert mine.case.truth_source == "user" and "your boxes" in mine.summary
        # a box poking out of the image is clipped; one in the wrong order or outside is refused
        clipped = actions.apply_truth(cache, view.case, "900, 900, 2000, 2000, Nodule")
        assert clipped.json["ground_truth"][0]["xyxy"] == [900.0, 900.0, 1024.0, 1024.0]
        with pytest.raises(BoxError, match="wrong order"):
            actions.apply_truth(cache, view.case, "300, 300, 100, 100, Nodule")
        with pytest.raises(BoxError, match="outside"):
            actions.apply_truth(cache, view.case, "2000, 2000, 2100, 2100, Nodule")
        back = actions.restore_nih_truth(cache, mine.case)
        assert back.case.truth is None and back.json["ground_truth"] == view.json["ground_truth"]
        # the user's boxes survive a CAM change
        kept = actions.update_case(cache, mine.case, replace(mine.case.settings, cam=replace(mine.case.settings.cam, threshold=180)))
        assert kept.json["ground_truth"] == mine.json["ground_truth"]
        assert counter.calls == 0
    finally:
        del predictor.forward
    with pytest.raises(InputError, match="analyse a radiograph first"):
        actions.apply_truth(cache, None, "1, 2, 3, 4, Nodule")


def test_drawn_boxes_are_scaled_back_to_original_pixels(cache: models.ModelCache, view: state.CaseView) -> None:
    big = Radiograph(np.zeros((1536, 2048), dtype=np.uint8), "wide.png", "png")
    case = state.Case(big, view.case.key, view.case.inference, view.case.settings, None, view.case.analysis)
    shown = boxes_text.annotator_value(case)
    assert shown["image"].shape == (768, 1024, 3)  # longest side 1024
    drawn = {"image": "ignored", "boxes": [{"xmin": 10, "ymin": 20, "xmax": 110, "ymax": 220, "label": "Nodule"},
                                           {"xmin": 0, "ymin": 0, "xmax": 50, "ymax": 50, "label": None}]}  # fmt: skip
    boxes = boxes_text.boxes_from_annotator(drawn, case)
    assert boxes[0] == Box(20, 40, 220, 440, "Nodule")
    assert boxes[1].label == view.case.analysis.cam.target  # no class picked: the class being inspected
    assert boxes_text.boxes_from_annotator(None, case) == [] and boxes_text.boxes_from_annotator(drawn, None) == []
    # NIH boxes are drawn in the control at the shown scale
    nih = boxes_text.annotator_value(view.case)["boxes"]
    assert nih[0]["label"] == "Atelectasis" and nih[0]["xmin"] == round(view.case.analysis.ground_truth[0].x1)


# ------------------------------------------------------------------------------------------- review and export
def test_review_log_csv_columns_and_notes(view: state.CaseView, tmp_path: Path) -> None:
    log = review.record_review(None, view.case, "first  look\nCAM off")
    log = review.record_review(log, view.case, "second look")  # same image and model: replaced, not duplicated
    assert len(log) == 1 and review.note_for(log, view.case) == "second look"
    path = review.export_csv(log, tmp_path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    with path.open(encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == list(review.CSV_COLUMNS)
    for column in ("image", "class", "ground_truth_box", "predicted_box", "cam_box", "box_iou", "cam_iou",
                   "top_probabilities", "note", "model_source", "model_revision"):  # fmt: skip
        assert column in review.CSV_COLUMNS
    (row,) = rows
    doc = view.json
    assert row["image"] == BOXED_IMAGE and row["class"] == "Atelectasis" and row["note"] == "second look"
    assert json.loads(row["ground_truth_box"]) == doc["ground_truth"][0]["xyxy"]
    assert float(row["box_iou"]) == pytest.approx(doc["iou"][0]["box_iou"], abs=1e-4)
    assert float(row["cam_iou"]) == pytest.approx(doc["iou"][0]["cam_iou"], abs=1e-4)
    assert row["ground_truth_source"] == "NIH" and row["model_revision"] == doc["model"]["revision"]
    assert row["top_probabilities"].startswith(doc["probabilities"][0]["label"] + "=")
    assert row["model_source"] == doc["model"]["source"] and row["cam_method"] == "gradcam"
    assert review.review_table(log) == [[BOXED_IMAGE, "Atelectasis", row["box_iou"], row["cam_iou"], "second look"]]
    first = review.record_review(None, view.case, "first  look\nCAM off")
    assert first.rows[0].note == "first look CAM off"  # one line per row


def test_review_row_without_ground_truth(cache: models.ModelCache, settings: state.Settings, images_dir: Path) -> None:
    unboxed = actions.analyse_case(cache, upload.read_upload(images_dir / "00000002_000.png"), settings)
    assert unboxed.json["ground_truth"] == [] and "no ground truth" in unboxed.summary
    (row,) = review.record_review(None, unboxed.case, "").rows
    assert row.label == unboxed.json["cam"]["target"] and row.box_iou == "" and row.ground_truth_box == ""


def test_exports_refuse_empty_state(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no reviewed cases"):
        review.export_csv(review.ReviewLog(), tmp_path)
    with pytest.raises(InputError):
        review.export_report(None, tmp_path)
    with pytest.raises(InputError):
        review.record_review(None, None, "note")


def test_export_report_writes_png_and_cli_json(view: state.CaseView, tmp_path: Path) -> None:
    png, doc = review.export_report(view.case, tmp_path, size=512)
    assert png.name == "00000468_017_report.png" and doc.name == "00000468_017_prediction.json"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width >= 512
    data = json.loads(doc.read_text(encoding="utf-8"))
    assert set(data) == CLI_KEYS and data["iou"] == view.json["iou"]
    again = review.export_report(view.case, tmp_path, size=512)
    assert again[0].parent != png.parent  # every export gets its own folder


# ------------------------------------------------------------------------------------------------- examples
def test_examples_manifest_covers_every_shared_box_class(data_dir: Path) -> None:
    examples = resources.read_manifest(REPO / "examples" / "manifest.csv")
    assert len(examples) >= 8
    box_classes = {b.label for ex in examples for b in ex.boxes}
    assert {"Atelectasis", "Cardiomegaly", "Infiltration", "Nodule", "Pneumonia"} <= box_classes
    assert sum(1 for ex in examples if not ex.boxes) >= 2
    labels = {r["Image Index"]: r["Finding Labels"] for r in csv.DictReader((data_dir / "labels.csv").open())}
    from cxrdemo.datasets.truth import nih_boxes

    for ex in examples:
        assert labels[ex.image] == ex.finding_labels  # facts from NIH's label list
        assert [b.rounded() for b in ex.boxes] == [b.rounded() for b in nih_boxes(ex.image, 1024, 1024)]
    found = resources.available_examples(examples, data_dir / "images")
    assert [e.image for e in found] == [e.image for e in examples] and all(e.path and e.path.is_file() for e in found)
    assert resources.available_examples(examples, data_dir / "no-such-folder") == []
    assert "box: Atelectasis" in examples[0].caption


def test_examples_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CXRDEMO_EXAMPLES_DIR", raising=False)
    assert resources.examples_dir(tmp_path) == (tmp_path / "examples" / "images").resolve()
    monkeypatch.setenv("CXRDEMO_EXAMPLES_DIR", "../shared/data/nih/images")
    assert resources.examples_dir(tmp_path) == (tmp_path / "../shared/data/nih/images").resolve()


def test_describe_error_is_one_line() -> None:
    assert webview.describe_error(ImageError("bad file")) == "bad file"
    message = webview.describe_error(RuntimeError("boom\nsecond line"))
    assert "\n" not in message and "RuntimeError" in message and "bug" in message


def test_write_panels_formats_subsets_and_cleanup(view: state.CaseView, tmp_path: Path) -> None:
    stale = tmp_path / "panel-old-cam.jpg"
    stale.write_bytes(b"x")
    old = time.time() - 3 * 3600
    os.utime(stale, (old, old))
    paths = webview.write_page_panels(view.panels, tmp_path)
    assert list(paths) == list(webview.PANEL_NAMES) and not stale.exists()
    for name, path in paths.items():
        with Image.open(path) as img:
            assert img.format == webview.PANEL_FORMATS[name] and img.size == getattr(view.panels, name).size
            shown = np.asarray(img.convert("RGB"), dtype=np.int16)
        drawn = np.asarray(getattr(view.panels, name).convert("RGB"), dtype=np.int16)
        if webview.PANEL_FORMATS[name] == "PNG":
            assert np.array_equal(shown, drawn)
        else:  # JPEG 95 without chroma subsampling: visually lossless
            assert np.abs(shown - drawn).mean() < 2.0
    again = webview.write_page_panels(view.panels, tmp_path, names=("comparison", "cam"))
    assert list(again) == ["comparison", "cam"] and set(again.values()).isdisjoint(paths.values())


def test_example_caption_says_when_the_default_model_saw_the_image() -> None:
    ex = resources.Example("00000468_017.png", "Atelectasis|Pneumothorax", (Box(10, 10, 50, 50, "Atelectasis"),))
    # the findings first (a narrow gallery tile cuts the end of its caption), the file name last
    assert ex.caption == "Atelectasis, Pneumothorax | box: Atelectasis | 00000468_017.png"
    assert replace(ex, seen="train").caption == "Atelectasis, Pneumothorax | box: Atelectasis | seen in training | 00000468_017.png"
    assert "| seen in validation |" in replace(ex, seen="validation").caption


def test_summary_carries_the_analysis_notes(view: state.CaseView) -> None:
    noted = replace(view.case, analysis=replace(view.case.analysis, notes=["x.png is one of this model's training images"]))
    assert "> **Note:** x.png is one of this model's training images." in webview.summarise(noted)
