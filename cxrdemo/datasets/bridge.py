"""Ground truth in any layout handed to the NIH-format pipeline (``evaluate``, the audit page): written once as an
NIH label CSV and box list, names mapped onto the model's NIH labels, boxes put in NIH's 1024 px frame.

:func:`export_nih` is the bridge between :func:`cxrdemo.datasets.loader.load_ground_truth` and the audit engine,
which reads NIH's two CSVs and a flat image folder. What it does, stated in the notes it returns (the report shows
them):

- class names go through the shared vocabulary (:func:`cxrdemo.datasets.vocabulary.map_names`): a name meaning two
  labels (``Nodule/Mass``) or none is left out and said so, never scored under another name;
- every reader's box is kept (scored against the union of readers: each box is one ground-truth box);
- an uncertain label (-1) follows ``policy`` (:func:`cxrdemo.datasets.vocabulary.policy_target`): ``ignore``
  (default) leaves that image out of that class's AUC only: the label CSV's extra column ``Uncertain Labels``
  (``|``-joined, empty otherwise) names the class, the image counts for every other class and keeps its regions;
  ``positive`` / ``negative`` write it as found / not found. Counted per class either way;
- a model label the data set never states is listed (its AUC has no positive and is not computed);
- boxes in original pixels are scaled into NIH's 1024 frame by the image's size (from the annotation or its header)
  so the pipeline's ``box / 1024 * size`` gives them back;
- images found in subfolders (a distributed VinDr or CheXpert tree) are linked into one flat folder by file name.

NIH's own files (both in the ``nih`` layout) are passed through untouched.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import InputError
from .base import GroundTruth, Region
from .files import shown
from .loader import detect_layout, load_ground_truth, split_spec
from .nih import NIH_CLASSES, NIH_SIDE
from .samples import UNCERTAIN_COLUMN
from .vocabulary import check_policy, map_names, policy_target


@dataclass
class NihExport:
    """What the pipeline reads: a flat image folder, an NIH label CSV and box list, and the notes for the report."""

    images: Path
    labels: Path
    boxes: Path | None
    notes: list[str] = field(default_factory=list)
    converted: bool = True
    #: the converted data set's regions (boxes or masks, with their readers) in original pixels, by the flat image
    #: name and with labels in the model's class names: what the audit scores (``AuditOptions.regions``), so that
    #: masks stay masks and readers stay apart; ``None`` for NIH-format files (the audit reads NIH's box list)
    regions: dict[str, list[Region]] | None = None


def is_nih(spec: str | Path | None) -> bool:
    """True when ``spec`` is an NIH-format file (or ``None``)."""
    if spec is None:
        return True
    layout, where = split_spec(spec)
    if layout is not None:
        return layout == "nih"
    path = Path(where)
    return not path.is_file() or detect_layout(path).name == "nih"  # a missing file: the NIH path says so, as before


def export_nih(
    labels: str | Path | None,
    boxes: str | Path | None,
    images: str | Path,
    out: str | Path,
    classes: Sequence[str] = NIH_CLASSES,
    policy: str = "ignore",
    aliases: Mapping[str, str] | None = None,
    limits: Mapping[str, int] | None = None,
) -> NihExport:
    """Write ``labels`` (and ``boxes``), in any layouts, as NIH-format CSVs in ``out`` (see the module doc).

    Raises:
        InputError: a bad file (one line), an unknown policy, no labelled image found in ``images``.
    """
    check_policy(policy)
    folder = Path(images)
    if is_nih(labels) and is_nih(boxes):
        if labels is None:
            raise InputError("give a label file (--labels) for NIH-format ground truth")
        return NihExport(folder, Path(labels), Path(boxes) if boxes else None, [], converted=False)
    gl = load_ground_truth(labels, folder, limits) if labels is not None else None
    same = labels is not None and boxes is not None and str(labels).strip() == str(boxes).strip()
    gb = gl if same else (load_ground_truth(boxes, folder, limits) if boxes is not None else None)
    if gl is None and gb is None:
        raise InputError("give a label file (--labels) or a box file (--boxes)")
    source = gl or gb
    assert source is not None
    notes = [f"ground truth: {describe(gl)}" if gl else "", f"boxes: {describe(gb)}" if gb and gb is not gl else ""]
    notes = [n for n in notes if n]
    for gt in (gl, gb) if gb is not gl else (gl,):
        own = [n for n in (gt.notes if gt else []) if not (gt is gl and gb is not None and gb is not gl and n.startswith("boxes from"))]
        notes += [f"{gt.name}: {n}" for n in own]  # (the label file's own boxes are not used when --boxes is given)
    seen = set(source.class_names()) | (set(gb.class_names()) if gb else set())
    mapping = map_names(sorted(seen), classes, aliases)
    notes += mapping.notes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = {i: e for i, e in source.images.items() if e.path is not None}
    by_path = {e.path: i for i, e in entries.items()}
    same_image: dict[str, str] = {}  # a box file's id -> the label file's id of the same image file
    if gb is not None and gb is not source:
        for i, e in gb.images.items():
            if e.path is not None and e.path in by_path:
                same_image[i] = by_path[e.path]
    if not entries:
        raise InputError(f"no image of the ground truth was found in {shown(folder)}; check the folder and the ids")
    names = flat_names(entries, folder)
    flat = all(e.path.parent == folder and names[i] == e.path.name for i, e in entries.items())  # type: ignore[union-attr]
    image_dir = folder if flat else _link_folder(entries, names, out / "images", notes)
    label_rows, uncertain, stated = _labels(source, entries, names, mapping.pairs, policy)
    if uncertain:
        counts = ", ".join(f"{c} {uncertain[c]}" for c in classes if c in uncertain)
        notes.append(f"uncertain labels (-1), policy 'ignore': each image left out of that class's AUC only (it counts "
                     f"for every other class and keeps its regions): {counts}" if policy == "ignore" else
                     f"uncertain labels (-1) counted as {policy} (policy '{policy}'): {counts}")
    never = [c for c in classes if c not in stated]
    if never:
        notes.append(f"not stated by the data set (no AUC): {', '.join(never)}")
    labels_csv = out / "labels.csv"
    with labels_csv.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Image Index", "Finding Labels", UNCERTAIN_COLUMN])
        for name, found, unsure in label_rows:
            w.writerow([name, "|".join(found) or "No Finding", "|".join(unsure)])
    box_csv = None
    box_gt = gb if gb is not None else source
    regions: dict[str, list[Region]] = {}
    if box_gt.regions:
        box_csv = out / "boxes.csv"
        written, skipped = _boxes(box_gt, entries, names, mapping.pairs, box_csv, same_image, regions)
        if skipped:
            notes.append(f"{skipped} region(s) not scored: class not one of the model's labels, image not found, "
                         "or image size unknown")
        readers = box_gt.readers()
        if len(readers) > 1:
            notes.append(f"{len(readers)} readers: their regions are scored by the reader rule of the report "
                         "(per reader, or their union) and compared with each other (a second radiologist)")
    return NihExport(image_dir, labels_csv, box_csv, notes, regions=regions)


def describe(gt: GroundTruth) -> str:
    """``name (layout): N images, M regions``."""
    n = sum(len(v) for v in gt.regions.values())
    return f"{gt.name} ({gt.layout}): {len(gt.images)} images, {n} regions"


def flat_names(entries: dict, folder: Path) -> dict[str, str]:
    """A distinct file name per image: its own when no two images share it, else its path below ``folder`` with
    ``/`` written ``__`` (CheXpert's many ``view1_frontal.jpg``: ``patient1__study1__view1_frontal.jpg``)."""
    counts: dict[str, int] = {}
    for e in entries.values():
        counts[e.path.name] = counts.get(e.path.name, 0) + 1
    out = {}
    for image_id, e in entries.items():
        if counts[e.path.name] == 1:
            out[image_id] = e.path.name
        else:
            try:
                rel = e.path.relative_to(folder)
            except ValueError:
                rel = Path(e.path.name)
            out[image_id] = "__".join(rel.parts)
    return out


def _link_folder(entries: dict, names: dict[str, str], folder: Path, notes: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, e in entries.items():
        link = folder / names[image_id]
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(e.path.resolve(), link)
    notes.append(f"{len(entries)} image(s) found in subfolders, linked into one folder by file name"
                 + ("" if all(names[i] == e.path.name for i, e in entries.items()) else " (subfolders joined by __ where names repeat)"))
    return folder


def _labels(gt: GroundTruth, entries: dict, names: dict[str, str], pairs: Mapping[str, str],
            policy: str) -> tuple[list[tuple[str, list[str], list[str]]], dict[str, int], set[str]]:
    """Per image (by flat name): its findings and its uncertain classes left out (policy ``ignore``); the number of
    uncertain labels per class; the classes the data set states."""
    rows: list[tuple[str, list[str], list[str]]] = []
    uncertain: dict[str, int] = {}
    stated: set[str] = set()
    for image_id in sorted(entries, key=lambda i: names[i]):
        labs = gt.labels.get(image_id, {})
        values: dict[str, int] = {}
        for name, v in labs.items():
            label = pairs.get(name)
            if label is None:
                continue
            stated.add(label)
            values[label] = max(values.get(label, v), v) if v != -1 else values.get(label, -1)
        for c, v in values.items():
            uncertain[c] = uncertain.get(c, 0) + (v == -1)
        targets = {c: policy_target(v, policy) for c, v in values.items()}
        rows.append((names[image_id], _nih_order(c for c, t in targets.items() if t == 1),
                     _nih_order(c for c, t in targets.items() if t is None)))
    return rows, {c: n for c, n in uncertain.items() if n}, stated


def _nih_order(labels: Iterable[str]) -> list[str]:
    return sorted(labels, key=lambda c: list(NIH_CLASSES).index(c) if c in NIH_CLASSES else 99)


def _boxes(gt: GroundTruth, entries: dict, names: dict[str, str], pairs: Mapping[str, str], path: Path,
           same_image: Mapping[str, str], regions: dict[str, list[Region]]) -> tuple[int, int]:
    """Write the boxes scored (NIH's frame) to ``path`` and collect the same regions, in original pixels and the
    model's class names, into ``regions`` by flat image name; returns (written, skipped)."""
    written = skipped = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"])
        for own_id, own_regions in sorted(gt.regions.items()):
            image_id = same_image.get(own_id, own_id)
            entry = entries.get(image_id)
            size = gt.size_of(own_id) if entry is not None else None
            for r in own_regions:
                label = pairs.get(r.label)
                if entry is None or label is None or size is None or r.box is None:
                    skipped += 1
                    continue
                sx, sy = NIH_SIDE / size[0], NIH_SIDE / size[1]
                b = r.box.scaled(sx, sy)
                w.writerow([names[image_id], label, repr(b.x1), repr(b.y1), repr(b.x2 - b.x1), repr(b.y2 - b.y1)])
                regions.setdefault(names[image_id], []).append(replace(r, image_id=names[image_id], label=label))
                written += 1
    return written, skipped


__all__ = ["NihExport", "export_nih", "is_nih", "describe"]
