"""The results of the explanation audit (``cxrdemo evaluate``, the app's audit page): plain dataclasses, no
computation.

Data flows one way: :mod:`cxrdemo.audit.engine` builds these objects; :mod:`cxrdemo.report`,
:mod:`cxrdemo.audit.outputs`, :mod:`cxrdemo.audit.gallery` and the app read them; this module imports neither side.

- :class:`CaseRow`: one ground-truth box seen through one CAM method (a row of ``cases.csv`` and of the gallery).
- :class:`Skipped`: a file that could not be used and why (a row of ``skipped.csv``).
- :class:`AuditResult`: an :class:`~cxrdemo.evalresult.EvalResult` (CLN's protocol) plus the explanation audit
  (plausibility, faithfulness, sanity, class sensitivity, baseline comparisons, what was skipped); its ``to_json``
  adds :data:`AUDIT_KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evalresult import EvalResult

#: Keys the explanation audit adds after :data:`REPORT_KEYS` (``None`` where the part was not asked for).
AUDIT_KEYS: tuple[str, ...] = (
    "plausibility", "plausibility_reference", "faithfulness", "sanity", "class_sensitivity", "baseline", "detection",
    "skipped", "partial",
)  # fmt: skip


@dataclass(frozen=True)
class Skipped:
    """A file left out of the evaluation: its name and a one-line reason."""

    file: str
    reason: str


@dataclass
class CaseRow:
    """One ground-truth box seen through one CAM method.

    Attributes:
        image: file name; ``width``/``height``: its original size (all boxes are in these pixels).
        label: the box's class; ``box``: the ground-truth box ``[x1, y1, x2, y2]``; ``box_index``: its position
            among the image's boxes (tells two boxes of one class apart).
        probability: the model's probability of ``label`` on this image.
        model_iou: IoU of the model's box for ``label`` (box head) with the ground-truth box.
        prior_iou: IoU of the per-class prior box (the baseline a box head must beat).
        method: CAM method; ``cam_iou``: IoU of the CAM box (map >= threshold, largest region) with the box.
        metrics: map metrics of :data:`cxrdemo.audit.maps.MAP_METRICS` (pointing game, energy, mask IoUs).
        model_box, cam_box: the two predicted boxes (``None``: none), for the gallery.
        thumbnail: the gallery picture's path relative to the output folder (``""``: none written).
        region: what the truth is: ``"box"`` (one box of one reader: the box path of :mod:`cxrdemo.audit.maps`,
            ``box`` is that box) or ``"mask"`` (a mask, several regions or several readers: the region path;
            ``box`` is the bounding box of every region, and with several readers every figure is the mean over
            the readers, :mod:`cxrdemo.audit.regions`).
        n_readers: how many readers' truths the figures average (1 under the ``union`` rule).
        references: for a ``"mask"`` case, the reference maps' values on the same truth (computed with the case,
            as the masks are not kept); ``None`` for a box (:mod:`cxrdemo.audit.reference` computes them from it).
    """

    image: str
    width: int
    height: int
    label: str
    box: list[float]
    box_index: int
    probability: float
    model_iou: float | None  # None: the model has no box head (cxrdemo.models)
    prior_iou: float
    method: str
    cam_iou: float
    metrics: dict[str, float]
    model_box: list[float] | None = None
    cam_box: list[float] | None = None
    thumbnail: str = ""
    region: str = "box"
    n_readers: int = 1
    references: dict[str, dict[str, float]] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the per-image cache stores it)."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "CaseRow":
        """Inverse of :meth:`to_json`."""
        return cls(**doc)


@dataclass
class AuditResult:
    """An evaluation with the explanation audit. :meth:`to_json` gives the whole ``report.json``.

    Attributes:
        evaluation: CLN's protocol (AUC, IoU accuracies) on the same images.
        methods: the CAM methods audited, in the order asked.
        cases: one row per ground-truth box and method (box-major: every method of a box in a row).
        plausibility: per method: per map metric, overall and per class, each an estimate with its 95 % CI, and the
            method's ``verdict`` against the references.
        plausibility_reference: the same metrics of maps that ignore the model (a uniformly random map, a fixed
            centred map) on the same boxes (:mod:`cxrdemo.audit.reference`), or ``None`` without boxes.
        faithfulness: ROAD combined (top-1 class) per method, or ``None`` when not asked for.
        sanity: cascading randomization per method, or ``None``; ``class_sensitivity`` likewise.
        baseline: one paired comparison per baseline (predictions CSV, second model), or ``None``.
        detection: a detector's figures (:meth:`cxrdemo.audit.detection.DetectionResult.to_json`: AP and mAP at IoU
            0.5 and 0.4, IoU accuracy, FROC, each with its CI, and the images' errors), or ``None`` for a model that
            predicts no scored boxes.
        skipped: counts of what was left out (``skipped_files`` lists the files, for ``skipped.csv``);
            ``uncertain_labels``: per class, the images left out of that class's AUC only, their label uncertain.
        auc_ci: per label, the AUC's 95 % CI; ``mean_auc_ci``: the mean AUC's.
        compare_scores: the second model's probabilities on ``evaluation.names`` (``--compare-weights``).
        notes: one-line remarks for the report (seen images, class-agnostic maps...).
        options: the settings that shaped the numbers (methods, thresholds, resamples...), for the report.
        partial: ``None`` for a finished run; for a stopped one ``{"images_done", "images_planned", "resume"}``: the
            figures cover only the images done, and ``resume`` says how to continue.
    """

    evaluation: EvalResult
    methods: list[str] = field(default_factory=list)
    cases: list[CaseRow] = field(default_factory=list)
    plausibility: dict[str, Any] | None = None
    plausibility_reference: dict[str, Any] | None = None
    faithfulness: dict[str, Any] | None = None
    sanity: dict[str, Any] | None = None
    class_sensitivity: dict[str, Any] | None = None
    baseline: list[dict[str, Any]] | None = None
    detection: dict[str, Any] | None = None
    skipped: dict[str, Any] = field(default_factory=dict)
    skipped_files: list[Skipped] = field(default_factory=list)
    auc_ci: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    mean_auc_ci: dict[str, Any] | None = None
    compare_scores: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    partial: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """``report.json``: :data:`REPORT_KEYS` (CLN's protocol, unchanged) then :data:`AUDIT_KEYS`."""
        doc = self.evaluation.to_json()
        for key in AUDIT_KEYS:
            doc[key] = getattr(self, key)
        return doc


def partial_note(partial: dict[str, Any]) -> str:
    """The one line that says a report is partial (``AuditResult.partial``): in its notes, once."""
    return (f"partial report: {partial['images_done']} of {partial['images_planned']} images were done before the "
            f"audit was stopped; {partial['resume']}")
