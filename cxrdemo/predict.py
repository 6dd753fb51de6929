"""Inference on one radiograph: forward pass, ranked probabilities, boxes in original pixels, CAM, IoUs.

The pipeline is split so that an interactive caller can reuse what it already has:

    Predictor.forward(radiograph)                 -> Inference (probabilities, boxes, cached feature map)
    Predictor.cam(inference, method, target, thr) -> CamResult  (no new network pass)
    Predictor.compare(inference, cam, truth)      -> Analysis   (IoUs against ground truth)

``Predictor.analyse`` runs all three. A :class:`Predictor` holds no per-request state: concurrent calls on one
predictor are safe (the CAM hooks are per call, see :mod:`cxrdemo.explain`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from .boxes import Box, iou
from .config import ModelConfig
from .errors import InputError, WeightsError
from .explain import DEFAULT_CAM_THRESHOLD, cam_box, cam_heatmaps, check_method, check_threshold
from .imaging import Radiograph
from .preprocess import box_to_original, to_tensor
from .results import Analysis, CamResult, ClassProbability, IouRow
from .truth import nih_boxes, user_boxes
from .weights import LoadedModel, describe_model, load_model


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


@dataclass
class Inference:
    """One forward pass, kept so the CAM and comparisons can be redone without the network.

    Attributes:
        image: the image name.
        width, height: original size.
        probabilities: ``(n_classes,)`` float array in config class order.
        boxes: ``(K, 4)`` normalised model-frame boxes.
        features: ``(1, F, h, w)`` final feature map on the CPU (the CAM layer's output).
        timings_ms: stage -> milliseconds so far.
        notes: remarks carried from decoding.
    """

    image: str
    width: int
    height: int
    probabilities: np.ndarray
    boxes: np.ndarray
    features: torch.Tensor
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Predictor:
    """A loaded model plus the code to run it on radiographs."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.config: ModelConfig = loaded.config
        self.device = next(self.model.parameters()).device

    @classmethod
    def from_source(cls, source: str | None = None, *, device: str | None = None, sha256: str | None = None) -> "Predictor":
        """Load weights from ``source`` (folder, Hub id, or default) onto ``device``."""
        return cls(load_model(source, device=device, sha256=sha256))

    @property
    def model_info(self) -> dict[str, str | None]:
        """``{"source", "revision", "architecture"}`` for JSON outputs."""
        return describe_model(self.loaded)

    def provenance_notes(self, image: str) -> list[str]:
        """A warning when ``image`` is one of the model's training or validation images (see :mod:`cxrdemo.provenance`)."""
        splits = self.loaded.splits
        note = splits.note(image) if splits is not None else None
        return [note] if note else []

    # ----------------------------------------------------------------------------------------------- stages
    def class_index(self, label: str | None, probabilities: np.ndarray | None = None) -> int:
        """Index of ``label`` in the config's classes; top-1 of ``probabilities`` when ``label`` is None/"top-1"."""
        if label in (None, "", "top-1", "top1", "auto"):
            if probabilities is None:
                raise InputError("no target class given and no probabilities to pick the top-1 from")
            return int(np.argmax(probabilities))
        classes = self.config.classes
        if label in classes:
            return classes.index(label)
        lowered = {c.lower(): i for i, c in enumerate(classes)}
        key = str(label).strip().lower().replace(" ", "_")
        key = {"infiltrate": "infiltration"}.get(key, key)
        if key in lowered:
            return lowered[key]
        raise InputError(f"unknown class {label!r}; choose one of {', '.join(classes)} or top-1")

    def forward_tensor(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Run the network on a ``(N, C, S, S)`` batch: probabilities, normalised boxes, feature maps (CPU)."""
        with torch.inference_mode():
            out = self.model(batch.to(self.device, non_blocking=True))
            probs = self.model.probabilities(out.logits).float().cpu().numpy()
            boxes = out.boxes.float().cpu().numpy()
            features = out.features.float().cpu()
        # A normal tensor (not an inference tensor) so the CAM may differentiate the head on it.
        return probs, boxes, features.clone()

    def forward(self, radiograph: Radiograph) -> Inference:
        """Preprocess and run one radiograph."""
        timings: dict[str, float] = {}
        with _timed(timings, "preprocess"):
            x = to_tensor(radiograph, self.config)
        with _timed(timings, "forward"):
            probs, boxes, features = self.forward_tensor(x)
        if not (np.isfinite(probs).all() and np.isfinite(boxes).all()):
            # Finite weights can still overflow (e.g. absurd scales): never show NaN probabilities or boxes.
            raise WeightsError(
                f"the model gave NaN or infinite outputs on {radiograph.name}; its weights are probably corrupt: use other weights"
            )
        notes = [str(radiograph.metadata["note"])] if radiograph.metadata.get("note") else []
        return Inference(radiograph.name, radiograph.width, radiograph.height, probs[0], boxes[0], features, timings, notes)

    def cam(
        self,
        inference: Inference,
        method: str = "gradcam",
        target: str | None = None,
        threshold: int = DEFAULT_CAM_THRESHOLD,
    ) -> CamResult:
        """The CAM of ``target`` (default top-1) and its box, from the cached feature map."""
        method = check_method(method)
        threshold = check_threshold(threshold)
        index = self.class_index(target, inference.probabilities)
        label = self.config.classes[index]
        heatmap = cam_heatmaps(self.model, inference.features, [index], method)[0]
        box = cam_box(heatmap, threshold, width=inference.width, height=inference.height, label=label)
        return CamResult(method, label, threshold, heatmap, box)

    def model_boxes(self, inference: Inference) -> list[Box]:
        """The model's boxes in original pixels, each scored by its class probability, highest first."""
        cfg = self.config
        probs = inference.probabilities
        if cfg.box_mode == "single":
            top = int(np.argmax(probs))
            labelled = [(cfg.classes[top], float(probs[top]), inference.boxes[0])]
        else:
            labelled = [
                (label, float(probs[cfg.classes.index(label)]), inference.boxes[k]) for k, label in enumerate(cfg.box_classes)
            ]
        boxes = [box_to_original(b, inference.width, inference.height, label, score) for label, score, b in labelled]
        return sorted(boxes, key=lambda b: -(b.score or 0.0))

    def ranked(self, inference: Inference) -> list[ClassProbability]:
        """Every class with its probability and threshold, highest first."""
        cfg = self.config
        rows = [ClassProbability(c, float(p), cfg.threshold(c)) for c, p in zip(cfg.classes, inference.probabilities)]
        return sorted(rows, key=lambda r: -r.probability)

    def ground_truth(
        self,
        inference: Inference,
        boxes: Sequence[Box | Sequence[float] | dict] | None = None,
        lookup_nih: bool = True,
    ) -> tuple[list[Box], list[str]]:
        """Ground truth for an image: the caller's boxes if any, else NIH's list by file name."""
        notes: list[str] = []
        if boxes:
            return user_boxes(boxes, inference.width, inference.height, self.config.classes), notes
        if not lookup_nih:
            return [], notes
        found = nih_boxes(inference.image, inference.width, inference.height)
        if found and (inference.width, inference.height) != (1024, 1024):
            notes.append(f"NIH boxes scaled from 1024x1024 to {inference.width}x{inference.height}")
        return found, notes

    def compare(
        self,
        inference: Inference,
        cam: CamResult | None,
        truth: list[Box],
        *,
        cam_boxes: dict[str, Box | None] | None = None,
    ) -> list[IouRow]:
        """IoU rows: each ground-truth box against the model's box and the CAM box of its own class."""
        boxes = self.model_boxes(inference)
        rows = []
        cam_boxes = dict(cam_boxes or {})
        for g in truth:
            model_box = next((b for b in boxes if b.label == g.label), None)
            if self.config.box_mode == "single" and model_box is None:
                model_box = boxes[0]
            if g.label not in cam_boxes:
                cam_boxes[g.label] = self._cam_box_for(inference, cam, g.label)
            cbox = cam_boxes[g.label]
            rows.append(
                IouRow(
                    g,
                    model_box,
                    cbox,
                    None if model_box is None else iou(model_box, g),
                    None if cam is None else (0.0 if cbox is None else iou(cbox, g)),
                )
            )
        return rows

    def _cam_box_for(self, inference: Inference, cam: CamResult | None, label: str) -> Box | None:
        if cam is None:
            return None
        if cam.target == label:
            return cam.box
        return self.cam(inference, cam.method, label, cam.threshold).box

    def assemble(
        self,
        inference: Inference,
        cam: CamResult | None,
        truth_boxes: Sequence[Box | Sequence[float] | dict] | None = None,
        lookup_nih: bool = True,
    ) -> Analysis:
        """Build the :class:`Analysis` from a forward pass, a CAM and the ground truth."""
        timings = dict(inference.timings_ms)
        with _timed(timings, "compare"):
            truth, notes = self.ground_truth(inference, truth_boxes, lookup_nih)
            rows = self.compare(inference, cam, truth)
        return Analysis(
            image=inference.image,
            width=inference.width,
            height=inference.height,
            model=self.model_info,
            probabilities=self.ranked(inference),
            boxes=self.model_boxes(inference),
            cam=cam,
            ground_truth=truth,
            ious=rows,
            timings_ms=timings,
            notes=inference.notes + notes + self.provenance_notes(inference.image),
        )

    def analyse(
        self,
        radiograph: Radiograph,
        *,
        cam_method: str | None = "gradcam",
        target: str | None = None,
        cam_threshold: int = DEFAULT_CAM_THRESHOLD,
        truth_boxes: Sequence[Box | Sequence[float] | dict] | None = None,
        lookup_nih: bool = True,
    ) -> Analysis:
        """The whole pipeline for one decoded radiograph (``cam_method=None`` skips the CAM)."""
        inference = self.forward(radiograph)
        cam = None
        if cam_method:
            with _timed(inference.timings_ms, "cam"):
                cam = self.cam(inference, cam_method, target, cam_threshold)
        return self.assemble(inference, cam, truth_boxes, lookup_nih)
