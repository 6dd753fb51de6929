"""Side by side: every CAM method on one case, and two models on one radiograph.

Both reuse what the single-case page already has: the forward pass kept in the case (:class:`cxrdemo.predict.Inference`)
and its checked ground truth (:class:`cxrdemo.compare.GroundTruth`), so drawing every method costs CAMs only, never a
network pass. Drawing the results is :mod:`cxrdemo.render`'s job; this module computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .boxes import Box, iou
from .cams import CAM_METHOD_KEYS, CamRequest, is_class_agnostic, method_name
from .compare import GroundTruth

if TYPE_CHECKING:
    from .predict import Inference, Predictor
    from .results import Analysis, CamResult


@dataclass(frozen=True)
class MethodCell:
    """One CAM method on one case: its map for the target, its box, and IoU of its boxes with the ground truth.

    Attributes:
        method: the method key (``gradcam``...); ``name`` is how people write it.
        class_agnostic: the map is the same for every class (EigenCAM): the target does not apply.
        cam: the map and box for the case's target class.
        ious: per ground-truth box, ``(label, IoU of the CAM box of that label's class with it)``; 0.0 when no region
            of that class's map reached the threshold.
    """

    method: str
    name: str
    class_agnostic: bool
    cam: "CamResult"
    ious: tuple[tuple[str, float], ...]

    @property
    def caption(self) -> str:
        """One line for the grid: method, what the map explains, IoUs."""
        what = "class-agnostic" if self.class_agnostic else f"of {self.cam.target}"
        scores = ", ".join(f"{label} IoU {value:.2f}" for label, value in self.ious) or "no ground truth"
        return f"{self.name} ({what}): {scores}"

    def to_json(self) -> dict[str, object]:
        """JSON for the API: method, target, box and IoUs."""
        return {
            "method": self.method,
            "name": self.name,
            "target": None if self.class_agnostic else self.cam.target,
            "class_agnostic": self.class_agnostic,
            "threshold": self.cam.threshold,
            "box": None if self.cam.box is None else self.cam.box.rounded(),
            "iou": [{"label": label, "cam_iou": round(value, 4)} for label, value in self.ious],
        }


def compare_methods(
    predictor: "Predictor",
    inference: "Inference",
    truth: GroundTruth,
    target: str | None = None,
    threshold: int = CamRequest().threshold,
    methods: Sequence[str] = CAM_METHOD_KEYS,
) -> list[MethodCell]:
    """Every method in ``methods`` on the cached forward pass: the map of ``target`` (top-1 when ``None``) and the
    IoU of each ground-truth box with the box cut from its own class's map (as CLN scores CAM boxes)."""
    shown = predictor.config.classes[predictor.class_index(target, inference.probabilities)]
    seen, _ = predictor.visible_truth(inference, truth)  # a centre crop: only the boxes the model saw are scored
    cells = []
    for method in methods:
        request = CamRequest(method, target, threshold)
        # the shown class and every ground-truth class in one batched CAM call per method
        maps = predictor.cams(inference, request, [shown, *(g.label for g in seen)])
        ious = tuple((g.label, _iou_or_zero(maps[g.label].box, g)) for g in seen)
        cells.append(MethodCell(request.method, method_name(request.method), is_class_agnostic(request.method), maps[shown], ious))
    return cells


def _iou_or_zero(box: Box | None, truth: Box) -> float:
    return 0.0 if box is None else iou(box, truth)


@dataclass(frozen=True)
class ModelComparison:
    """The same radiograph through two models (A and B), with what differs.

    Attributes:
        a, b: each model's analysis (same CAM request and ground truth).
        top_changed: the two models rank different classes first.
        differences: per class, B's probability minus A's, largest absolute difference first (classes both know).
    """

    a: "Analysis"
    b: "Analysis"
    top_changed: bool
    differences: tuple[tuple[str, float], ...]

    def to_json(self) -> dict[str, object]:
        """``{"a": doc, "b": doc, "top_changed", "differences"}`` with each model's CLI/API document."""
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "top_changed": self.top_changed,
            "differences": [{"label": label, "b_minus_a": round(value, 6)} for label, value in self.differences],
        }


def compare_models(a: "Analysis", b: "Analysis") -> ModelComparison:
    """What differs between two analyses of one radiograph (computed by two predictors)."""
    pa = {p.label: p.probability for p in a.probabilities}
    pb = {p.label: p.probability for p in b.probabilities}
    common = [label for label in pa if label in pb]
    differences = sorted(((label, pb[label] - pa[label]) for label in common), key=lambda kv: -abs(kv[1]))
    return ModelComparison(a, b, a.top.label != b.top.label, tuple(differences))
