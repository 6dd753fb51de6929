"""Small files in every ground-truth layout, built at test time from the shared NIH boxes (never committed).

:func:`nih_reference` reads NIH's own rows for the shared images; the ``write_*`` functions write the same boxes
(in original pixels) in each layout, with each layout's awkward rows; :func:`image_folder` lays the boxed images out
as a data set would (nested folders, ``.dicom`` / ``.dcm`` DICOMs written from the PNG pixels, a ``.jpg``).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from cxrdemo.boxes import Box
from cxrdemo.datasets.base import box_mask
from cxrdemo.datasets.loader import load_ground_truth
from cxrdemo.datasets.masks import coco_encode

#: Images of the shared set that carry no NIH box, used for the "no finding" / Target 0 / -1 rows.
NEGATIVE = ("00000001_000.png", "00000001_001.png")
SIDE = 1024


def nih_reference(data_dir: Path) -> list[tuple[str, str, Box]]:
    """``(image stem, class, box)`` for every NIH box of the shared images, as NIH's reader gives them."""
    gt = load_ground_truth(data_dir / "boxes.csv", data_dir / "images")
    return sorted((Path(i).stem, r.label, r.box) for i, rs in gt.regions.items() for r in rs)


def image_folder(root: Path, images_dir: Path, stems: list[str]) -> Path:
    """The boxed images under ``root/imgs/<sub>/``: the first as ``.dicom``, the second as ``.dcm`` (DICOMs of the
    PNG's pixels), the third as ``.jpg``, the rest as ``.png`` copies; returns ``root/imgs``."""
    from PIL import Image

    from tests.dicom_fixtures import write_dicom

    top = root / "imgs"
    for k, stem in enumerate(sorted(set(stems) | {Path(n).stem for n in NEGATIVE})):
        sub = top / ("a" if k % 2 else "b") / "deeper"
        sub.mkdir(parents=True, exist_ok=True)
        src = images_dir / f"{stem}.png"
        if k in (0, 1):
            pixels = np.asarray(Image.open(src).convert("L"), dtype=np.uint16)
            write_dicom(sub / f"{stem}{'.dicom' if k == 0 else '.dcm'}", pixels)
        elif k == 2:
            Image.open(src).convert("L").save(sub / f"{stem}.jpg", quality=90)
        else:
            shutil.copyfile(src, sub / f"{stem}.png")
    return top


def _csv(path: Path, header: list[str], rows: list[list[object]], lead: str = "") -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([(lead if i else "") + h for i, h in enumerate(header)])
        for row in rows:
            w.writerow([(lead if i and str(c) else "") + (repr(c) if isinstance(c, float) else str(c)) for i, c in enumerate(row)])
    return path


def write_vindr(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    """``annotations_train.csv`` (each box by R1 and again by R2; "No finding" rows without a box) and its sibling
    ``image_labels_train.csv`` (one row per reader; the readers disagree on one label)."""
    rows = []
    for stem, label, b in ref:
        for rad in ("R1", "R2"):
            rows.append([stem, rad, label, b.x1, b.y1, b.x2, b.y2])
    for name in NEGATIVE:
        rows.append([Path(name).stem, "R3", "No finding", "", "", "", ""])
    path = _csv(root / "annotations_train.csv", ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"], rows)
    stem0 = Path(NEGATIVE[0]).stem
    _csv(root / "image_labels_train.csv", ["image_id", "rad_id", "Aortic enlargement", "Nodule/Mass", "No finding"],
         [[stem0, "R1", 0, 0, 1], [stem0, "R2", 1, 0, 0], [ref[0][0], "R1", 0, 1, 0]])
    return path


def write_vinbigdata(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    ids = {lab: i for i, lab in enumerate(sorted({lab for _, lab, _ in ref}))}
    rows = [[stem, label, ids[label], "R9", b.x1, b.y1, b.x2, b.y2] for stem, label, b in ref]
    rows += [[Path(n).stem, "No finding", 14, "R8", "", "", "", ""] for n in NEGATIVE]
    return _csv(root / "train.csv", ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"], rows)


def write_rsna(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    """``stage_2_train_labels.csv`` (x, y, width, height; Target 0 rows) and its class-info sibling."""
    rows = [[stem, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1, 1] for stem, _, b in ref]
    rows += [[Path(n).stem, "", "", "", "", 0] for n in NEGATIVE]
    _csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"],
         [[stem, "Lung Opacity"] for stem, _, _ in ref] + [[Path(n).stem, "Normal"] for n in NEGATIVE])
    return _csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], rows)


def write_mscxr(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    header = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height", "split"]
    rows = [[stem, label, f"a {label.lower()}", f"files/p10/p1/s5/{stem}.jpg", b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1, SIDE, SIDE, "test"]
            for stem, label, b in ref]
    return _csv(root / "MS_CXR_Local_Alignment_v1.0.0.csv", header, rows)


def write_chestxdet(root: Path, ref: list[tuple[str, str, Box]], polygon_first: bool = True) -> Path:
    """A ChestX-Det JSON list; with ``polygon_first`` the first image's instances carry 4-vertex polygons."""
    by: dict[str, list[tuple[str, Box]]] = {}
    for stem, label, b in ref:
        by.setdefault(stem, []).append((label, b))
    items = []
    for k, (stem, inst) in enumerate(sorted(by.items())):
        item: dict[str, object] = {"file_name": f"{stem}.png", "syms": [lab for lab, _ in inst],
                                   "boxes": [[b.x1, b.y1, b.x2, b.y2] for _, b in inst]}
        if polygon_first and k == 0:
            item["polygons"] = [[[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]] for _, b in inst]
        items.append(item)
    items += [{"file_name": n, "syms": [], "boxes": []} for n in NEGATIVE]
    path = root / "chestxdet_test.json"
    path.write_text(json.dumps(items))
    return path


def write_coco(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    """A COCO file: every box as ``bbox``; the first as a polygon segmentation too, the second as compressed RLE,
    the third as uncompressed RLE; readers kept in ``rad_id``."""
    stems = sorted({s for s, _, _ in ref} | {Path(n).stem for n in NEGATIVE})
    cats = {lab: i + 1 for i, lab in enumerate(sorted({lab for _, lab, _ in ref}))}
    anns = []
    for k, (stem, label, b) in enumerate(ref):
        ann: dict[str, object] = {"id": k + 1, "image_id": stems.index(stem) + 1, "category_id": cats[label],
                                  "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1], "iscrowd": 0, "rad_id": "R1"}
        if k == 0:
            ann["segmentation"] = [[b.x1, b.y1, b.x2, b.y1, b.x2, b.y2, b.x1, b.y2]]
        elif k == 1:
            ann["segmentation"] = coco_encode(box_mask(b, SIDE, SIDE))
        elif k == 2:
            m = box_mask(b, SIDE, SIDE).T.reshape(-1).astype(np.int8)
            change = np.flatnonzero(np.diff(m)) + 1
            runs = np.diff(np.concatenate([[0], change, [m.size]])).tolist()
            ann["segmentation"] = {"size": [SIDE, SIDE], "counts": ([0] + runs) if m[0] else runs}
        anns.append(ann)
    data = {"info": {"description": "test"}, "images": [{"id": i + 1, "file_name": f"{s}.png", "width": SIDE, "height": SIDE}
                                                        for i, s in enumerate(stems)],
            "annotations": anns, "categories": [{"id": v, "name": k} for k, v in cats.items()]}
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def siim_rle(mask: np.ndarray) -> str:
    """SIIM's relative RLE of a boolean mask (column-major; offsets from the end of the previous run)."""
    flat = mask.T.reshape(-1).astype(np.int8)
    padded = np.concatenate([[0], flat, [0]])
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    out, prev = [], 0
    for s, e in zip(starts, ends):
        out += [int(s - prev), int(e - s)]
        prev = e
    return " ".join(map(str, out))


def write_siim(root: Path, ref: list[tuple[str, str, Box]]) -> Path:
    """``train-rle.csv``: each box's mask as SIIM RLE (leading spaces as the release writes them), ``-1`` rows."""
    rows = [[stem, siim_rle(box_mask(b, SIDE, SIDE))] for stem, _, b in ref]
    rows += [[Path(n).stem, "-1"] for n in NEGATIVE]
    return _csv(root / "train-rle.csv", ["ImageId", "EncodedPixels"], rows, lead=" ")


def write_chexlocalize(root: Path, ref: list[tuple[str, str, Box]]) -> tuple[Path, Path]:
    """``gt_segmentations_val.json`` (compressed RLE per task, empty masks for the other tasks) and
    ``gt_annotations_val.json`` (the same boxes as polygons with ``img_size``)."""
    segs: dict[str, dict[str, object]] = {}
    anns: dict[str, dict[str, object]] = {}
    tasks = sorted({lab for _, lab, _ in ref}) + ["Support Devices"]
    for stem, label, b in ref:
        cxr = f"patient{stem}_study1_view1_frontal"
        segs.setdefault(cxr, {t: coco_encode(np.zeros((SIDE, SIDE), bool)) for t in tasks})
        prev = segs[cxr][label]
        mask = box_mask(b, SIDE, SIDE)
        if "counts" in prev and prev != coco_encode(np.zeros((SIDE, SIDE), bool)):
            from cxrdemo.datasets.limits import LOCAL
            from cxrdemo.datasets.masks import coco_counts, runs_from_counts

            mask |= runs_from_counts(coco_counts(prev["counts"], LOCAL), SIDE, SIDE, LOCAL).decode()  # type: ignore[index]
        segs[cxr][label] = coco_encode(mask)
        anns.setdefault(cxr, {"img_size": [SIDE, SIDE]}).setdefault(label, []).append(  # type: ignore[union-attr]
            [[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]])
    p1, p2 = root / "gt_segmentations_val.json", root / "gt_annotations_val.json"
    p1.write_text(json.dumps(segs))
    p2.write_text(json.dumps(anns))
    return p1, p2
