"""datasets/bridge.py: any layout written as NIH-format CSVs (names mapped, uncertain policy, linked images)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from cxrdemo.datasets.bridge import export_nih
from cxrdemo.datasets.nih import read_box_csv
from cxrdemo.datasets.samples import read_label_csv
from cxrdemo.errors import InputError
from tests import datasets_fixtures as fx

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
          "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,"
          "Support Devices")


def _chexpert(tmp_path: Path, images_dir: Path) -> tuple[Path, Path]:
    root = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for k, (cardio, edema, effusion) in enumerate([("1.0", "", "0.0"), ("0.0", "-1.0", "1.0"), ("", "0.0", "-1.0")]):
        sub = root / "valid" / f"patient{k}" / "study1"
        sub.mkdir(parents=True)
        shutil.copyfile(images_dir / fx.NEGATIVE[k % 2], sub / "view1_frontal.jpg")
        cells = [""] * 14
        cells[2], cells[5], cells[10] = cardio, edema, effusion
        rows.append(f"CheXpert-v1.0-small/valid/patient{k}/study1/view1_frontal.jpg,Male,50,Frontal,AP," + ",".join(cells))
    path = root / "valid.csv"
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path, root


def test_chexpert_labels_with_repeated_file_names_and_the_uncertain_policy(tmp_path: Path, images_dir: Path) -> None:
    labels, root = _chexpert(tmp_path, images_dir)
    done = export_nih(labels, None, root, tmp_path / "out")
    rows = read_label_csv(done.labels)
    # patient1 has an uncertain Edema and patient2 an uncertain Effusion: under ignore each is left out of that class
    # only (the 'Uncertain Labels' column), and keeps its other labels
    p0, p1, p2 = (f"valid__patient{k}__study1__view1_frontal.jpg" for k in range(3))
    assert list(rows) == [p0, p1, p2]
    assert [(rows[p].labels, rows[p].uncertain) for p in (p0, p1, p2)] == [
        (("Cardiomegaly",), ()), (("Effusion",), ("Edema",)), ((), ("Effusion",))]
    assert (done.images / p0).is_file() and done.boxes is None
    assert any(n.startswith("uncertain labels (-1), policy 'ignore': each image left out of that class's AUC only")
               and n.endswith(": Effusion 1, Edema 1") for n in done.notes)
    assert any(n.startswith("not stated by the data set (no AUC): Atelectasis, Infiltration") for n in done.notes)
    assert not any("Lung Opacity" in n for n in done.notes)  # blank in every row: never stated, nothing to map
    positive = export_nih(labels, None, root, tmp_path / "pos", policy="positive")
    pos = read_label_csv(positive.labels)
    assert [(pos[p].labels, pos[p].uncertain) for p in (p1, p2)] == [(("Effusion", "Edema"), ()), (("Effusion",), ())]
    assert "uncertain labels (-1) counted as positive (policy 'positive'): Effusion 1, Edema 1" in positive.notes
    neg = read_label_csv(export_nih(labels, None, root, tmp_path / "neg", policy="negative").labels)
    assert [(neg[p].labels, neg[p].uncertain) for p in (p1, p2)] == [(("Effusion",), ()), ((), ())]
    with pytest.raises(InputError, match="--uncertain 'maybe'"):
        export_nih(labels, None, root, tmp_path / "x", policy="maybe")


def test_boxes_into_nih_frame_and_readers_union(tmp_path: Path, data_dir: Path, images_dir: Path) -> None:
    from PIL import Image

    ref = fx.nih_reference(data_dir)
    stem, label, box = next(r for r in ref if r[0] == "00013125_000")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.open(images_dir / f"{stem}.png").convert("L").resize((512, 256)).save(imgs / f"{stem}.png")
    ann = fx.write_vindr(tmp_path, [(stem, label, box.scaled(0.5, 0.25))])  # boxes in the 512 x 256 copy's pixels
    done = export_nih(ann, ann, imgs, tmp_path / "out")
    boxes = read_box_csv(done.boxes)[f"{stem}.png"]
    assert len(boxes) == 2  # R1 and R2: the union of readers
    for b in boxes:
        assert b.xyxy == pytest.approx(box.xyxy, abs=1e-9) and b.label == "Cardiomegaly"
    assert done.images == imgs and any("2 readers" in n for n in done.notes)


def test_nih_files_pass_through_untouched(data_dir: Path, tmp_path: Path) -> None:
    done = export_nih(data_dir / "labels.csv", data_dir / "boxes.csv", data_dir / "images", tmp_path / "out")
    assert not done.converted and done.labels == data_dir / "labels.csv" and not (tmp_path / "out").exists()


def test_a_shared_file_name_never_finds_the_wrong_image(tmp_path: Path) -> None:
    from cxrdemo.datasets.files import ImageIndex
    from cxrdemo.datasets.limits import LOCAL

    for k in (1, 2):
        sub = tmp_path / "valid" / f"patient{k}" / "study1"
        sub.mkdir(parents=True)
        (sub / "view1_frontal.jpg").write_bytes(b"")
    (tmp_path / "solo.dcm").write_bytes(b"")
    index = ImageIndex.build(tmp_path, LOCAL)
    assert index.find("view1_frontal.jpg") is None  # two files share the name
    assert index.find("CheXpert-v1.0-small/valid/patient2/study1/view1_frontal.jpg") == tmp_path / "valid/patient2/study1/view1_frontal.jpg"
    assert index.find("patient1_study1_view1_frontal") == tmp_path / "valid/patient1/study1/view1_frontal.jpg"
    assert index.find("solo") == index.find("solo.dcm") == tmp_path / "solo.dcm"
    assert ImageIndex.build(tmp_path, LOCAL.__class__(**{**LOCAL.__dict__, "scan_files": 2})).truncated


def test_rsna_boxes_scored_only_through_an_alias(tmp_path: Path, data_dir: Path, images_dir: Path) -> None:
    from cxrdemo.evaluate import parse_aliases

    ref = fx.nih_reference(data_dir)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for stem in {s for s, _, _ in ref}:
        (imgs / f"{stem}.png").symlink_to(images_dir / f"{stem}.png")
    path = fx.write_rsna(tmp_path, ref)
    plain = export_nih(path, path, imgs, tmp_path / "plain")
    assert read_box_csv(plain.boxes) == {} and any("'Lung Opacity' means none" in n for n in plain.notes)
    aliased = export_nih(path, path, imgs, tmp_path / "alias", aliases=parse_aliases(["Lung Opacity=Pneumonia"]))
    boxes = read_box_csv(aliased.boxes)
    assert sum(len(v) for v in boxes.values()) == len(ref) and {b.label for v in boxes.values() for b in v} == {"Pneumonia"}
    assert any("scored as 'Pneumonia' because an alias asked for it" in n for n in aliased.notes)
    with pytest.raises(InputError, match="write NAME=LABEL"):
        parse_aliases(["Lung Opacity"])
