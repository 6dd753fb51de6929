"""Ground truth and its comparison with the model: which boxes count as truth, and the IoU rows.

This module receives the model's boxes and the CAM boxes; it never runs the network or a CAM (data flows one way:
:mod:`cxrdemo.predict` computes, this module compares).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

from .boxes import Box, iou
from .errors import InputError
from .datasets.nih import NIH_SIDE
from .results import DetectionSummary, IouRow
from .datasets.truth import nih_boxes, user_boxes

#: A ground-truth box counts as found by a detector when the best box of its class overlaps it at least this much
#: (the VinDr-CXR challenge's IoU threshold; the audit reports AP at 0.4 and 0.5).
MATCH_IOU = 0.4
#: A detector's boxes are shown above this score when its model documents none (transformers' object-detection
#: pipeline's default); also the operating point of the audit's IoU accuracy and error gallery.
DEFAULT_SCORE_THRESHOLD = 0.5


def check_score_threshold(value: object, name: str = "score threshold") -> float:
    """``value`` as a detector score threshold in [0, 1] (NaN is not), else a one-line :class:`InputError` that
    names the field (``name``: ``--score-threshold`` on the command line, the page's field, the API's)."""
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} {str(value)[:40]!r} is not a number; give a value between 0 and 1") from None
    if not 0.0 <= t <= 1.0:
        raise InputError(f"{name} {t:g} is outside [0, 1]; give a value between 0 and 1")
    return t

#: Where a ground-truth box came from (the review CSV's ``ground_truth_source``): NIH's list, the user, or a
#: configured data set (:data:`SOURCE_DATASET` followed by its name).
SOURCE_NIH = "NIH"
SOURCE_USER = "user"
SOURCE_DATASET = "data set "


def is_radiologists(source: str) -> bool:
    """True when ground truth from ``source`` is radiologists' (NIH's list or a configured data set's)."""
    return source == SOURCE_NIH or source.startswith(SOURCE_DATASET)


@dataclass(frozen=True)
class GroundTruth:
    """Checked ground-truth boxes for one image, in its original pixels.

    Attributes:
        boxes: the boxes (labels are the model's class names).
        source: :data:`SOURCE_NIH`, :data:`SOURCE_USER`, :data:`SOURCE_DATASET` + a data set's name, or ``""``
            when there is none.
        notes: remarks for the user (NIH boxes scaled from 1024 px...).
    """

    boxes: tuple[Box, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def labels(self) -> list[str]:
        """The distinct classes of the boxes, in order of first appearance."""
        return list(dict.fromkeys(b.label for b in self.boxes))


#: ``lookup(image file name, width, height)``: the ground truth of an image that a configured data set lists, else
#: ``None`` (its boxes in that image's pixels, labels in the data set's NIH names, source :data:`SOURCE_DATASET`...)
TruthLookup = Callable[[str, int, int], Optional[GroundTruth]]


def ground_truth(
    image: str,
    width: int,
    height: int,
    classes: Sequence[str],
    boxes: Sequence[Box | Sequence[float] | Mapping[str, object]] | None = None,
    lookup_nih: bool = True,
    lookup: TruthLookup | None = None,
) -> GroundTruth:
    """The ground truth of an image: the caller's boxes if any (checked once here), else NIH's list by file name,
    else what ``lookup`` finds (the app's configured data sets, :meth:`cxrdemo.webapp.datasets.DatasetRegistry.truth_of`).

    Raises:
        BoxError: a caller's box names an unknown class, has no area, is out of order or outside the image.
    """
    if boxes:
        return GroundTruth(tuple(user_boxes(boxes, width, height, classes)), SOURCE_USER)
    if not lookup_nih:
        return GroundTruth()
    found = nih_boxes(image, width, height)
    if not found:
        return (lookup(image, width, height) if lookup is not None else None) or GroundTruth()
    notes: tuple[str, ...] = ()
    if (width, height) != (NIH_SIDE, NIH_SIDE):
        notes = (f"NIH boxes scaled from {NIH_SIDE}x{NIH_SIDE} to {width}x{height}",)
    return GroundTruth(tuple(found), SOURCE_NIH, notes)


def model_box_for(label: str, boxes: Sequence[Box], single_box: bool) -> Box | None:
    """The model's box compared with a ground-truth box of ``label``: its own class's box, or a single-box model's box."""
    found = next((b for b in boxes if b.label == label), None)
    if found is None and single_box and boxes:
        return boxes[0]
    return found


def iou_rows(
    truth: Sequence[Box],
    model_boxes: Sequence[Box],
    cam_boxes: Mapping[str, Box | None] | None,
    single_box: bool = False,
) -> list[IouRow]:
    """One row per ground-truth box: IoU with the model's box and with the CAM box of the same class.

    Args:
        truth: ground-truth boxes.
        model_boxes: the model's boxes in original pixels (:meth:`cxrdemo.predict.Predictor.model_boxes`).
        cam_boxes: class -> box cut from that class's CAM (``None`` when no region reached the threshold); ``None``
            when no CAM was computed (the rows' ``cam_iou`` is then ``None``).
        single_box: the model predicts one box per image (CLN), compared with every ground-truth class.
    """
    rows = []
    for g in truth:
        box = model_box_for(g.label, model_boxes, single_box)
        cam_box = None if cam_boxes is None else cam_boxes.get(g.label)
        cam_iou = None if cam_boxes is None else (0.0 if cam_box is None else iou(cam_box, g))
        rows.append(IouRow(g, box, cam_box, None if box is None else iou(box, g), cam_iou))
    return rows


def detection_rows(
    truth: Sequence[Box],
    boxes: Sequence[Box],
    cam_boxes: Mapping[str, Box | None] | None,
    score_threshold: float,
    match_iou: float = MATCH_IOU,
) -> tuple[list[IouRow], DetectionSummary]:
    """A detector's shown boxes against the ground truth: each ground-truth box with the box of its class that
    overlaps it most (its IoU shown; ``None`` when the class has no shown box), the boxes that are no ground-truth
    box's best match at ``match_iou`` or more (unmatched), and the ground-truth boxes without one (missed).

    A box may be the best match of two ground-truth boxes (two findings under one box): both count as found; this
    is the page's view of one image, not the one-to-one matching of AP (:mod:`cxrdemo.audit`).
    """
    rows: list[IouRow] = []
    matched: list[bool] = []
    used: set[int] = set()
    for g in truth:
        best, best_iou = None, -1.0
        for k, b in enumerate(boxes):
            if b.label == g.label:
                v = iou(b, g)
                if v > best_iou:
                    best, best_iou = k, v
        cam_box = None if cam_boxes is None else cam_boxes.get(g.label)
        cam_iou = None if cam_boxes is None else (0.0 if cam_box is None else iou(cam_box, g))
        box = None if best is None else boxes[best]
        rows.append(IouRow(g, box, cam_box, None if box is None else best_iou, cam_iou))
        found = best is not None and best_iou >= match_iou
        matched.append(found)
        if found:
            used.add(best)  # type: ignore[arg-type]
    unmatched = tuple(b for k, b in enumerate(boxes) if k not in used)
    missed = tuple(g for g, ok in zip(truth, matched) if not ok)
    return rows, DetectionSummary(float(score_threshold), float(match_iou), tuple(matched), unmatched, missed)
