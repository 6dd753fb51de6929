"""Typed results of one analysed radiograph, and their JSON form (the CLI / API schema).

JSON keys (exactly): ``image``, ``model``, ``probabilities``, ``boxes``, ``cam``, ``ground_truth``, ``iou``,
``timings_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .boxes import Box


#: How the note on a film that the model saw through a centre crop starts (the panels' footer repeats it).
CROP_NOTE = "centre crop:"

@dataclass(frozen=True)
class ClassProbability:
    """One class's probability and the model's decision threshold for it."""

    label: str
    probability: float
    threshold: float
    model_label: str | None = None  # the model's own name when it differs from ``label`` (cxrdemo.models)
    scored: bool = True  # False for a label with no NIH match: shown, never scored against NIH labels

    @property
    def positive(self) -> bool:
        """Whether the probability reaches the model's decision threshold."""
        return self.probability >= self.threshold


@dataclass
class CamResult:
    """A Grad-CAM map and the box cut from it.

    Attributes:
        method: CAM method name (e.g. ``"gradcam"``).
        target: class label the map explains.
        threshold: 0..255 threshold used to cut the box (CLN: 127 or 180).
        heatmap: ``(S, S)`` float32 in [0, 1], in the model frame (stretch to the image's size to overlay).
        box: the box around the largest region above ``threshold``, in original pixels; ``None`` when nothing is.
    """

    method: str
    target: str
    threshold: int
    heatmap: np.ndarray
    box: Box | None


#: How a box IoU is marked when the model's box is its prior, fitted on this very image's box.
PRIOR_FITTED_HERE = "prior box fitted on this image: not a result"


@dataclass(frozen=True)
class IouRow:
    """One ground-truth box compared with the model's box and the CAM box of the same class."""

    truth: Box
    box: Box | None
    cam_box: Box | None
    box_iou: float | None
    cam_iou: float | None
    #: The model's box is its learned per-class prior (the same box on every film, :mod:`cxrdemo.boxcheck`).
    box_prior: bool = False
    #: ...and this image is one of the model's training images: the prior was fitted on its own box, so the IoU
    #: measures the fit, not the model (the embedded model's Atelectasis prior IS the first example's NIH box).
    prior_fitted_here: bool = False

    @property
    def label(self) -> str:
        return self.truth.label

    @property
    def box_caveat(self) -> str:
        """What the box IoU is when it is not a result of the model looking at the image: ``""``, ``"prior box"``
        or ``"prior box fitted on this image: not a result"``."""
        if self.prior_fitted_here:
            return PRIOR_FITTED_HERE
        return "prior box" if self.box_prior else ""

    def box_iou_text(self, digits: int = 2) -> str:
        """The box IoU as shown (``"n/a"`` without a box), with its caveat in brackets when it has one."""
        if self.box_iou is None:
            return "n/a"
        caveat = self.box_caveat
        return f"{self.box_iou:.{digits}f}" + (f" ({caveat})" if caveat else "")


@dataclass(frozen=True)
class DetectionSummary:
    """How a detector's shown boxes meet the ground truth (:func:`cxrdemo.compare.detection_rows`).

    Attributes:
        score_threshold: boxes were shown when their score was above it.
        match_iou: a ground-truth box counts as found when the best box of its class overlaps it at least this much.
        matched: per ground-truth box (the rows' order), whether it was found.
        unmatched: shown boxes that are no ground-truth box's best match (false or unconfirmed findings).
        missed: ground-truth boxes not found.
    """

    score_threshold: float
    match_iou: float
    matched: tuple[bool, ...]
    unmatched: tuple[Box, ...]
    missed: tuple[Box, ...]


@dataclass
class Analysis:
    """Everything cxrdemo says about one radiograph.

    Attributes:
        image: the image name.
        width, height: original size in pixels.
        model: ``{"source", "revision", "architecture"}``.
        probabilities: every class, highest probability first.
        boxes: the model's boxes in original pixels (label, score = class probability), highest score first.
        cam: the Grad-CAM of the chosen target, or ``None`` when no CAM was asked for.
        ground_truth: ground-truth boxes in original pixels (NIH list or the caller's).
        ious: one row per ground-truth box.
        timings_ms: per-stage wall-clock times.
        notes: remarks for the user (multi-frame file shown as frame 1, ground truth scaled from 1024 px...).
        truth_source: where ``ground_truth`` came from: ``"NIH"`` (NIH's box list), ``"user"`` (typed or drawn),
            or ``""`` (none); panels and exports name it.
        boxes_static: the model's boxes do not depend on the image (its box head outputs the same box for any
            input, e.g. the per-class prior): panels and exports say "boxes: the per-class prior, not image-specific".
        model_region: the part of the film (original pixels) the model saw when its preprocessing cropped (a
            centre crop); ``None`` when it saw the whole film. The panels dim the rest; the JSON carries it as
            ``model_region`` only when it is set.
        detection: for an object detector, the score threshold and how its boxes meet the ground truth (the JSON
            carries it as ``detection`` only then); ``None`` for a classifier.
    """

    image: str
    width: int
    height: int
    model: dict[str, Any]
    probabilities: list[ClassProbability]
    boxes: list[Box]
    cam: CamResult | None
    ground_truth: list[Box] = field(default_factory=list)
    ious: list[IouRow] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    truth_source: str = ""
    boxes_static: bool = False
    model_region: Box | None = None
    detection: DetectionSummary | None = None

    @property
    def top(self) -> ClassProbability:
        """The highest-ranked class."""
        return self.probabilities[0]

    def box_for(self, label: str) -> Box | None:
        """The model's box for ``label`` (or the single box of a CLN-style model)."""
        for box in self.boxes:
            if box.label == label:
                return box
        return None

    def to_json(self) -> dict[str, Any]:
        """The JSON document of the CLI and the app's API."""
        cam = None
        if self.cam is not None:
            cam = {
                "method": self.cam.method,
                "target": self.cam.target,
                "threshold": self.cam.threshold,
                "box": self.cam.box.rounded() if self.cam.box is not None else None,
            }
        doc = {
            "image": self.image,
            "model": dict(self.model),
            "probabilities": [_probability_json(p) for p in self.probabilities],
            "boxes": [_box_json(b) for b in self.boxes],
            "cam": cam,
            "ground_truth": [{"label": b.label, "xyxy": b.rounded()} for b in self.ground_truth],
            "iou": [_iou_json(r) for r in self.ious],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.model_region is not None:
            doc["model_region"] = self.model_region.rounded()
        if self.detection is not None:
            d = self.detection
            for row, matched in zip(doc["iou"], d.matched):
                row["matched"] = matched
            doc["detection"] = {
                "score_threshold": d.score_threshold,
                "match_iou": d.match_iou,
                "unmatched": [_box_json(b) for b in d.unmatched],
                "missed": [{"label": b.label, "xyxy": b.rounded()} for b in d.missed],
            }
        return doc


def _iou_json(r: IouRow) -> dict[str, Any]:
    """``{"label", "box_iou", "cam_iou"}``, plus ``box_prior`` and ``prior_fitted_here`` (true) when the model's box is
    its per-class prior, and the prior was fitted on this image's own box."""
    row: dict[str, Any] = {
        "label": r.label,
        "box_iou": None if r.box_iou is None else round(r.box_iou, 4),
        "cam_iou": None if r.cam_iou is None else round(r.cam_iou, 4),
    }
    if r.box_prior:
        row["box_prior"] = True
    if r.prior_fitted_here:
        row["prior_fitted_here"] = True
    return row


def _box_json(b: Box) -> dict[str, Any]:
    """``{"label", "score", "xyxy"}`` of a model box."""
    return {"label": b.label, "score": round(float(b.score or 0.0), 6), "xyxy": b.rounded()}


def _probability_json(p: ClassProbability) -> dict[str, Any]:
    """``{"label", "probability"}``, plus ``model_label`` and ``scored`` where a foreign model's names differ."""
    row: dict[str, Any] = {"label": p.label, "probability": round(p.probability, 6)}
    if p.model_label is not None and p.model_label != p.label:
        row["model_label"] = p.model_label
    if not p.scored:
        row["scored"] = False
    return row
