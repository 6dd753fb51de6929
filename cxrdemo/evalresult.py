"""The result of CLN's protocol in ``cxrdemo evaluate``: a plain dataclass, no computation.

- :class:`EvalResult`: per-class AUC, IoU accuracy of model, CAM and prior boxes; its
  :meth:`~EvalResult.to_json` is exactly today's ``report.json`` keys (:data:`REPORT_KEYS`).

The explanation audit's results (:class:`~cxrdemo.audit.result.AuditResult`, which holds an :class:`EvalResult`,
its :class:`~cxrdemo.audit.result.CaseRow` and :class:`~cxrdemo.audit.result.Skipped` rows) live in
:mod:`cxrdemo.audit.result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import BoxMatch

#: ``report.json`` keys of CLN's protocol, in order (unchanged since the first release).
REPORT_KEYS: tuple[str, ...] = (
    "n_images",
    "n_boxes",
    "auc",
    "mean_auc",
    "iou_accuracy",
    "cam_iou_accuracy",
    "prior_iou_accuracy",
    "model",
    "timings",
)


@dataclass
class EvalResult:
    """Everything one evaluation in CLN's protocol measured. :meth:`to_json` gives ``report.json``.

    Attributes beyond the report keys (``names``, ``y_true``, ``scores``, the ``*_matches``) feed plots and tests;
    ``y_true`` is 1 / 0, NaN where an uncertain label leaves the image out of that class's AUC.
    ``iou_accuracy`` and friends: ``{"0.1": {class: share of that class's boxes with IoU > T, "mean": mean of
    the classes' shares}}`` (the mean is over classes, not over boxes). ``cam_iou_accuracy`` is that of
    ``cam_method`` (the first method asked for).
    """

    n_images: int
    n_boxes: int
    auc: dict[str, float | None]
    mean_auc: float | None
    iou_accuracy: dict[str, dict[str, float | None]]
    cam_iou_accuracy: dict[str, dict[str, float | None]]
    prior_iou_accuracy: dict[str, dict[str, float | None]]
    model: dict[str, Any]
    timings: dict[str, float]
    classes: list[str] = field(default_factory=list)
    box_classes: list[str] = field(default_factory=list)
    cam_method: str = "gradcam"
    cam_threshold: int = 127
    names: list[str] = field(default_factory=list)
    y_true: np.ndarray | None = None
    scores: np.ndarray | None = None
    model_matches: list[BoxMatch] = field(default_factory=list)
    cam_matches: list[BoxMatch] = field(default_factory=list)
    prior_matches: list[BoxMatch] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` document of CLN's protocol (exactly :data:`REPORT_KEYS`)."""
        return {k: getattr(self, k) for k in REPORT_KEYS}
