"""The data sets the audit page offers, and only those: a visitor picks a name, never types a path (on a public
server a typed path would read the server's files).

- ``examples``: the example images found in ``CXRDEMO_EXAMPLES_DIR`` with NIH's labels and boxes from
  ``examples/manifest.csv`` (written once as NIH-format CSVs into the app's work folder: names and numbers, no pixels);
- every entry of ``CXRDEMO_AUDIT_DATASETS``: ``name=images_dir:labels_csv[:boxes_csv[:baseline_csv]]``, entries
  separated by ``;``, paths absolute or relative to the repository root (an empty field skips the boxes:
  ``nih=imgs:labels.csv::teacher.csv``). A malformed entry is left out with a one-line note (the app still starts).
  The label and box files may be in any layout of docs/datasets.md, detected from the file or forced by a prefix
  (``vindr=imgs:vindr:annotations_train.csv:vindr:annotations_train.csv``); such an entry is converted once into
  NIH-format CSVs in the app's work folder (:func:`cxrdemo.datasets.bridge.export_nih`), its notes kept for the
  report; one that cannot be read is left out with its one-line error.
"""

from __future__ import annotations

import csv
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from ..compare import SOURCE_DATASET, GroundTruth
from ..datasets.base import Region
from ..datasets.truth import listed_boxes
from ..errors import InputError
from ..imaging import IMAGE_SUFFIXES
from ..publicmode import clip_text, is_public

if TYPE_CHECKING:
    from .resources import Example  # (annotations only: resources builds this module's registry)

#: The environment variable listing the configured data sets.
ENV = "CXRDEMO_AUDIT_DATASETS"
#: The name of the example data set.
EXAMPLES = "examples"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class AuditDataset:
    """One data set the audit page offers.

    Attributes:
        name: what the visitor picks (``examples``, or the name of a ``CXRDEMO_AUDIT_DATASETS`` entry).
        images: the image folder; ``labels``: its NIH-format label CSV; ``boxes``: its box CSV (optional).
        baseline: a baseline predictions CSV (``Image Index`` + ``prob_<Label>``) to compare the model with.
        names: the images of the folder to use (``None``: every labelled image of the folder).
        origin: where the entry came from (``examples/manifest.csv`` or ``CXRDEMO_AUDIT_DATASETS``).
        regions: a converted data set's regions (boxes or masks with their readers, by image name; what the audit
            scores, :attr:`cxrdemo.datasets.bridge.NihExport.regions`); ``None``: NIH's box list is read.
    """

    name: str
    images: Path
    labels: Path
    boxes: Path | None = None
    baseline: Path | None = None
    names: tuple[str, ...] | None = None
    origin: str = ENV
    notes: tuple[str, ...] = ()
    labels_layout: str | None = None
    boxes_layout: str | None = None
    regions: Mapping[str, Sequence[Region]] | None = field(default=None, compare=False, repr=False)

    def image_files(self) -> list[str]:
        """The file names of the images this data set uses that exist in its folder, sorted."""
        try:
            present = sorted(p.name for p in self.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        except OSError:
            return []
        if self.names is None:
            return present
        wanted = set(self.names)
        return [n for n in present if n in wanted]

    def describe(self, public: bool | None = None) -> str:
        """One Markdown line: images, labels, boxes, baseline (counts the folder's images: call it lazily). In public
        mode (default: the server's, :func:`cxrdemo.publicmode.is_public`) it names no folder of the server."""
        n = len(self.image_files())
        public = is_public() if public is None else public
        where = "" if public else f" in `{self.images}`"
        parts = [f"**{self.name}**: {n} images{where}", f"labels `{self.labels.name}`"]
        parts.append(f"boxes `{self.boxes.name}`" if self.boxes else "no box list (no map metrics, no gallery)")
        if self.baseline:
            parts.append(f"baseline `{self.baseline.name}`")
        return ", ".join(parts) + f" (from {self.origin})."


def _path(text: str, root: Path) -> Path:
    path = Path(text.strip()).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def parse_entry(entry: str, root: str | os.PathLike) -> AuditDataset:
    """One ``name=images_dir:labels_csv[:boxes_csv[:baseline_csv]]`` entry, its paths checked.

    Raises:
        InputError: malformed entry, bad name, or a path that does not exist (one line naming the entry).
    """
    base = Path(root)
    name, sep, spec = entry.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise InputError(f"{ENV} entry {clip_text(entry.strip())!r}: write name=images_dir:labels_csv[:boxes_csv[:baseline_csv]]")
    if not _NAME.fullmatch(name):
        raise InputError(f"{ENV} entry {clip_text(name)!r}: a name is letters, digits, '_', '.' or '-' (at most 64)")
    fields = _join_layouts(spec.split(":"))
    if len(fields) < 2 or len(fields) > 4 or not fields[0].strip() or not fields[1].strip():
        raise InputError(f"{ENV} entry {name!r}: give images_dir:labels_csv, then optionally :boxes_csv and :baseline_csv")
    layouts = [_layout(f) for f in fields]
    images = _path(fields[0], base)
    labels = _path(layouts[1][1], base)
    optional = [_path(layouts[k][1], base) if fields[k].strip() else None for k in range(2, len(fields))] + [None, None]
    boxes, baseline = optional[0], optional[1]
    if not images.is_dir():
        raise InputError(f"{ENV} entry {name!r}: image folder {images} does not exist")
    for what, path in (("label CSV", labels), ("box CSV", boxes), ("baseline CSV", baseline)):
        if path is not None and not path.is_file():
            raise InputError(f"{ENV} entry {name!r}: {what} {path} does not exist")
    return AuditDataset(name, images, labels, boxes, baseline, labels_layout=layouts[1][0],
                        boxes_layout=layouts[2][0] if len(layouts) > 2 else None)


def _join_layouts(fields: list[str]) -> list[str]:
    """Fields split on ``:`` with a layout prefix (``vindr``, ``coco``...) joined back to the path after it."""
    from ..datasets.loader import REGISTRY

    out: list[str] = []
    k = 0
    while k < len(fields):
        if k > 0 and fields[k].strip().lower() in REGISTRY and k + 1 < len(fields):
            out.append(f"{fields[k].strip().lower()}:{fields[k + 1]}")
            k += 2
            continue
        out.append(fields[k])
        k += 1
    return out


def _layout(field: str) -> tuple[str | None, str]:
    from ..datasets.loader import split_spec

    layout, path = split_spec(field) if ":" in field else (None, field)
    return layout, path


def convert(dataset: AuditDataset, work: Path) -> AuditDataset:
    """``dataset`` with its ground truth in NIH format: as is when it already is, else converted once into
    ``work/<name>/`` (:func:`cxrdemo.datasets.bridge.export_nih`), the conversion's notes kept.

    Raises:
        InputError: a file that cannot be read in its layout (one line).
    """
    from ..datasets.bridge import export_nih

    labels = f"{dataset.labels_layout}:{dataset.labels}" if dataset.labels_layout else dataset.labels
    boxes = f"{dataset.boxes_layout}:{dataset.boxes}" if dataset.boxes_layout and dataset.boxes else dataset.boxes
    done = export_nih(labels, boxes, dataset.images, Path(work) / dataset.name)
    if not done.converted:
        return dataset
    return replace(dataset, images=done.images, labels=done.labels, boxes=done.boxes, notes=tuple(done.notes),
                   regions=done.regions)


def parse_datasets(text: str | None, root: str | os.PathLike) -> tuple[list[AuditDataset], list[str]]:
    """The entries of a ``CXRDEMO_AUDIT_DATASETS`` value, and a one-line note per entry left out (malformed,
    missing path, or a name used twice)."""
    found: list[AuditDataset] = []
    notes: list[str] = []
    for entry in (text or "").split(";"):
        if not entry.strip():
            continue
        try:
            dataset = parse_entry(entry, root)
        except InputError as exc:
            notes.append(f"{exc} (left out)")
            continue
        if dataset.name == EXAMPLES or any(d.name == dataset.name for d in found):
            notes.append(f"{ENV} entry {dataset.name!r}: the name is already taken (left out)")
            continue
        found.append(dataset)
    return found, notes


def write_example_csvs(examples: Iterable[Example], folder: str | os.PathLike) -> tuple[Path, Path]:
    """``labels.csv`` and ``boxes.csv`` (NIH formats) of ``examples`` written into ``folder``; their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    labels, boxes = out / "labels.csv", out / "boxes.csv"
    rows = list(examples)
    with labels.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["Image Index", "Finding Labels"])
        for ex in rows:
            w.writerow([ex.image, ex.finding_labels or "No Finding"])
    with boxes.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"])
        for ex in rows:
            for b in ex.boxes:
                w.writerow([ex.image, b.label, *(round(v, 4) for v in (b.x1, b.y1, b.width, b.height))])
    return labels, boxes


class DatasetRegistry:
    """The data sets of one app, built on first use (the single-case page never pays for them)."""

    def __init__(self, root: str | os.PathLike, examples: Sequence[Example], examples_folder: Path, work: Path) -> None:
        self.root, self.examples, self.examples_folder, self.work = Path(root), list(examples), Path(examples_folder), Path(work)
        self._items: list[AuditDataset] | None = None
        self._notes: list[str] = []
        self._lock = threading.Lock()

    def _build(self) -> list[AuditDataset]:
        items: list[AuditDataset] = []
        present = [ex for ex in self.examples if ex.path is not None]
        if present:
            labels, boxes = write_example_csvs(present, self.work / "datasets" / EXAMPLES)
            names = tuple(ex.image for ex in present)
            items.append(AuditDataset(EXAMPLES, self.examples_folder, labels, boxes, None, names, "examples/manifest.csv"))
        configured, notes = parse_datasets(os.environ.get(ENV), self.root)
        ready = []
        for dataset in configured:
            try:
                ready.append(convert(dataset, self.work / "datasets" / "converted"))
            except InputError as exc:
                notes.append(f"{ENV} entry {dataset.name!r}: {exc} (left out)")
        self._notes = notes
        return items + ready

    def all(self) -> list[AuditDataset]:
        """Every data set offered, the examples first."""
        with self._lock:
            if self._items is None:
                self._items = self._build()
            return list(self._items)

    @property
    def notes(self) -> list[str]:
        """One line per ``CXRDEMO_AUDIT_DATASETS`` entry left out (in public mode each path cut to its last part)."""
        self.all()
        if not is_public():
            return list(self._notes)
        from .sources import hide_paths

        return [hide_paths(n) for n in self._notes]

    def names(self) -> list[str]:
        return [d.name for d in self.all()]

    def truth_of(self, image: str, width: int, height: int) -> GroundTruth | None:
        """The ground truth of the image called ``image`` (``width`` x ``height``) in the first configured data set
        that lists it with a box (:func:`cxrdemo.datasets.truth.listed_boxes`: its file name, or its name without
        the extension), for the single-case page when NIH's list does not know it; ``None`` otherwise (and at once
        when ``CXRDEMO_AUDIT_DATASETS`` is unset, so the page never builds the audit's data sets for nothing).

        Labels are NIH's names (the data sets were mapped onto them when converted); a mask is given as its
        bounding box (said in the notes; the audit scores the mask itself). A box list that cannot be read is
        skipped (it was read when the entry was converted)."""
        if not (os.environ.get(ENV) or "").strip():
            return None
        for dataset in self.all():
            if dataset.origin != ENV or dataset.boxes is None:
                continue
            try:
                found = listed_boxes(image, width, height, dataset.boxes)
            except (InputError, OSError):
                continue
            if found is None or not found[1]:
                continue
            listed, boxes = found
            return GroundTruth(tuple(boxes), SOURCE_DATASET + dataset.name, tuple(_truth_notes(dataset, listed, image)))
        return None

    def get(self, name: str | None) -> AuditDataset:
        """The data set called ``name``; :class:`InputError` listing the choices otherwise.

        The returned data set's ``name`` is the registry's own (checked when the entry was read), never the text
        the visitor sent: use it, not the request's text, in folder and zip names.
        """
        items = self.all()
        if not items:
            raise InputError(f"no data set to audit: set CXRDEMO_EXAMPLES_DIR (example images) or {ENV}")
        wanted = (name or "").strip()
        for d in items:
            if d.name == wanted:
                return d
        raise InputError(f"unknown data set {clip_text(wanted)!r}; choose one of {', '.join(d.name for d in items)}")


def _truth_notes(dataset: AuditDataset, listed: str, image: str) -> list[str]:
    """What the page says about a data set's ground truth of one image: where it came from, its readers, masks."""
    notes = [f"ground truth from data set {dataset.name!r} (listed as {clip_text(listed, 60)!r})" if listed != image
             else f"ground truth from data set {dataset.name!r}"]
    regions = (dataset.regions or {}).get(listed, ())
    readers = sorted({r.reader for r in regions if r.reader is not None})
    if len(readers) > 1:
        notes.append(f"{len(readers)} readers' boxes, each shown and scored as one ground-truth box (their union)")
    masks = sum(r.is_mask for r in regions)
    if masks:
        notes.append(f"{masks} mask(s) shown as their bounding box here; the audit scores the masks themselves")
    return notes


def select_names(dataset: AuditDataset, limit: int) -> list[str] | None:
    """The images to audit: all (``None``) when ``limit <= 0``; else the first ``limit`` labelled images of the
    folder, those with a ground-truth box first (the map metrics and the gallery need boxes)."""
    if limit <= 0:
        return list(dataset.names) if dataset.names is not None else None
    from ..datasets.samples import read_label_csv
    from ..datasets.nih import read_box_csv

    from ..audit.selection import first_labelled

    labelled = read_label_csv(dataset.labels)
    boxed = set(read_box_csv(dataset.boxes)) if dataset.boxes else set()
    chosen = first_labelled(dataset.image_files(), set(labelled), boxed, limit)  # the rule of ``evaluate --limit``
    if not chosen:
        folder = "its folder" if is_public() else str(dataset.images)
        raise InputError(f"data set {dataset.name!r}: no image of {folder} has a row in {dataset.labels.name}")
    return chosen
