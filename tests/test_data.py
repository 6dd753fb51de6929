"""NIH-format readers, the patient-wise split, the image cache, box-consistent augmentation, the Dataset."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdemo.boxes import Box
from cxrdemo.training.dataset import (
    Augment,
    CxrDataset,
    ImageCache,
    Sample,
    load_samples,
    read_box_csv,
    read_label_csv,
    split_patients,
)

REPO = Path(__file__).resolve().parent.parent
NIH = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))

LABELS = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age\n"
    "00000001_000.png,Cardiomegaly|Effusion,0,1,57\n"
    "00000002_000.png,No Finding,0,2,40\n"
    "00000003_000.png,Infiltration|Not_A_Label,0,3,40\n"
    "00000004_000.png,Nodule,0,4,40\n"
)
BOXES = (
    "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
    "00000001_000.png,Cardiomegaly,256,512,512,256\n"
    "00000003_000.png,Infiltrate,0,0,1024,1024\n"
    "00000003_000.png,Nodule,100,100,0,50\n"  # zero width: dropped
)


@pytest.fixture()
def tiny_nih(tmp_path: Path) -> Path:
    """A folder with synthetic PNGs (not NIH pixels) and NIH-format CSVs; image 1 is a 256 px copy."""
    images = tmp_path / "images"
    images.mkdir()
    for name, side in [("00000001_000.png", 256), ("00000002_000.png", 96), ("00000003_000.png", 96), ("unlabelled.png", 96)]:
        Image.fromarray(np.full((side, side), 100, np.uint8)).save(images / name)
    (tmp_path / "labels.csv.gz").write_bytes(gzip.compress(LABELS.encode()))
    (tmp_path / "boxes.csv").write_text(BOXES)
    return tmp_path


def test_read_label_and_box_csv(tiny_nih: Path):
    rows = read_label_csv(tiny_nih / "labels.csv.gz")
    assert rows["00000001_000.png"].labels == ("Cardiomegaly", "Effusion")
    assert rows["00000002_000.png"].labels == ()
    assert rows["00000001_000.png"].patient == "1"
    boxes = read_box_csv(tiny_nih / "boxes.csv")
    assert [b.label for b in boxes["00000003_000.png"]] == ["Infiltration"]  # "Infiltrate" renamed; zero-width dropped
    assert boxes["00000001_000.png"][0].xyxy == (256.0, 512.0, 768.0, 768.0)


def test_load_samples_uses_present_images_and_scales_boxes(tiny_nih: Path):
    found = load_samples(tiny_nih / "images", tiny_nih / "labels.csv.gz", tiny_nih / "boxes.csv")
    names = [s.name for s in found.samples]
    assert names == ["00000001_000.png", "00000002_000.png", "00000003_000.png"]  # 00000004 has no file
    assert found.missing_labels == ["unlabelled.png"]
    assert found.unknown_labels == {"Not_A_Label": 1}
    s1 = found.samples[0]
    assert s1.boxes[0].xyxy == pytest.approx((0.25, 0.5, 0.75, 0.75))
    # the 256 px copy: NIH's 1024 px box scaled by 1/4
    assert s1.boxes_in_pixels(256, 256)[0].xyxy == pytest.approx((64, 128, 192, 192))
    assert s1.target(["Effusion", "Mass", "Cardiomegaly"]).tolist() == [1.0, 0.0, 1.0]
    only = load_samples(tiny_nih / "images", tiny_nih / "labels.csv.gz", names=["00000002_000.png"])
    assert [s.name for s in only.samples] == ["00000002_000.png"]


def test_uncertain_labels_column(tiny_nih: Path, tmp_path: Path):
    from cxrdemo.datasets.samples import require_certain, uncertain_counts
    from cxrdemo.errors import InputError

    labels = tmp_path / "uncertain.csv"
    labels.write_text("Image Index,Finding Labels,Uncertain Labels\n"
                      "00000001_000.png,Cardiomegaly,Effusion|Not_A_Label\n00000002_000.png,No Finding,\n")
    rows = read_label_csv(labels)
    assert (rows["00000001_000.png"].uncertain, rows["00000002_000.png"].uncertain) == (("Effusion", "Not_A_Label"), ())
    found = load_samples(tiny_nih / "images", labels)
    s1, s2 = found.samples
    assert s1.uncertain == {"Effusion"} and not s2.uncertain  # a class outside the model's: dropped
    t = s1.target(["Effusion", "Mass", "Cardiomegaly"])
    assert np.isnan(t[0]) and t[1:].tolist() == [0.0, 1.0]  # never read as negative
    assert uncertain_counts(found.samples, ["Cardiomegaly", "Effusion"]) == {"Effusion": 1}
    with pytest.raises(InputError, match="1 image\\(s\\) carry uncertain labels .*--uncertain positive or negative"):
        require_certain(found.samples, labels)
    from cxrdemo.training.cv import targets_for

    with pytest.raises(InputError, match="uncertain"):  # cross-validation's targets: refused too, never negative
        targets_for(["00000001_000.png"], labels, ["Effusion"])
    assert targets_for(["00000002_000.png"], labels, ["Effusion"]).tolist() == [[0.0]]
    plain = load_samples(tiny_nih / "images", tiny_nih / "labels.csv.gz")  # NIH's own file: nothing uncertain
    require_certain(plain.samples, "labels.csv.gz")
    assert not any(s.uncertain for s in plain.samples)
    labels.write_text("Image Index,Finding Labels,Uncertain Labels\n00000001_000.png,Cardiomegaly,Cardiomegaly\n")
    with pytest.raises(InputError, match="'Cardiomegaly' both in 'Finding Labels' and in 'Uncertain Labels'"):
        read_label_csv(labels)


def _synthetic_samples(n: int) -> list[Sample]:
    labels = ["Atelectasis", "Effusion", "Nodule", "Hernia"]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        patient = str(i // 2)  # two images per patient
        found = tuple(l for l in labels if rng.random() < 0.3)
        boxes = (Box(0.1, 0.1, 0.3, 0.3, "Nodule"),) if i % 10 == 0 else ()
        out.append(Sample(f"{i:08d}_000.png", Path("/nonexistent"), found, patient, boxes))
    return out


def test_split_is_patient_wise_stratified_and_deterministic():
    samples = _synthetic_samples(100)
    train, val = split_patients(samples, 0.2, seed=3)
    assert len(train) + len(val) == 100 and 10 <= len(val) <= 30
    assert not {s.patient for s in train} & {s.patient for s in val}
    assert any(s.boxes for s in val) and any(s.boxes for s in train)
    again = split_patients(samples, 0.2, seed=3)
    assert [s.name for s in again[1]] == [s.name for s in val]
    other = split_patients(samples, 0.2, seed=4)
    assert [s.name for s in other[1]] != [s.name for s in val]


def test_image_cache_memory_and_disk(tiny_nih: Path, tmp_path: Path):
    path = tiny_nih / "images" / "00000001_000.png"
    cache = ImageCache(32, tmp_path / "cache")
    a = cache.get(path)
    assert a.shape == (32, 32) and a.dtype == np.uint8
    files = list((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1 and "-32-" in files[0].name
    b = ImageCache(32, tmp_path / "cache", memory=False).get(path)  # read back from disk
    assert np.array_equal(a, b)
    assert ImageCache(16).get(path).shape == (16, 16)  # another size is another entry


def test_augment_keeps_box_on_the_content():
    size = 128
    img = np.zeros((size, size), np.uint8)
    img[40:80, 30:60] = 255  # the "lesion"
    box = np.array([[30 / size, 40 / size, 60 / size, 80 / size]], np.float32)
    aug = Augment(scale=0.1, translate=0.08, rotate=0.0, brightness=0.0, contrast=0.0)
    for seed in range(5):
        out, moved = aug(img, box, np.random.default_rng(seed))
        ys, xs = np.nonzero(out > 127)
        seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / size
        assert moved[0] == pytest.approx(seen, abs=2.5 / size)
    rotated, rbox = Augment(rotate=5.0)(img, box, np.random.default_rng(1))
    assert rotated.shape == img.shape and np.all((rbox >= 0) & (rbox <= 1))
    assert rbox[0, 2] > rbox[0, 0] and rbox[0, 3] > rbox[0, 1]


def test_dataset_items(tiny_nih: Path):
    found = load_samples(tiny_nih / "images", tiny_nih / "labels.csv.gz", tiny_nih / "boxes.csv")
    ds = CxrDataset(found.samples, ["Cardiomegaly", "Effusion", "Infiltration"], ["Cardiomegaly", "Infiltration"], ImageCache(32), Augment(), seed=1)
    item = ds[0]
    assert item["image"].shape == (32, 32) and item["target"].tolist() == [1.0, 1.0, 0.0]
    assert item["box_class"].tolist() == [0, -1, -1, -1]
    ds.set_epoch(3)
    assert np.array_equal(ds[0]["image"].numpy(), ds[0]["image"].numpy())  # same (seed, epoch, index) -> same draw
    assert ds[2]["box_class"].tolist()[0] == 1


def test_shared_nih_folder():
    if not (NIH / "images").is_dir():
        pytest.skip(f"shared NIH data not found at {NIH}; set CXRDEMO_DATA")
    found = load_samples(NIH / "images", NIH / "labels.csv", NIH / "boxes.csv")
    boxed = [s for s in found.samples if s.boxes]
    assert len(found.samples) >= 500 and len(boxed) == 11
    assert "Infiltration" in {b.label for s in boxed for b in s.boxes}
    assert all(0 <= v <= 1 for s in boxed for b in s.boxes for v in b.xyxy)
