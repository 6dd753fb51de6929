"""Detection figures of a detector's scored boxes against ground-truth boxes (numpy only; no torch).

Input: per image, the ground-truth boxes (:class:`~cxrdemo.boxes.Box` with a ``label``; any number per image and
class, possibly none) and the predicted boxes (``label`` and ``score``), both in the image's original pixels
(:class:`DetectionCase`). Only the ``classes`` asked for are scored: a predicted box of another label is dropped
(a detector's labels are matched to the data set's names before this module sees them).

**Matching** (shared by AP, FROC and the gallery's error counts). For one IoU threshold ``t``, image by image and
class by class, the predicted boxes are taken by descending score; ties in score keep the detector's own order (a
stable sort). Each one is matched to the still unmatched ground-truth box OF ITS CLASS with the highest IoU, if that
IoU is ``>= t``; among ground-truth boxes with the same IoU the one listed last wins. It is then a true positive
(TP); otherwise a false positive (FP): a second box on an already found finding is an FP, and every box on an image
without ground truth is an FP. This is exactly ``pycocotools``' ``COCOeval.evaluateImg`` without crowd or area rules
(IoU ``>= t``, as in the PASCAL VOC devkit; the VinDr-CXR page writes "IoU > 0.4", a difference only for an IoU of
exactly 0.4). Greedy matching in score order is prefix-consistent: keeping only the boxes above a score cut keeps
the same matches for them, which is what makes one matching serve every operating point below.

**AP** of a class: all its predicted boxes over every image, sorted by descending score, ties broken by image order
(the order of ``cases``), then by the detector's order within the image (a stable sort of the boxes listed image by
image: pycocotools' order when its image ids follow ``cases``). Recall = TP so far / ground-truth boxes of the class,
precision = TP / (TP + FP) so far; the precision is made non-increasing from the right (the "interpolated" PR curve).
Two definitions (``interpolation``):

- ``"voc"`` (default, reported): PASCAL VOC 2010-2012's all-point AP, the area under the interpolated PR curve,
  ``sum_i (r_i - r_{i-1}) * p_interp(r_i)`` over the recall steps. The VinDr-CXR Kaggle challenge ranked entries by
  "the standard PASCAL VOC 2010 mean Average Precision (mAP) at IoU > 0.4", which is this AP at ``t = 0.4``.
- ``"coco"``: COCO's 101-point AP, the mean of ``p_interp`` at recall 0, 0.01, ..., 1 (0 beyond the highest recall
  reached), exactly as ``pycocotools`` (used to check the matching and this module against the reference).

A class with no ground-truth box has AP **undefined** (``None`` / NaN; not 0, not 1), whatever its predictions;
a class with ground truth and no predicted box has AP 0. **mAP** is the unweighted mean over the classes with at least
one ground-truth box (``classes_in_mean``), as in VOC and COCO.

**IoU accuracy** (CLN Table 1, :func:`cxrdemo.metrics.iou_accuracy`): for each ground-truth box, the best IoU with a
predicted box OF ITS CLASS whose score is ``>= score_threshold`` (no such box: IoU 0); a cell is the share of a
class's boxes whose best IoU is larger than T (strictly), T = 0.1 .. 0.7; ``mean``: the unweighted mean over the
classes with boxes. This is CLN's definition with several boxes allowed (for a one-box-per-class head the best box
is that box), so detectors and box heads share a table. Unlike AP, a predicted box may serve several ground-truth
boxes here and false boxes cost nothing: it measures localisation of the findings, AP and FROC the whole detector.

**FROC** (lesion localisation): every predicted box of any of the ``classes``, pooled over classes, sorted as for AP.
A lesion (ground-truth box) is hit when the matching above pairs it with a box (same class, IoU ``>= t``). At each
score cut (between distinct scores: boxes with the same score enter together) sensitivity = lesions hit / lesions,
and false positives per image = FPs / images (every image counts, with or without ground truth). The sensitivity
at a rate ``f`` (1/8, 1/4, 1/2, 1, 2, 4, 8) is that of the lowest cut whose FP rate is ``<= f`` (the best operating
point not exceeding ``f``; no interpolation; when the detector never makes ``f`` FPs per image, its sensitivity with
every box kept). The summary is the mean over the seven rates (the CAD / LUNA16 "competition performance metric").

**Detectors in the audit** (:class:`BoxPredictor`): a loaded model object with a ``predict_boxes(images)`` method
is a detector for ``cxrdemo evaluate`` and the audit page: the engine hands it each batch's decoded radiographs
(2-D ``uint8`` arrays in original pixels, as :func:`cxrdemo.imaging.load_image` returns them) and it returns, per
image, its boxes (:class:`~cxrdemo.boxes.Box` with ``label`` and ``score``, original pixels). Its optional
``score_threshold`` attribute is the operating point of IoU accuracy and of the gallery's errors
(:data:`DEFAULT_SCORE_THRESHOLD` without one). A model without the method gets no detection figures.

**Confidence intervals**: percentile bootstrap over images (:mod:`cxrdemo.audit.stats`: the same
:func:`~cxrdemo.audit.stats.resample_indices` stream, ``n_resamples`` (1,000) resamples, ``seed`` fixed). Each
resample recomputes every figure from the per-image matches: an image drawn ``k`` times counts as ``k`` copies
(its ground-truth boxes and its predicted boxes, with the same matches, since matching never crosses images): the
resample is written out as a data set, the copies side by side in the data set's order, and its boxes ranked by the
same stable sort (:meth:`Matching.resampled`; weighting each box by ``k`` instead would reorder boxes tied in score
within an image). Counts (ground-truth boxes, images, IoU accuracy's shares) are weighted by ``k``. A figure
undefined on a resample (a class without ground truth there) skips that resample; a mean over classes skips the
resamples where one of its classes is undefined (every resample averages the same classes), as for the AUCs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..boxes import Box, iou_matrix
from ..compare import DEFAULT_SCORE_THRESHOLD  # the score cut of IoU accuracy and of the gallery's errors
from ..metrics import IOU_THRESHOLDS, threshold_key
from .stats import Estimate, interval_of, resample_indices

#: IoU thresholds of AP and FROC: 0.5 (PASCAL VOC, COCO's AP50) and 0.4 (the VinDr-CXR challenge).
AP_IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.4)
#: FROC's false-positive rates per image.
FROC_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: AP definitions (see the module doc).
INTERPOLATIONS: tuple[str, ...] = ("voc", "coco")
#: COCO's recall thresholds, built as pycocotools builds them (``np.linspace``, not ``arange``).
COCO_RECALLS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)


@runtime_checkable
class BoxPredictor(Protocol):
    """What makes a model a detector for the audit (see the module doc)."""

    def predict_boxes(self, images: Sequence[np.ndarray]) -> list[list[Box]]:
        """Per image (2-D uint8, original pixels), its scored, labelled boxes in the same pixels."""
        ...


def detector_of(model: Any) -> Callable[[Sequence[np.ndarray]], list[list[Box]]] | None:
    """``model.predict_boxes`` when ``model`` is a :class:`BoxPredictor`, else ``None``."""
    method = getattr(model, "predict_boxes", None)
    return method if callable(method) else None


def score_threshold_of(model: Any) -> float:
    """The detector's documented score threshold (its ``score_threshold``), else :data:`DEFAULT_SCORE_THRESHOLD`."""
    value = getattr(model, "score_threshold", None)
    try:
        value = float(value) if value is not None else DEFAULT_SCORE_THRESHOLD
    except (TypeError, ValueError):
        return DEFAULT_SCORE_THRESHOLD
    return value if 0.0 <= value <= 1.0 else DEFAULT_SCORE_THRESHOLD


def boxes_to_rows(boxes: Sequence[Box]) -> list[list[Any]]:
    """Boxes as JSON rows ``[x1, y1, x2, y2, label, score]`` (the per-image cache keeps them so)."""
    return [[float(b.x1), float(b.y1), float(b.x2), float(b.y2), str(b.label), float(_score(b))] for b in boxes]


def rows_to_boxes(rows: Sequence[Sequence[Any]]) -> tuple[Box, ...]:
    """Inverse of :func:`boxes_to_rows`."""
    return tuple(Box(float(r[0]), float(r[1]), float(r[2]), float(r[3]), str(r[4]), float(r[5])) for r in rows)


def rate_key(rate: float) -> str:
    """JSON key of an FP rate (``0.125`` -> ``"1/8"``, ``2.0`` -> ``"2"``)."""
    if rate < 1:
        return f"1/{round(1 / rate)}"
    return f"{rate:g}"


@dataclass(frozen=True)
class DetectionCase:
    """One image: its name, ground-truth boxes and predicted boxes (original pixels; predictions carry a score)."""

    name: str
    truth: tuple[Box, ...] = ()
    predicted: tuple[Box, ...] = ()


@dataclass(frozen=True)
class Matching:
    """Every scored predicted box of a data set matched at one IoU threshold, in AP's global order.

    Attributes:
        iou_threshold: the ``t`` of the matching.
        image, label, score: per predicted box (arrays of the same length, sorted by descending score, ties by image
            then by the detector's order): its image index, class index and score.
        tp: per predicted box, whether it matched a ground-truth box.
        gt_counts: ``(n_images, n_classes)`` ground-truth boxes per image and class.
        gt_hit: ``(n_images, n_classes)`` of those, how many were matched.
        listed: the permutation from the boxes as listed (image by image, each in the detector's order) to the
            ranked order above (``image[k] == listed_image[listed[k]]``); a resample re-ranks the listed boxes.
    """

    iou_threshold: float
    image: np.ndarray
    label: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    gt_counts: np.ndarray
    gt_hit: np.ndarray
    listed: np.ndarray

    @cached_property
    def _inverse(self) -> np.ndarray:
        inv = np.empty_like(self.listed)
        inv[self.listed] = np.arange(self.listed.size)  # listed position -> ranked position
        return inv

    def _blocks(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inverse permutation, and per image the number of boxes and where its block starts (listed order)."""
        inv = self._inverse
        lengths = np.bincount(self.image[inv], minlength=n)  # the listed order: images contiguous, ascending
        return inv, lengths, np.r_[0, np.cumsum(lengths)[:-1]]

    def resampled(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(label, score, tp)`` of the boxes of the resample where image ``i`` is drawn ``counts[i]`` times, ranked.

        The resample is written out as a data set: the drawn images in the data set's order, an image drawn ``k``
        times as ``k`` copies side by side (each copy with its boxes in the detector's order, the same matches,
        since matching never crosses images), then ranked by the same stable sort. Ties in score within an image
        make this differ from weighting each box by ``k`` (TP, FP, TP, FP is not TP, TP, FP, FP), hence the copies.
        """
        inv, lengths, starts = self._blocks(counts.size)
        n = counts.size
        copies = np.repeat(np.arange(n), counts)  # one entry per drawn copy, in image order
        sizes = lengths[copies]
        total = int(sizes.sum())
        if total == 0:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty.astype(bool)
        offsets = np.r_[0, np.cumsum(sizes)[:-1]]
        index = np.repeat(starts[copies] - offsets, sizes) + np.arange(total)
        rows = inv[index]  # listed position -> ranked position
        label, score, tp = self.label[rows], self.score[rows], self.tp[rows]
        rank = np.argsort(-score, kind="mergesort")
        return label[rank], score[rank], tp[rank]


def _check_classes(classes: Sequence[str]) -> list[str]:
    out = [str(c) for c in classes]
    if len(set(out)) != len(out):
        raise ValueError(f"classes must be distinct, not {out}")
    return out


def _score(box: Box) -> float:
    if box.score is None or not math.isfinite(float(box.score)):
        raise ValueError(f"predicted box {box.rounded()} of {box.label!r} has no finite score; a detector's box needs one")
    return float(box.score)


def match_image(truth: Sequence[Box], predicted: Sequence[Box], iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image and ONE class (see the module doc).

    Returns:
        ``(order, matched)``: ``order`` the predicted boxes' indices by descending score (stable), ``matched[k]``
        the index of the ground-truth box the ``k``-th of them matched, or -1.
    """
    scores = np.array([_score(p) for p in predicted], dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.full(len(order), -1, dtype=np.int64)
    if not len(truth) or not len(order):
        return order, matched
    ious = iou_matrix(np.array([predicted[k].xyxy for k in order]), np.array([g.xyxy for g in truth]))
    taken = np.zeros(len(truth), dtype=bool)
    for d in range(len(order)):
        best, m = float(iou_threshold), -1
        for g in range(len(truth)):
            if taken[g] or ious[d, g] < best:
                continue
            best, m = float(ious[d, g]), g  # ">=": an equal IoU later in the list wins, as in pycocotools
        if m >= 0:
            taken[m] = True
            matched[d] = m
    return order, matched


def match_cases(cases: Sequence[DetectionCase], classes: Sequence[str], iou_threshold: float) -> Matching:
    """The :class:`Matching` of ``cases`` at ``iou_threshold`` (predicted boxes of other labels dropped)."""
    classes = _check_classes(classes)
    index = {c: i for i, c in enumerate(classes)}
    n = len(cases)
    gt_counts = np.zeros((n, len(classes)), dtype=np.int64)
    gt_hit = np.zeros((n, len(classes)), dtype=np.int64)
    image: list[int] = []
    label: list[int] = []
    score: list[float] = []
    tp: list[bool] = []
    for i, case in enumerate(cases):
        mine = [p for p in case.predicted if p.label in index]  # the detector's order; other labels not scored
        hit = np.zeros(len(mine), dtype=bool)
        for k, cls in enumerate(classes):
            truth = [g for g in case.truth if g.label == cls]
            sel = [j for j, p in enumerate(mine) if p.label == cls]
            gt_counts[i, k] = len(truth)
            order, matched = match_image(truth, [mine[j] for j in sel], iou_threshold)
            gt_hit[i, k] = int((matched >= 0).sum())
            for o, m in zip(order, matched):
                hit[sel[int(o)]] = m >= 0
        image += [i] * len(mine)
        label += [index[p.label] for p in mine]
        score += [_score(p) for p in mine]
        tp += [bool(h) for h in hit]
    sco = np.array(score, dtype=np.float64)
    glob = np.argsort(-sco, kind="mergesort")  # stable: ties keep (image order, the detector's order)
    return Matching(
        float(iou_threshold), np.array(image, dtype=np.int64)[glob], np.array(label, dtype=np.int64)[glob], sco[glob],
        np.array(tp, dtype=bool)[glob], gt_counts, gt_hit, glob,
    )


def average_precision(tp: np.ndarray, n_truth: float, interpolation: str = "voc") -> float:
    """AP of one class from its predicted boxes' TP flags in ranked order (see the module doc).

    Args:
        tp: booleans, one per predicted box, best score first.
        n_truth: the class's ground-truth boxes; 0 gives NaN (undefined).
        interpolation: ``"voc"`` (all-point area) or ``"coco"`` (101 recall points).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    if n_truth <= 0:
        return math.nan
    tp = np.asarray(tp, dtype=bool)
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(~tp, dtype=np.float64)
    if tp_sum.size == 0:
        return 0.0
    recall = tp_sum / n_truth
    precision = tp_sum / (tp_sum + fp_sum)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if interpolation == "coco":
        at = np.searchsorted(recall, COCO_RECALLS, side="left")
        q = np.where(at < envelope.size, envelope[np.minimum(at, envelope.size - 1)], 0.0)
        return float(np.mean(q))
    steps = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(steps * envelope))


def froc_points(tp: np.ndarray, score: np.ndarray, n_truth: float, n_images: float) -> tuple[np.ndarray, np.ndarray]:
    """The FROC operating points ``(fp_per_image, sensitivity)``, from keeping no box to keeping every box.

    ``tp``/``score``: every box (any class), sorted by descending score; a point per distinct score (ties enter
    together). NaN sensitivities when ``n_truth`` is 0.
    """
    tp = np.asarray(tp, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(~tp, dtype=np.float64)
    last = np.flatnonzero(np.r_[score[1:] != score[:-1], True]) if score.size else np.zeros(0, dtype=np.int64)
    fppi = np.r_[0.0, fp_sum[last] / n_images] if n_images > 0 else np.r_[0.0, np.full(last.size, math.nan)]
    sens = np.r_[0.0, tp_sum[last] / n_truth] if n_truth > 0 else np.full(last.size + 1, math.nan)
    return fppi, sens


def froc_sensitivities(fppi: np.ndarray, sens: np.ndarray, rates: Sequence[float] = FROC_RATES) -> np.ndarray:
    """Sensitivity at each FP rate: that of the last operating point with ``fp_per_image <= rate``."""
    at = np.searchsorted(fppi, np.asarray(rates, dtype=np.float64), side="right") - 1
    return sens[at]


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class ApFigures:
    """AP per class and mAP at one IoU threshold.

    Attributes:
        iou_threshold: the matching's ``t``.
        per_class: class -> AP estimate (NaN, reported as ``null``, for a class without ground truth).
        mean: mAP over ``classes_in_mean`` (the classes with ground truth).
        n_truth, n_predicted: per class, ground-truth and predicted boxes.
    """

    iou_threshold: float
    per_class: dict[str, Estimate]
    mean: Estimate
    classes_in_mean: list[str]
    n_truth: dict[str, int]
    n_predicted: dict[str, int]

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "per_class": {c: e.to_json(ndigits) for c, e in self.per_class.items()},
            "mean": self.mean.to_json(ndigits),
            "classes_in_mean": list(self.classes_in_mean),
            "n_truth": dict(self.n_truth),
            "n_predicted": dict(self.n_predicted),
        }


@dataclass(frozen=True)
class FrocFigures:
    """FROC at one IoU threshold: sensitivity at each FP rate per image, their mean, and the whole curve."""

    iou_threshold: float
    sensitivity: dict[str, Estimate]
    mean: Estimate
    curve: list[tuple[float, float]]

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "sensitivity": {k: e.to_json(ndigits) for k, e in self.sensitivity.items()},
            "mean": self.mean.to_json(ndigits),
            "curve": [[round(f, 6), round(s, 6)] for f, s in self.curve],
        }


@dataclass(frozen=True)
class ImageErrors:
    """One image's errors at the gallery's operating point: missed findings and confident false boxes."""

    name: str
    missed: list[Box]
    false_boxes: list[Box]
    found: int
    n_truth: int

    @property
    def worst_false_score(self) -> float:
        return max((float(b.score or 0.0) for b in self.false_boxes), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.name,
            "n_truth": self.n_truth,
            "found": self.found,
            "missed": [{"label": b.label, "xyxy": b.rounded(1)} for b in self.missed],
            "false_boxes": [{"label": b.label, "score": round(float(b.score or 0.0), 4), "xyxy": b.rounded(1)} for b in self.false_boxes],
        }


@dataclass
class DetectionResult:
    """Every detection figure of one evaluation (see the module doc); :meth:`to_json` is ``report.json``'s
    ``detection``. ``n_predicted``: the boxes of the scored classes; ``n_unscored``: the boxes of other labels,
    left out."""

    classes: list[str]
    n_images: int
    n_truth: int
    n_predicted: int
    score_threshold: float
    interpolation: str
    ap: dict[str, ApFigures]
    iou_accuracy: dict[str, dict[str, Estimate]]
    froc: dict[str, FrocFigures]
    errors: list[ImageErrors] = field(default_factory=list)
    error_iou_threshold: float = 0.4
    n_unscored: int = 0
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "n_images": self.n_images,
            "n_truth": self.n_truth,
            "n_predicted": self.n_predicted,
            "n_unscored": self.n_unscored,
            "matching": "greedy by descending score (ties: image order, then the detector's order); each ground-truth box "
            "matched once, same class only, IoU >= threshold",
            "ap_definition": {"voc": "PASCAL VOC 2010 all-point AP (area under the interpolated PR curve)",
                              "coco": "COCO 101-point interpolated AP"}[self.interpolation],
            "ap": {k: v.to_json(ndigits) for k, v in self.ap.items()},
            "score_threshold": self.score_threshold,
            "iou_accuracy": {t: {c: e.to_json(ndigits) for c, e in row.items()} for t, row in self.iou_accuracy.items()},
            "froc": {k: v.to_json(ndigits) for k, v in self.froc.items()},
            "errors": {"iou_threshold": self.error_iou_threshold, "score_threshold": self.score_threshold,
                       "images": [e.to_json() for e in self.errors if e.missed or e.false_boxes]},
            "bootstrap": {"n_resamples": self.n_resamples, "seed": self.seed, "level": self.level, "unit": "image"},
        }  # fmt: skip


# ------------------------------------------------------------------------------------------- computation
class _Figures:
    """Every figure of a data set as a function of per-image weights (1 = the data set, draw counts = a resample)."""

    def __init__(self, cases: Sequence[DetectionCase], classes: list[str], iou_thresholds: Sequence[float],
                 score_threshold: float, accuracy_thresholds: Sequence[float], rates: Sequence[float], interpolation: str) -> None:  # fmt: skip
        self.classes = classes
        self.interpolation = interpolation
        self.rates = tuple(rates)
        self.accuracy_thresholds = tuple(accuracy_thresholds)
        self.matchings = [match_cases(cases, classes, t) for t in iou_thresholds]
        self.gt_counts = self.matchings[0].gt_counts if self.matchings else np.zeros((len(cases), len(classes)), dtype=np.int64)
        # IoU accuracy: per ground-truth box, its image, class and best same-class IoU with a box scored >= the cut
        img, lab, best = [], [], []
        index = {c: i for i, c in enumerate(classes)}
        for i, case in enumerate(cases):
            kept = [p for p in case.predicted if p.label in index and _score(p) >= score_threshold]
            for g in case.truth:
                if g.label not in index:
                    continue
                same = [p.xyxy for p in kept if p.label == g.label]
                value = float(iou_matrix(np.array([g.xyxy]), np.array(same)).max()) if same else 0.0
                img.append(i)
                lab.append(index[g.label])
                best.append(value)
        self.acc_image = np.array(img, dtype=np.int64)
        self.acc_label = np.array(lab, dtype=np.int64)
        self.acc_best = np.array(best, dtype=np.float64)

    def names(self) -> list[str]:
        """Names of the entries of :meth:`values`, in order."""
        out = []
        for m in self.matchings:
            key = f"{m.iou_threshold:g}"
            out += [f"ap/{key}/{c}" for c in self.classes] + [f"ap/{key}/mean"]
            out += [f"froc/{key}/{rate_key(r)}" for r in self.rates] + [f"froc/{key}/mean"]
        for t in self.accuracy_thresholds:
            out += [f"acc/{threshold_key(t)}/{c}" for c in self.classes] + [f"acc/{threshold_key(t)}/mean"]
        return out

    def values(self, counts: np.ndarray, in_mean: np.ndarray) -> np.ndarray:
        """Every figure with images weighted by ``counts``; means over the classes ``in_mean`` (NaN if one is)."""
        gt = (self.gt_counts * counts[:, None]).sum(axis=0).astype(np.float64)
        n_images = float(counts.sum())
        out: list[float] = []
        everyone = bool((counts == 1).all())
        for m in self.matchings:
            label, score, tp = (m.label, m.score, m.tp) if everyone else m.resampled(counts)
            aps = np.array([average_precision(tp[label == k], gt[k], self.interpolation) for k in range(len(self.classes))])
            out += list(aps) + [_mean(aps, in_mean)]
            fppi, sens = froc_points(tp, score, gt.sum(), n_images)
            at = froc_sensitivities(fppi, sens, self.rates)
            out += list(at) + [float(np.mean(at))]
        w_acc = counts[self.acc_image].astype(np.float64)
        per_class_w = np.bincount(self.acc_label, weights=w_acc, minlength=len(self.classes))
        for t in self.accuracy_thresholds:
            hits = np.bincount(self.acc_label, weights=w_acc * (self.acc_best > t), minlength=len(self.classes))
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(per_class_w > 0, hits / np.where(per_class_w > 0, per_class_w, 1.0), math.nan)
            out += list(share) + [_mean(share, in_mean)]
        return np.array(out, dtype=np.float64)


def _mean(values: np.ndarray, in_mean: np.ndarray) -> float:
    if not in_mean.any():
        return math.nan
    return float(np.mean(values[in_mean]))  # NaN when a class of the mean is undefined on this resample


def image_errors(cases: Sequence[DetectionCase], classes: Sequence[str], score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 iou_threshold: float = 0.4) -> list[ImageErrors]:  # fmt: skip
    """Per image, at the operating point (boxes scored ``>= score_threshold``, matched at ``iou_threshold``): the
    missed findings (ground-truth boxes no kept box matched) and the false boxes (kept boxes that matched none,
    most confident first). Sorted for the gallery: most missed findings first, then most false boxes, then the most
    confident false box, then the data set's order."""
    classes = _check_classes(classes)
    out: list[ImageErrors] = []
    for case in cases:
        missed: list[Box] = []
        false: list[Box] = []
        found = n_truth = 0
        for cls in classes:
            truth = [g for g in case.truth if g.label == cls]
            kept = [p for p in case.predicted if p.label == cls and _score(p) >= score_threshold]
            order, matched = match_image(truth, kept, iou_threshold)
            hit = set(int(m) for m in matched if m >= 0)
            n_truth += len(truth)
            found += len(hit)
            missed += [g for j, g in enumerate(truth) if j not in hit]
            false += [kept[int(o)] for o, m in zip(order, matched) if m < 0]
        false.sort(key=lambda b: -float(b.score or 0.0))
        out.append(ImageErrors(case.name, missed, false, found, n_truth))
    ranked = sorted(range(len(out)), key=lambda k: (-len(out[k].missed), -len(out[k].false_boxes), -out[k].worst_false_score, k))
    return [out[k] for k in ranked]


def detection_figures(
    cases: Sequence[DetectionCase],
    classes: Sequence[str],
    *,
    iou_thresholds: Sequence[float] = AP_IOU_THRESHOLDS,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    accuracy_thresholds: Sequence[float] = IOU_THRESHOLDS,
    rates: Sequence[float] = FROC_RATES,
    interpolation: str = "voc",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> DetectionResult:
    """AP and mAP, IoU accuracy and FROC of ``cases``, each with a bootstrap CI over images (see the module doc).

    Args:
        cases: one :class:`DetectionCase` per image, in the data set's order (it breaks ties in score).
        classes: the classes scored (predicted boxes of other labels are dropped).
        iou_thresholds: AP's and FROC's matching thresholds (0.5, 0.4).
        score_threshold: the score cut of IoU accuracy and of the gallery's errors.
        accuracy_thresholds: IoU accuracy's T (0.1 .. 0.7).
        rates: FROC's FP rates per image.
        interpolation: ``"voc"`` or ``"coco"`` (AP definition).
        n_resamples, seed, level: the bootstrap.
    """
    classes = _check_classes(classes)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, not {level}")
    for t in iou_thresholds:
        if not 0.0 < float(t) <= 1.0:
            raise ValueError(f"IoU threshold {t} must lie in (0, 1]")
    n = len(cases)
    figures = _Figures(cases, classes, iou_thresholds, float(score_threshold), accuracy_thresholds, rates, interpolation)
    names = figures.names()
    gt_per_class = figures.gt_counts.sum(axis=0)
    in_mean = gt_per_class > 0
    point = figures.values(np.ones(n, dtype=np.int64), in_mean) if n else np.full(len(names), math.nan)
    boot = np.array([figures.values(np.bincount(idx, minlength=n), in_mean) for idx in resample_indices(n, n_resamples, seed)])
    boot = boot.reshape(-1, len(names))
    est = {name: _estimate(point[j], boot[:, j], n, level) for j, name in enumerate(names)}

    n_truth = {c: int(gt_per_class[k]) for k, c in enumerate(classes)}
    ap: dict[str, ApFigures] = {}
    froc: dict[str, FrocFigures] = {}
    for m in figures.matchings:
        key = f"{m.iou_threshold:g}"
        n_pred = {c: int((m.label == k).sum()) for k, c in enumerate(classes)}
        ap[key] = ApFigures(m.iou_threshold, {c: est[f"ap/{key}/{c}"] for c in classes}, est[f"ap/{key}/mean"],
                            [c for c in classes if n_truth[c] > 0], n_truth, n_pred)  # fmt: skip
        fppi, sens = froc_points(m.tp, m.score, float(gt_per_class.sum()), float(n))
        froc[key] = FrocFigures(m.iou_threshold, {rate_key(r): est[f"froc/{key}/{rate_key(r)}"] for r in rates},
                                est[f"froc/{key}/mean"], [(float(f), float(s)) for f, s in zip(fppi, sens)])  # fmt: skip
    accuracy = {threshold_key(t): {**{c: est[f"acc/{threshold_key(t)}/{c}"] for c in classes}, "mean": est[f"acc/{threshold_key(t)}/mean"]}
                for t in accuracy_thresholds}  # fmt: skip
    error_t = 0.4 if 0.4 in [float(t) for t in iou_thresholds] else float(iou_thresholds[0]) if iou_thresholds else 0.4
    index = set(classes)
    return DetectionResult(
        classes=classes,
        n_images=n,
        n_truth=int(gt_per_class.sum()),
        n_predicted=sum(1 for c in cases for p in c.predicted if p.label in index),
        n_unscored=sum(1 for c in cases for p in c.predicted if p.label not in index),
        score_threshold=float(score_threshold),
        interpolation=interpolation,
        ap=ap,
        iou_accuracy=accuracy,
        froc=froc,
        errors=image_errors(cases, classes, score_threshold, error_t),
        error_iou_threshold=error_t,
        n_resamples=int(n_resamples),
        seed=int(seed),
        level=float(level),
    )


def _estimate(value: float, samples: np.ndarray, n: int, level: float) -> Estimate:
    if not math.isfinite(value):
        return Estimate.undefined(n)
    low, high = interval_of(samples, level)
    return Estimate(float(value), low, high, n)
