"""Training data in NIH's own formats: label and box CSVs, a patient-wise split, an image cache, a Dataset.

Inputs (all accepted gzip-compressed too):
- a label CSV like ``Data_Entry_2017_v2020.csv``: ``Image Index``, ``Finding Labels`` (joined by ``|``;
  ``No Finding`` means no label), ``Patient ID``;
- a box CSV like ``BBox_List_2017.csv``: ``Image Index``, ``Finding Label`` (``Infiltrate`` is read as
  ``Infiltration``), ``Bbox [x,y,w,h]`` and three unnamed columns, in the 1024 px originals' pixels.
Only images present in the image folder are used.

Boxes are kept normalised to ``[0, 1]`` (NIH pixels / 1024). Training resizes the WHOLE image to a square (the same
preprocessing as inference, :mod:`cxrdemo.preprocess`), so a normalised box is the box at any copy size: a 256 px
copy's box is the 1024 px box scaled by 1/4 on each axis, which is what :meth:`Sample.boxes_in_pixels` returns.

Decoding a 1024 px PNG costs ~20 ms; :class:`ImageCache` decodes each file once, resized to the training size, and
keeps it in memory and (optionally) as ``.npy`` in a cache folder keyed by file, size and modification time, so
later epochs and later runs never decode again. Keep that folder OUTSIDE the repository: it holds image pixels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .boxes import Box
from .errors import InputError
from .imaging import IMAGE_SUFFIXES, load_image
from .nih import NIH_CLASSES, NIH_SIDE, read_box_csv, read_csv_text
from .preprocess import resize_gray

#: Most ground-truth boxes one NIH image carries (93 images have 2 to 4); more are dropped by the Dataset.
MAX_BOXES = 4


# ---------------------------------------------------------------------------------------------------------- CSVs
@dataclass(frozen=True)
class LabelRow:
    """One row of an NIH label CSV: findings (``()`` for "No Finding") and the patient."""

    labels: tuple[str, ...]
    patient: str


def read_label_csv(path: str | Path) -> dict[str, LabelRow]:
    """``Image Index`` -> :class:`LabelRow` from an NIH-format label CSV (``.csv`` or ``.csv.gz``)."""
    reader = csv.DictReader(io.StringIO(read_csv_text(path, "label")))
    need = {"Image Index", "Finding Labels"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise InputError(f"{path}: a label CSV needs the columns 'Image Index' and 'Finding Labels' (NIH format)")
    out: dict[str, LabelRow] = {}
    for row in reader:
        name = (row.get("Image Index") or "").strip()
        if not name:
            continue
        found = tuple(x.strip() for x in (row.get("Finding Labels") or "").split("|") if x.strip() and x.strip() != "No Finding")
        patient = (row.get("Patient ID") or "").strip() or name.split("_")[0]
        out[name] = LabelRow(found, patient)
    return out


# ------------------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    """One labelled radiograph.

    Attributes:
        name: NIH ``Image Index`` (file name).
        path: the file.
        labels: findings present (subset of the classes; empty = "No Finding").
        patient: patient id (splits never separate a patient's images).
        boxes: ground-truth boxes normalised to [0, 1] (NIH pixels / 1024), labelled.
    """

    name: str
    path: Path
    labels: tuple[str, ...]
    patient: str
    boxes: tuple[Box, ...] = ()

    def boxes_in_pixels(self, width: int, height: int) -> list[Box]:
        """The ground-truth boxes in the pixels of a ``width`` x ``height`` copy of the image."""
        return [b.scaled(width, height).clipped(width, height) for b in self.boxes]

    def target(self, classes: Sequence[str]) -> np.ndarray:
        """Multi-hot ``(len(classes),)`` float32 label vector."""
        return np.array([1.0 if c in self.labels else 0.0 for c in classes], dtype=np.float32)


@dataclass
class SampleSet:
    """The samples found, and what was skipped, for reporting."""

    samples: list[Sample]
    missing_labels: list[str] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)


def load_samples(
    images: str | Path,
    labels_csv: str | Path,
    boxes_csv: str | Path | None = None,
    classes: Sequence[str] = NIH_CLASSES,
    names: Iterable[str] | None = None,
) -> SampleSet:
    """Join the image folder with the label (and box) CSVs; only files present in ``images`` are used.

    ``names`` optionally restricts the set to these file names (e.g. a validation list). Images without a label row
    are skipped and listed in ``missing_labels``; findings outside ``classes`` are counted in ``unknown_labels``.
    """
    folder = Path(images)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    label_rows = read_label_csv(labels_csv)
    box_rows = read_box_csv(boxes_csv) if boxes_csv else {}
    wanted = set(names) if names is not None else None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    known = set(classes)
    out = SampleSet([])
    for path in files:
        if wanted is not None and path.name not in wanted:
            continue
        row = label_rows.get(path.name)
        if row is None:
            out.missing_labels.append(path.name)
            continue
        for lab in row.labels:
            if lab not in known:
                out.unknown_labels[lab] = out.unknown_labels.get(lab, 0) + 1
        boxes = tuple(
            Box(b.x1 / NIH_SIDE, b.y1 / NIH_SIDE, b.x2 / NIH_SIDE, b.y2 / NIH_SIDE, b.label).clipped(1.0, 1.0)
            for b in box_rows.get(path.name, [])
        )
        out.samples.append(Sample(path.name, path, tuple(l for l in row.labels if l in known), row.patient, boxes))
    if not out.samples:
        raise InputError(f"no image in {folder} has a row in {labels_csv}; check the folder and the label CSV")
    return out


def label_counts(samples: Sequence[Sample], classes: Sequence[str]) -> dict[str, int]:
    """Positives per class."""
    return {c: sum(c in s.labels for s in samples) for c in classes}


# --------------------------------------------------------------------------------------------------------- split
def patient_folds(samples: Sequence[Sample], folds: int, seed: int = 0) -> list[list[int]]:
    """Patient-wise, stratified partition of ``samples`` into ``folds`` folds (indices; deterministic for a seed).

    Uses scikit-learn's ``StratifiedGroupKFold`` with groups = patients and, as the stratum of each image, "boxed"
    for images with ground-truth boxes (so every fold gets some), else its rarest finding (by frequency in
    ``samples``), else "No Finding". Every image lies in exactly one fold; no patient spans two folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if folds < 2:
        raise InputError(f"--folds {folds}: k-fold cross-validation needs at least 2 folds")
    if len({s.patient for s in samples}) < folds:
        raise InputError(f"--folds {folds}: only {len({s.patient for s in samples})} patients; use fewer folds")
    counts: dict[str, int] = {}
    for s in samples:
        for lab in s.labels:
            counts[lab] = counts.get(lab, 0) + 1

    def stratum(s: Sample) -> str:
        if s.boxes:
            return "boxed"
        if s.labels:
            return min(s.labels, key=lambda lab: (counts[lab], lab))
        return "No Finding"

    strata = [stratum(s) for s in samples]
    groups = [s.patient for s in samples]
    # Strata rarer than the number of folds make scikit-learn warn; merge them into one.
    freq = {k: strata.count(k) for k in set(strata)}
    strata = [k if freq[k] >= folds else "rare" for k in strata]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [sorted(int(i) for i in val_idx) for _, val_idx in splitter.split(np.zeros(len(samples)), strata, groups)]


def fold_split(samples: Sequence[Sample], folds: int, fold: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples of fold ``fold`` (0-based) of :func:`patient_folds`."""
    if not 0 <= fold < folds:
        raise InputError(f"--fold {fold} must lie in 0..{folds - 1} (--folds {folds})")
    held = set(patient_folds(samples, folds, seed)[fold])
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


def split_patients(samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Patient-wise, stratified train/validation split (deterministic for a seed).

    The first fold of :func:`patient_folds` with ``round(1 / val_fraction)`` folds is the validation set (so
    ``val_fraction`` 0.2 gives fold 0 of ``--folds 5``).
    """
    if not 0.0 < val_fraction < 0.5:
        raise InputError(f"validation fraction {val_fraction} must lie in (0, 0.5)")
    return fold_split(samples, max(2, int(round(1.0 / val_fraction))), 0, seed)


# --------------------------------------------------------------------------------------------------------- cache
class ImageCache:
    """Decoded radiographs resized to ``size`` x ``size`` uint8, decoded once per file.

    Kept in memory (``memory=True``) and, when ``folder`` is given, as ``.npy`` files named by the file name, the
    size and a digest of the absolute path, byte size and modification time (a changed file is decoded again).
    Writes are atomic (temp file + rename), so DataLoader workers may share a folder.
    """

    def __init__(self, size: int, folder: str | Path | None = None, memory: bool = True) -> None:
        self.size = int(size)
        self.folder = Path(folder) if folder else None
        self.memory = memory
        self._store: dict[str, np.ndarray] = {}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _file_for(self, path: Path) -> Path:
        st = path.stat()
        digest = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
        assert self.folder is not None
        return self.folder / f"{path.stem}-{self.size}-{digest}.npy"

    def get(self, path: str | Path) -> np.ndarray:
        """The ``(size, size)`` uint8 image of ``path``."""
        path = Path(path)
        key = str(path)
        if key in self._store:
            return self._store[key]
        arr = None
        cached = self._file_for(path) if self.folder is not None else None
        if cached is not None and cached.is_file():
            try:
                arr = np.load(cached, allow_pickle=False)
                if arr.shape != (self.size, self.size) or arr.dtype != np.uint8:
                    arr = None
            except (OSError, ValueError):
                arr = None
        if arr is None:
            arr = np.ascontiguousarray(resize_gray(load_image(path).pixels, self.size))
            if cached is not None:
                tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, arr, allow_pickle=False)
                os.replace(tmp, cached)
        if self.memory:
            self._store[key] = arr
        return arr

    def warm(self, paths: Sequence[Path], progress: Callable[[Iterable], Iterable] | None = None) -> None:
        """Decode every file in ``paths`` now (e.g. before the first epoch), optionally with a progress wrapper."""
        items: Iterable = paths if progress is None else progress(paths)
        for p in items:
            self.get(p)


# -------------------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Augment:
    """Box-consistent augmentation of a square uint8 radiograph.

    A small random affine (isotropic scale, translation, rotation about the centre) applied to the image and to
    the box corners (the box becomes the axis-aligned hull of its transformed corners, clipped to the frame), then
    brightness and contrast jitter. No horizontal flip: a chest film is not left-right symmetric (the heart and the
    aortic knob sit on the left, the liver and the higher right hemidiaphragm on the right; situs inversus is a
    finding of its own), so a flipped film is an anatomically different, implausible image, and a flipped
    cardiomegaly box lands on the wrong side. Scanner and positioning variation is what the small affine and the
    intensity jitter imitate.

    Attributes:
        scale: maximum relative zoom (0.08 -> factor in [0.92, 1.08]).
        translate: maximum shift as a fraction of the side.
        rotate: maximum rotation in degrees.
        brightness: maximum additive shift as a fraction of 255.
        contrast: maximum relative contrast change.
    """

    scale: float = 0.08
    translate: float = 0.05
    rotate: float = 5.0
    brightness: float = 0.08
    contrast: float = 0.15

    def __call__(self, image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augment ``image`` ``(S, S)`` uint8 and its normalised ``(M, 4)`` xyxy ``boxes`` (returned clipped)."""
        size = image.shape[0]
        s = 1.0 + rng.uniform(-self.scale, self.scale)
        theta = math.radians(rng.uniform(-self.rotate, self.rotate))
        tx, ty = rng.uniform(-self.translate, self.translate, size=2) * size
        c = (size - 1) / 2.0
        cos, sin = math.cos(theta), math.sin(theta)
        # forward map p' = c + s R (p - c) + t; PIL wants the inverse (output pixel -> input pixel).
        a, b = cos / s, sin / s
        d, e = -sin / s, cos / s
        ox, oy = c + tx, c + ty
        inv = (a, b, c - a * ox - b * oy, d, e, c - d * ox - e * oy)
        out = np.asarray(Image.fromarray(image).transform((size, size), Image.Transform.AFFINE, inv, Image.Resampling.BILINEAR, fillcolor=0))
        if len(boxes):
            pts = np.stack(
                [boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1
            ) * size  # (M, 4 corners, 2)
            rel = pts - c
            px = c + s * (cos * rel[..., 0] - sin * rel[..., 1]) + tx
            py = c + s * (sin * rel[..., 0] + cos * rel[..., 1]) + ty
            boxes = np.stack([px.min(1), py.min(1), px.max(1), py.max(1)], axis=1) / size
            boxes = np.clip(boxes, 0.0, 1.0).astype(np.float32)
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        shift = rng.uniform(-self.brightness, self.brightness) * 255.0
        mean = float(out.mean())
        out = np.clip((out.astype(np.float32) - mean) * gain + mean + shift, 0, 255).astype(np.uint8)
        return out, boxes


# ------------------------------------------------------------------------------------------------------- dataset
class CxrDataset(Dataset):
    """Samples as training items: the resized uint8 image plus label and box targets.

    An item is a dict with ``image`` ``(S, S)`` uint8 tensor (normalise batches with
    :func:`cxrdemo.preprocess.normalise`, the inference preprocessing), ``target`` ``(C,)`` float multi-hot,
    ``boxes`` ``(MAX_BOXES, 4)`` normalised xyxy, ``box_class`` ``(MAX_BOXES,)`` index into ``box_classes`` or -1
    for padding, and ``index``. Augmentation randomness depends only on ``(seed, epoch, index)``: identical with
    any number of workers. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        box_classes: Sequence[str],
        cache: ImageCache,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.box_index = {c: i for i, c in enumerate(box_classes)}
        self.cache = cache
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        image = self.cache.get(sample.path)
        kept = [b for b in sample.boxes if b.label in self.box_index][:MAX_BOXES]
        boxes = np.array([b.xyxy for b in kept], dtype=np.float32).reshape(-1, 4)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, boxes = self.augment(image, boxes, rng)
        box_t = np.zeros((MAX_BOXES, 4), dtype=np.float32)
        cls_t = np.full((MAX_BOXES,), -1, dtype=np.int64)
        for i, (b, xyxy) in enumerate(zip(kept, boxes)):
            if xyxy[2] - xyxy[0] > 1e-3 and xyxy[3] - xyxy[1] > 1e-3:  # a box pushed out of the frame is dropped
                box_t[i] = xyxy
                cls_t[i] = self.box_index[b.label]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "target": torch.from_numpy(sample.target(self.classes)),
            "boxes": torch.from_numpy(box_t),
            "box_class": torch.from_numpy(cls_t),
            "index": torch.tensor(index),
        }


def make_loader(dataset: CxrDataset, batch_size: int, shuffle: bool, workers: int = 0, seed: int = 0, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` (seeded shuffling; ``workers`` processes; persistent when > 0)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
    )
