"""Every ground-truth layout read from small files built from the shared NIH boxes (tests/datasets_fixtures.py).

The key check: the same NIH boxes written in each box layout come back as the same boxes as NIH's own reader gives
(to float precision), and the same region written as a box, a polygon and an RLE mask rasterises to the same mask.

Tolerances. A box written as corners is read back bit for bit (``repr`` round-trips a float). A box written as
``x, y, w, h`` is read back as ``x + (x2 - x1)``: one subtraction and one addition in float64, each rounding by at
most half an ulp of a number below 2048 (2**-42), so corners agree within 1e-9 px. Masks: a box is rasterised by
its pixel centres (``box_mask``: ``x1 <= c + 0.5 < x2``), a polygon by the same centre rule with half-open edges
(:func:`cxrdemo.datasets.masks.rasterise_polygon`), and an RLE mask is the box's mask encoded pixel for pixel, so
all three are compared for exact equality: zero pixels may differ, the boundary included (no centre lies on a
non-integer-plus-half edge here, and the half-open rule decides the same way in both when one does). An RLE mask's
``box`` is its pixels' bounds: each side within 0.5 px of the float box (the centre rule moves an edge to the
nearest pixel boundary).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.boxes import Box
from cxrdemo.datasets.base import box_mask
from cxrdemo.datasets.loader import REGISTRY, detect_layout, load_ground_truth, split_spec
from tests import datasets_fixtures as fx

TOL = 1e-9


@pytest.fixture(scope="module")
def ref(data_dir: Path) -> list[tuple[str, str, Box]]:
    boxes = fx.nih_reference(data_dir)
    assert len(boxes) == 11  # the shared set's 11 NIH boxes (../shared/data/README.md)
    return boxes


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, images_dir: Path, ref) -> Path:
    return fx.image_folder(tmp_path_factory.mktemp("imgs"), images_dir, [s for s, _, _ in ref])


def _boxes(gt, reader: str | None = None) -> list[tuple[str, str, tuple[float, ...]]]:
    return sorted((Path(i).stem, r.label, r.box.xyxy) for i, rs in gt.regions.items() for r in rs
                  if reader is None or r.reader == reader)


def _same(got, ref) -> None:
    want = sorted((s, lab, b.xyxy) for s, lab, b in ref)
    assert [(s, lab) for s, lab, _ in got] == [(s, lab) for s, lab, _ in want]
    np.testing.assert_allclose([b for _, _, b in got], [b for _, _, b in want], rtol=0, atol=TOL)


WRITERS = {
    "vindr": fx.write_vindr,
    "vinbigdata": fx.write_vinbigdata,
    "rsna": fx.write_rsna,
    "mscxr": fx.write_mscxr,
    "chestxdet": lambda root, ref: fx.write_chestxdet(root, ref, polygon_first=False),
    "coco": fx.write_coco,
}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_same_nih_boxes_in_every_box_layout(layout: str, ref, folder: Path, tmp_path: Path) -> None:
    path = WRITERS[layout](tmp_path, ref)
    assert detect_layout(path).name == layout
    gt = load_ground_truth(path, folder)
    assert gt.layout == layout
    if layout == "vindr":
        _same(_boxes(gt, "R1"), ref)
        _same(_boxes(gt, "R2"), ref)
    elif layout == "rsna":  # RSNA's class is its own: every box is a "Lung Opacity"
        _same([(s, "x", b) for s, _, b in _boxes(gt)], [(s, "x", b) for s, _, b in ref])
    else:
        _same(_boxes(gt), ref)
    # every boxed image is found under the nested folder, whatever its extension (DICOM, JPEG, PNG)
    for s, _, _ in ref:
        ids = [i for i in gt.images if Path(i).stem == s]
        assert ids and gt.images[ids[0]].path is not None, (layout, s)


def test_images_found_by_id_with_any_extension_and_sized_from_headers(ref, folder: Path, tmp_path: Path) -> None:
    gt = load_ground_truth(fx.write_rsna(tmp_path, ref), folder)
    suffixes = {gt.images[i].path.suffix for i in gt.images if gt.images[i].path is not None}
    assert {".dicom", ".dcm", ".jpg", ".png"} <= suffixes
    for i, entry in gt.images.items():
        assert gt.size_of(i) == (1024, 1024)  # DICOM Rows/Columns, JPEG and PNG headers


def test_a_known_box_lands_on_the_right_pixels(ref, folder: Path, tmp_path: Path) -> None:
    # NIH: 00013125_000.png Cardiomegaly at x=169.04126984127, y=406.349206349206, w=662.078306878307,
    # h=418.268783068783: corners (169.04, 406.35) - (831.12, 824.62)
    gt = load_ground_truth(fx.write_vindr(tmp_path, ref), folder)
    (region,) = [r for r in gt.regions["00013125_000"] if r.reader == "R1" and r.label == "Cardiomegaly"]
    m = region.mask(1024, 1024)
    assert m[406, 169] and m[824, 830]  # centres (169.5, 406.5) and (830.5, 824.5) inside
    assert not m[405, 169] and not m[406, 168] and not m[825, 830] and not m[824, 831]
    assert m.sum() == (831 - 169) * (825 - 406)


def test_awkward_rows(ref, folder: Path, tmp_path: Path) -> None:
    neg = [Path(n).stem for n in fx.NEGATIVE]
    vindr = load_ground_truth(fx.write_vindr(tmp_path, ref), folder)
    assert vindr.readers() == ["R1", "R2"]
    for n in neg:  # "No finding" rows: a label, no region
        assert vindr.regions_of(n) == [] and vindr.labels[n]["No finding"] == 1
    assert vindr.labels[neg[0]]["Aortic enlargement"] == 1  # one of two readers marked it: positive, and noted
    assert any("differ between readers" in note for note in vindr.notes)
    assert vindr.labels[ref[0][0]]["Nodule/Mass"] == 1

    kaggle = load_ground_truth(fx.write_vinbigdata(tmp_path, ref))
    assert all(kaggle.regions_of(n) == [] and kaggle.labels[n]["No finding"] == 1 for n in neg)

    rsna = load_ground_truth(fx.write_rsna(tmp_path, ref))
    for n in neg:  # Target 0: negative, no box; the class-info sibling is read
        assert rsna.regions_of(n) == [] and rsna.labels[n]["Lung Opacity"] == 0 and rsna.labels[n]["Normal"] == 1
    assert all(r.label == "Lung Opacity" for rs in rsna.regions.values() for r in rs)

    siim = load_ground_truth(fx.write_siim(tmp_path, ref))
    assert siim.layout == "siim"
    for n in neg:  # -1 (written " -1" with the leading space)
        assert siim.regions_of(n) == [] and siim.labels[n]["Pneumothorax"] == 0


def _mask_regions(gt) -> dict[tuple[str, int], object]:
    out = {}
    for i, rs in gt.regions.items():
        for k, r in enumerate(rs):
            if r.is_mask:
                out[(Path(i).stem, k)] = r
    return out


def test_box_polygon_and_rle_rasterise_to_the_same_mask(ref, folder: Path, tmp_path: Path) -> None:
    by_stem = {}
    for s, lab, b in ref:
        by_stem.setdefault(s, []).append(b)
    # SIIM: every box as a relative, column-major RLE mask
    siim = load_ground_truth(fx.write_siim(tmp_path, ref), folder)
    got = [(Path(i).stem, r) for i, rs in siim.regions.items() for r in rs]
    assert len(got) == len(ref) and all(r.is_mask for _, r in got)
    for stem, r in got:
        m = r.mask(1024, 1024)
        matches = [b for b in by_stem[stem] if np.array_equal(m, box_mask(b, 1024, 1024))]
        assert matches, stem
        assert max(abs(p - q) for p, q in zip(r.box.xyxy, matches[0].xyxy)) <= 0.5
    # COCO: a polygon, a compressed RLE and an uncompressed RLE segmentation
    coco = load_ground_truth(fx.write_coco(tmp_path, ref), folder)
    masks = [(Path(i).stem, r) for i, rs in coco.regions.items() for r in rs if r.is_mask]
    assert len(masks) == 3
    for stem, r in masks:
        assert any(np.array_equal(r.mask(1024, 1024), box_mask(b, 1024, 1024)) for b in by_stem[stem])
        assert any(r.box.xyxy == pytest.approx(b.xyxy, abs=TOL) for b in by_stem[stem])  # the bbox, kept
    # ChestX-Det: the first image's boxes as 4-vertex polygons
    cxd = load_ground_truth(fx.write_chestxdet(tmp_path, ref), folder)
    polys = [(Path(i).stem, r) for i, rs in cxd.regions.items() for r in rs if r.is_mask]
    assert polys
    for stem, r in polys:
        assert np.array_equal(r.mask(1024, 1024), box_mask(r.box, 1024, 1024))
    _same(_boxes(cxd), ref)


def test_chexlocalize_rle_and_polygons(ref, tmp_path: Path) -> None:
    seg_path, ann_path = fx.write_chexlocalize(tmp_path, ref)
    seg, ann = load_ground_truth(seg_path), load_ground_truth(ann_path)
    assert seg.layout == ann.layout == "chexlocalize"
    for cxr in seg.images:
        stem = cxr.removeprefix("patient").removesuffix("_study1_view1_frontal")
        boxes = [b for s, _, b in ref if s == stem]
        union = np.zeros((1024, 1024), bool)
        for b in boxes:
            union |= box_mask(b, 1024, 1024)
        seg_union = np.zeros_like(union)
        for r in seg.regions_of(cxr):
            seg_union |= r.mask(1024, 1024)
        ann_union = np.zeros_like(union)
        for r in ann.regions_of(cxr):
            ann_union |= r.mask(1024, 1024)
        assert np.array_equal(seg_union, union) and np.array_equal(ann_union, union)
        assert seg.labels[cxr]["Support Devices"] == 0  # an empty mask: stated negative
    assert seg.size_of(next(iter(seg.images))) == (1024, 1024)


def test_chexlocalize_id_finds_the_chexpert_image(tmp_path: Path, images_dir: Path) -> None:
    import shutil

    sub = tmp_path / "imgs" / "valid" / "patient64541" / "study1"
    sub.mkdir(parents=True)
    shutil.copyfile(images_dir / "00000001_000.png", sub / "view1_frontal.png")
    path = tmp_path / "gt_annotations_val.json"
    path.write_text(json.dumps({"patient64541_study1_view1_frontal": {"img_size": [1024, 1024],
                                                                       "Edema": [[[10, 10], [50, 10], [50, 40]]]}}))
    gt = load_ground_truth(path, tmp_path / "imgs")
    assert gt.images["patient64541_study1_view1_frontal"].path == sub / "view1_frontal.png"


def test_nih_frame_scaled_to_a_smaller_copy(data_dir: Path, tmp_path: Path, ref) -> None:
    from PIL import Image

    stem, label, box = next(r for r in ref if r[0] == "00013125_000")
    (tmp_path / "imgs").mkdir()
    Image.open(data_dir / "images" / f"{stem}.png").convert("L").resize((256, 256)).save(tmp_path / "imgs" / f"{stem}.png")
    gt = load_ground_truth(data_dir / "boxes.csv", tmp_path / "imgs")
    (r,) = gt.regions[f"{stem}.png"]
    assert r.box.xyxy == pytest.approx(tuple(v / 4 for v in box.xyxy), abs=TOL)
    assert any("scaled" in n for n in gt.notes)


def test_nih_label_csv_and_embedded_default(data_dir: Path) -> None:
    gt = load_ground_truth(data_dir / "labels.csv", data_dir / "images")
    assert len(gt.images) == 562 and sum(len(v) for v in gt.regions.values()) == 11
    assert gt.labels["00013125_000.png"]["Cardiomegaly"] == 1
    emb = load_ground_truth("nih")
    assert (len(emb.images), sum(len(v) for v in emb.regions.values())) == (880, 984)  # NIH's whole list


def test_chexpert_labels_keep_uncertain(tmp_path: Path) -> None:
    path = tmp_path / "valid.csv"
    path.write_text("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
                    "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,"
                    "Pleural Other,Fracture,Support Devices\n"
                    "CheXpert-v1.0-small/valid/patient1/study1/view1_frontal.jpg,Male,50,Frontal,AP,,,1.0,-1.0,,0.0,,,,,,,,\n")
    gt = load_ground_truth(path)
    assert gt.layout == "chexpert"
    (labels,) = gt.labels.values()
    assert labels == {"Cardiomegaly": 1, "Lung Opacity": -1, "Edema": 0}


def test_prefix_forces_the_layout(ref, tmp_path: Path) -> None:
    path = fx.write_vindr(tmp_path, ref)
    assert split_spec(f"vindr:{path}") == ("vindr", str(path))
    assert split_spec("C:/data/x.csv") == (None, "C:/data/x.csv")
    assert load_ground_truth(f"vindr:{path}").layout == "vindr"
    odd = tmp_path / "boxes.txt"
    odd.write_text(path.read_text())
    assert load_ground_truth(f"vindr:{odd}").layout == "vindr"
    assert set(REGISTRY) == {"nih", "vindr", "vinbigdata", "rsna", "chestxdet", "chexlocalize", "siim", "mscxr",
                             "coco", "chexpert"}


REAL = Path(__import__("sysconfig").get_paths()["purelib"]) / "torchxrayvision" / "data"


@pytest.mark.parametrize(
    "name,layout,images,regions",
    [
        ("vinbigdata-train.csv.gz", "vinbigdata", 15000, 36096),
        ("kaggle_stage_2_train_labels.csv.zip", "rsna", 26684, 9555),
        ("siim-pneumothorax-train-rle.csv.gz", "siim", 12047, 3576),
    ],
)
def test_real_release_tables_parse_every_row(name: str, layout: str, images: int, regions: int) -> None:
    """The real annotation tables shipped in the torchxrayvision wheel (not copied into the project)."""
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"{name} not installed (torchxrayvision's data folder)")
    gt = load_ground_truth(path)
    assert gt.layout == layout
    assert (len(gt.images), sum(len(v) for v in gt.regions.values())) == (images, regions)
