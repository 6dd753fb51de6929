"""The audit page's data-set registry (CXRDEMO_AUDIT_DATASETS) with ground truth in any layout."""

from __future__ import annotations

from pathlib import Path

from cxrdemo.datasets.samples import read_label_csv
from cxrdemo.datasets.nih import read_box_csv
from cxrdemo.webapp.datasets import ENV, DatasetRegistry, parse_entry
from tests import datasets_fixtures as fx


def test_registry_converts_other_layouts_once(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    ref = fx.nih_reference(data_dir)
    imgs = tmp_path / "imgs" / "train"
    imgs.mkdir(parents=True)
    for stem in {s for s, _, _ in ref}:
        (imgs / f"{stem}.png").symlink_to(data_dir / "images" / f"{stem}.png")
    ann = fx.write_vindr(tmp_path, ref)
    odd = tmp_path / "vindr-boxes.txt"  # a name that says nothing: the prefix forces the layout
    odd.write_text(ann.read_text())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    monkeypatch.setenv(ENV, f"vin={tmp_path / 'imgs'}:vindr:{odd}:vindr:{odd};broken={tmp_path / 'imgs'}:{bad}")
    registry = DatasetRegistry(tmp_path, [], tmp_path / "none", tmp_path / "work")
    (vin,) = registry.all()
    assert vin.name == "vin" and vin.labels.is_relative_to(tmp_path / "work")
    labels, boxes = read_label_csv(vin.labels), read_box_csv(vin.boxes)
    assert set(labels) == {f"{s}.png" for s, _, _ in ref}  # the "No finding" rows' images are not in imgs: left out
    # every reader's box, in NIH's 1024 frame (these images are 1024 px: the same numbers)
    assert sum(len(v) for v in boxes.values()) == 2 * len(ref)
    assert any("linked into one folder" in n for n in vin.notes) and any("readers" in n for n in vin.notes)
    (note,) = registry.notes
    assert note.startswith(f"{ENV} entry 'broken':") and "layout not recognised" in note and note.endswith("(left out)")


def test_entry_with_layout_prefixes_parses(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "a.json").write_text("{}")
    d = parse_entry(f"x={tmp_path / 'imgs'}:coco:{tmp_path / 'a.json'}:coco:{tmp_path / 'a.json'}", tmp_path)
    assert (d.labels_layout, d.boxes_layout, d.labels, d.boxes) == ("coco", "coco", tmp_path / "a.json", tmp_path / "a.json")
    plain = parse_entry(f"y={tmp_path / 'imgs'}:{tmp_path / 'a.json'}", tmp_path)
    assert plain.labels_layout is None and plain.boxes is None


#: A VinDr-style image id: not an NIH name, so NIH's embedded list cannot know it.
VINDR_ID = "9a5e1f0c2b7d4e6f8a1b3c5d7e9f0a2b"


def _vindr_upload(data_dir: Path, tmp_path: Path):
    """A VinDr-layout data set of one image (a DICOM of a shared NIH film, listed under :data:`VINDR_ID` with that
    film's NIH box drawn by two readers) and the same film as a half-size PNG upload named by the id:
    ``(image_id, NIH stem, label, box, annotations CSV, uploads folder)``."""
    import numpy as np
    from PIL import Image

    from tests.dicom_fixtures import write_dicom

    stem, label, box = next(r for r in fx.nih_reference(data_dir) if r[1] in ("Atelectasis", "Cardiomegaly", "Effusion"))
    imgs = tmp_path / "vindr" / "train"
    imgs.mkdir(parents=True)
    film = Image.open(data_dir / "images" / f"{stem}.png").convert("L")
    write_dicom(imgs / f"{VINDR_ID}.dicom", np.asarray(film, dtype=np.uint16))
    ann = tmp_path / "annotations_train.csv"
    ann.write_text("image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
                   + "".join(f"{VINDR_ID},{rad},{label},{box.x1!r},{box.y1!r},{box.x2!r},{box.y2!r}\n" for rad in ("R1", "R2")))
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    film.resize((512, 512)).save(uploads / f"{VINDR_ID}.png")
    return VINDR_ID, stem, label, box, ann, uploads


def test_single_case_page_finds_ground_truth_in_a_configured_data_set(data_dir: Path, model_dir: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """An uploaded image that NIH's list does not know (a VinDr-style id) gets its boxes from the configured data
    set that lists it: by its file name, or by its name without the extension (the DICOM listed, a PNG copy at
    half size uploaded: the boxes halved, as NIH's are for a 512 px copy; the bridge wrote them in NIH's 1024 frame
    as repr floats from the 1024 px DICOM, so the numbers come back to float rounding, 1e-6 px). Both readers' boxes
    are shown; the legend, the IoU table and the notes name the data set; with the variable unset nothing is looked
    up, and an NIH image keeps NIH's list."""
    import numpy as np

    from cxrdemo.compare import SOURCE_NIH
    from cxrdemo.imaging import load_image
    from cxrdemo.webapp.actions import analyse_case
    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.state import Settings
    from cxrdemo.webapp.view import iou_table

    image_id, stem, label, box, ann, uploads = _vindr_upload(data_dir, tmp_path)
    settings = Settings(source=str(model_dir), device="cpu")

    def analyse(resources, path: Path):
        return analyse_case(resources.cache, load_image(path), settings, lookup=resources.truth_lookup).case

    monkeypatch.delenv(ENV, raising=False)
    plain = make_resources(tmp_path, examples_folder=tmp_path / "none", export_root=tmp_path / "exports0")
    assert plain.truth_lookup(f"{image_id}.png", 512, 512) is None
    assert not analyse(plain, uploads / f"{image_id}.png").analysis.ground_truth

    monkeypatch.setenv(ENV, f"vin={tmp_path / 'vindr'}:vindr:{ann}:vindr:{ann}")
    resources = make_resources(tmp_path, examples_folder=tmp_path / "none", export_root=tmp_path / "exports")
    case = analyse(resources, uploads / f"{image_id}.png")
    truth = case.analysis.ground_truth
    assert case.truth_source == "data set vin" and len(truth) == 2
    for got in truth:
        assert got.label == label
        np.testing.assert_allclose(got.xyxy, [v / 2 for v in box.xyxy], rtol=0, atol=1e-6)
    assert [r.label for r in case.analysis.ious] == [label, label]
    assert "radiologist boxes of data set vin" in iou_table(case)
    notes = " ".join(case.analysis.notes)
    assert "ground truth from data set 'vin' (listed as '9a5e1f0c2b7d4e6f8a1b3c5d7e9f0a2b.dicom')" in notes
    assert "2 readers' boxes" in notes
    # the same file as listed: by its own name, at its own size
    listed = resources.truth_lookup(f"{image_id}.dicom", 1024, 1024)
    assert listed is not None and listed.notes[0] == "ground truth from data set 'vin'"
    np.testing.assert_allclose(listed.boxes[0].xyxy, box.xyxy, rtol=0, atol=1e-6)
    # an NIH image keeps NIH's list (looked up first)
    nih = analyse(resources, data_dir / "images" / f"{stem}.png")
    assert nih.truth_source == SOURCE_NIH
    # Apply with the text unchanged keeps the data set's boxes as they are (not "your boxes" a rounding off)
    from cxrdemo.webapp.actions import apply_truth
    from cxrdemo.webapp.boxes_text import format_boxes_text

    applied = apply_truth(resources.cache, case, format_boxes_text(truth), lookup=resources.truth_lookup).case
    assert applied.truth_source == "data set vin" and applied.analysis.ground_truth == truth


def test_served_app_predict_takes_ground_truth_from_a_configured_data_set(data_dir: Path, model_dir: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """The served app's ``predict`` endpoint (the same handlers wiring as the page) gives the data set's boxes for
    an upload named by a VinDr id: both readers' boxes, halved for the half-size copy (the JSON's 0.1 px rounding:
    0.05 px, plus float rounding)."""
    import numpy as np
    from gradio_client import Client, handle_file

    import app_server

    image_id, _, label, box, ann, uploads = _vindr_upload(data_dir, tmp_path)
    monkeypatch.setenv(ENV, f"vin={tmp_path / 'vindr'}:vindr:{ann}:vindr:{ann}")
    running = app_server.start_app(model_dir, tmp_path / "none", tmp_path / "exports")
    try:
        client = Client(running.url, verbose=False)
        doc, *_ = client.predict(handle_file(str(uploads / f"{image_id}.png")), str(model_dir), "cpu", "gradcam", "top-1",
                                 127, "", "", api_name="/predict")  # fmt: skip
    finally:
        running.close()
    assert [g["label"] for g in doc["ground_truth"]] == [label, label]
    for g in doc["ground_truth"]:
        np.testing.assert_allclose(g["xyxy"], [v / 2 for v in box.xyxy], rtol=0, atol=0.05 + 1e-6)
    assert [r["label"] for r in doc["iou"]] == [label, label]
