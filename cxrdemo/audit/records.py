"""Per-image results of an audit run and the cache that makes ``--resume`` lose nothing.

An audit computes everything about one image while its pixels are decoded (probabilities, the ground-truth boxes
through every CAM method, ROAD, class sensitivity, the randomization cascade) and keeps it as one
:class:`ImageRecord`. Statistics come later, from the records of every image in the data set's order, so they do not
depend on batching, on the number of processes or on how many times the run was interrupted.

The cache (:class:`RecordCache`) holds results, never pixels: ``OUT/cache/<settings digest>/part-<rank>.jsonl``,
one JSON line per image, appended and flushed after every batch. The digest covers everything that changes a
record (the model's and the compared model's sha256, the methods, thresholds, tolerance, which parts were asked for,
the subsets' seeds), so a changed setting never reuses stale results. A run killed mid-line leaves a truncated last
line, which reading skips; that image is simply redone. Without ``--resume`` the cache folder is cleared first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .result import CaseRow


@dataclass
class ImageRecord:
    """Everything measured on one image.

    Attributes:
        index: the image's position in the run's sorted image list (fixes the order of every statistic).
        name: file name; ``width``, ``height``: original size.
        probabilities: the model's class probabilities (config class order).
        compare: the compared model's probabilities (``--compare-weights``), else ``None``.
        cases: one :class:`CaseRow` per ground-truth box and CAM method.
        road: method -> ROAD-combined score of the top-1 class's map (images in the faithfulness subset).
        class_sensitivity: method -> Spearman between the top-1 and the lowest-ranked class's maps.
        sanity: method -> ``{"spearman": [...], "ssim": [...]}`` one value per randomization step (sanity subset).
        detections: a detector's boxes (:class:`cxrdemo.audit.detection.BoxPredictor`) as ``[x1, y1, x2, y2,
            label, score]`` rows in original pixels; ``None`` for a model that is not a detector.
        detection_thumbnail: the gallery's picture of those boxes and the ground truth (``""``: none).
        agreement: class -> how well the readers agree on this image (:func:`cxrdemo.audit.regions.reader_agreement`),
            for the classes that at least two readers marked; ``None`` when none did.
        error: why the file could not be used (then nothing else is set).
        seconds: wall-clock seconds spent on the parts of this image: ``{"road": s, "sanity": s}``.
    """

    index: int
    name: str
    width: int = 0
    height: int = 0
    probabilities: list[float] = field(default_factory=list)
    compare: list[float] | None = None
    cases: list[CaseRow] = field(default_factory=list)
    road: dict[str, float] | None = None
    class_sensitivity: dict[str, float] | None = None
    sanity: dict[str, dict[str, list[float]]] | None = None
    detections: list[list[Any]] | None = None
    detection_thumbnail: str = ""
    agreement: dict[str, dict[str, float]] | None = None
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN kept as ``NaN``: Python's json reads it back)."""
        doc = dict(self.__dict__)
        doc["cases"] = [c.to_json() for c in self.cases]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ImageRecord":
        """Inverse of :meth:`to_json`."""
        doc = dict(doc)
        doc["cases"] = [CaseRow.from_json(c) for c in doc.get("cases", [])]
        return cls(**doc)


def settings_digest(settings: dict[str, Any]) -> str:
    """A short stable digest of the settings that shape a record."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RecordCache:
    """Per-image records on disk under ``root/cache/<digest>/`` (or nowhere, when ``root`` is ``None``).

    Args:
        root: the run's output folder (``None``: keep nothing, e.g. a caller that wants no files).
        settings: what shapes a record (see the module doc); written beside the records as ``settings.json``.
        rank: this process's rank; it appends to ``part-<rank>.jsonl`` only.
    """

    def __init__(self, root: str | Path | None, settings: dict[str, Any], rank: int = 0) -> None:
        self.settings = settings
        self.digest = settings_digest(settings)
        self.folder = Path(root) / "cache" / self.digest if root is not None else None
        self.rank = int(rank)
        self._handle = None

    def clear(self) -> None:
        """Forget every cached record of every setting (a fresh run without ``--resume``); rank 0 calls it."""
        if self.folder is not None and self.folder.parent.is_dir():
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    def load(self) -> dict[str, ImageRecord]:
        """Every complete record cached for these settings, by image name (a truncated line is skipped)."""
        out: dict[str, ImageRecord] = {}
        if self.folder is None or not self.folder.is_dir():
            return out
        for part in sorted(self.folder.glob("part-*.jsonl")):
            with part.open("r", encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        continue  # the run died while writing this line
                    try:
                        record = ImageRecord.from_json(json.loads(line))
                    except (ValueError, TypeError, KeyError):
                        continue
                    out[record.name] = record
        return out

    def append(self, records: Iterable[ImageRecord]) -> None:
        """Append ``records`` to this rank's part file and flush them to disk."""
        if self.folder is None:
            return
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            meta = self.folder / "settings.json"
            if not meta.is_file():
                tmp = meta.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(self.settings, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
                os.replace(tmp, meta)
            self._handle = (self.folder / f"part-{self.rank}.jsonl").open("a", encoding="utf-8")
        lines = "".join(json.dumps(r.to_json()) + "\n" for r in records)
        if lines:
            self._handle.write(lines)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close this rank's part file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
