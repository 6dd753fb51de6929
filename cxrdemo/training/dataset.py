"""The torch side of training: an image cache, box-consistent augmentation, the Dataset and its loader.

The labelled images themselves (CSV readers, :class:`Sample`, patient-wise splits and folds) are torch-free, in
:mod:`cxrdemo.datasets.samples`; their names are re-exported here so ``from cxrdemo.training.dataset import Sample`` keeps working.

Decoding a 1024 px PNG costs ~20 ms; :class:`ImageCache` decodes each file once, resized to the training size, and
keeps it in memory and (optionally) as ``.npy`` in a cache folder keyed by file, size and modification time, so
later epochs and later runs never decode again. Keep that folder OUTSIDE the repository: it holds image pixels.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..boxes import Box  # noqa: F401  (re-exported, as before the split)
from ..imaging import IMAGE_SUFFIXES, load_image  # noqa: F401
from ..datasets.nih import NIH_CLASSES, NIH_SIDE, read_box_csv, read_csv_text  # noqa: F401  (re-exported, as before the split)
from ..preprocess import resize_gray
from ..datasets.samples import (  # noqa: F401  (re-exported: the names importers used before the split)
    LabelRow, Sample, SampleSet, fold_split, label_counts, load_samples, patient_folds, read_label_csv, split_patients,
)

#: Most ground-truth boxes one NIH image carries (93 images have 2 to 4); more are dropped by the Dataset.
MAX_BOXES = 4


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
