"""Inference on one radiograph: forward pass, ranked probabilities, boxes in original pixels, CAM, IoUs.

The pipeline is split so that an interactive caller can reuse what it already has:

    Predictor.forward(radiograph)             -> Inference (probabilities, boxes, cached feature map)
    Predictor.cam(inference, CamRequest)      -> CamResult  (no new network pass)
    Predictor.assemble(inference, cam, truth) -> Analysis   (CAM boxes of the truth's classes, then
                                                             :func:`cxrdemo.compare.iou_rows`)

``Predictor.analyse`` runs all three. A :class:`Predictor` holds no per-request state: concurrent calls on one
predictor are safe (the CAM hooks are per call, see :mod:`cxrdemo.explain`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from .boxes import Box
from .boxcheck import STATIC_BOXES_NOTE, BoxProbe, probe_boxes
from .cams import DEFAULT_CAM_THRESHOLD, CamRequest, is_class_agnostic
from .compare import DEFAULT_SCORE_THRESHOLD, GroundTruth, check_score_threshold, detection_rows, ground_truth, iou_rows
from .models.config import ModelConfig
from .errors import InputError, WeightsError
from .explain import cam_box, cam_heatmaps, detector_heatmap
from .imaging import Radiograph
from .models.detector_base import class_scores, shown_boxes
from .models.geometry import FilmView
from .datasets.nih import TOP1, is_top1, match_class
from .preprocess import box_to_original
from .publicmode import clip_text
from .results import PRIOR_FITTED_HERE, Analysis, CamResult, ClassProbability, IouRow
from .models.weights import LoadedModel, describe_model, load_model

if TYPE_CHECKING:
    from .models.base import AdapterBase


def _fitted_notes(rows: Sequence[IouRow]) -> list[str]:
    """One note naming the classes whose box IoU compares the prior with the box it was fitted on."""
    fitted = [f"{r.label} {r.box_iou:.2f}" for r in rows if r.prior_fitted_here and r.box_iou is not None]
    if not fitted:
        return []
    return [f"box IoU {', '.join(fitted)}: {PRIOR_FITTED_HERE} (the model's box is the per-class prior, fitted on "
            "the training boxes, this image's among them)"]


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
        detections: a detector's candidate boxes in original pixels, highest score first (``None`` for a
            classifier); :meth:`Predictor.model_boxes` shows those above the score threshold.
        inputs: the preprocessed input a detector ran on (a gradient CAM reruns the detector on it).
    """

    image: str
    width: int
    height: int
    probabilities: np.ndarray
    boxes: np.ndarray
    features: torch.Tensor
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    detections: list[Box] | None = None
    inputs: torch.Tensor | None = None


class Predictor:
    """A loaded model plus the code to run it on radiographs."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.config: ModelConfig = loaded.config
        self.device = next(self.model.parameters()).device
        self.labels = self.model.labels  # the model's own label of each shown class
        #: an object detector (:mod:`cxrdemo.models.detector_base`): boxes from ``detect``, probabilities from boxes
        self.is_detector = bool(getattr(self.model, "is_detector", False))
        #: the score threshold boxes are shown above when the caller gives none (the model's documented one, else 0.5)
        self.score_threshold = float(getattr(self.model, "score_threshold", DEFAULT_SCORE_THRESHOLD))

    @classmethod
    def from_source(cls, source: str | None = None, *, device: str | None = None, sha256: str | None = None) -> "Predictor":
        """Load weights from ``source`` (folder, Hub id, or default) onto ``device``."""
        return cls(load_model(source, device=device, sha256=sha256))

    def rename(self, name: str) -> None:
        """Call the model ``name`` in every output from now on (``model.source`` of the JSON), instead of its folder
        or Hub id: what a public server shows (see :mod:`cxrdemo.webapp.sources`)."""
        self.loaded = replace(self.loaded, source=replace(self.loaded.source, name=name))

    @cached_property
    def box_probe(self) -> BoxProbe:
        """Whether this model's box head looks at the image (:mod:`cxrdemo.boxcheck`), probed once per predictor."""
        return probe_boxes(self.model, self.config, self.device)

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
        """Index of ``label`` in the config's classes; top-1 of ``probabilities`` when ``label`` means top-1."""
        if is_top1(label):
            if probabilities is None:
                raise InputError("no target class given and no probabilities to pick the top-1 from")
            return int(np.argmax(probabilities))
        classes = self.config.classes
        found = match_class(str(label), classes)
        if found is None:
            raise InputError(f"unknown class {clip_text(label)!r}; choose one of {', '.join(classes)} or {TOP1}")
        return classes.index(found)

    def forward_tensor(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Run the network on a ``(N, C, S, S)`` batch: probabilities, normalised boxes, feature maps (CPU)."""
        probs, boxes, features = network_outputs(self.model, batch.to(self.device, non_blocking=True))
        return probs, boxes, features.cpu()

    def forward(self, radiograph: Radiograph) -> Inference:
        """Preprocess and run one radiograph."""
        if self.is_detector:
            return self._detect(radiograph)
        timings: dict[str, float] = {}
        with _timed(timings, "preprocess"):
            x = self.model.preprocess(radiograph.pixels)[None]
        with _timed(timings, "forward"):
            probs, boxes, features = self.forward_tensor(x)
        if not (np.isfinite(probs).all() and np.isfinite(boxes).all()):
            # Finite weights can still overflow (e.g. absurd scales): never show NaN probabilities or boxes.
            raise WeightsError(
                f"the model gave NaN or infinite outputs on {radiograph.name}; its weights are probably corrupt: use other weights"
            )
        notes = [str(radiograph.metadata["note"])] if radiograph.metadata.get("note") else []
        return Inference(radiograph.name, radiograph.width, radiograph.height, probs[0], boxes[0], features, timings, notes)

    def _detect(self, radiograph: Radiograph) -> Inference:
        """A detector's forward: its own pass and post-processing, class probabilities from its boxes."""
        timings: dict[str, float] = {}
        with _timed(timings, "preprocess"):
            x = self.model.preprocess(radiograph.pixels)[None].to(self.device)
        with _timed(timings, "forward"):
            found = self.model.detect(x, radiograph.width, radiograph.height)
        if not all(np.isfinite([*b.xyxy, b.score or 0.0]).all() for b in found.boxes):
            raise WeightsError(
                f"the detector gave NaN or infinite boxes on {radiograph.name}; its weights are probably corrupt: use other weights"
            )
        probs = class_scores(found.boxes, self.config.classes)
        notes = [str(radiograph.metadata["note"])] if radiograph.metadata.get("note") else []
        return Inference(radiograph.name, radiograph.width, radiograph.height, probs, np.zeros((0, 4), np.float32),
                         found.features, timings, notes, found.boxes, x)

    def cam(self, inference: Inference, request: CamRequest = CamRequest()) -> CamResult:
        """The CAM that ``request`` asks for (target ``None`` = top-1) and its box, from the cached feature map."""
        index = self.class_index(request.target, inference.probabilities)
        return self._cams(inference, request, [index], strict=True)[0]

    def cams(self, inference: Inference, request: CamRequest, labels: Sequence[str]) -> dict[str, CamResult]:
        """The CAMs of several classes with ``request``'s method and threshold, in one batched call."""
        indices = [self.class_index(label, inference.probabilities) for label in dict.fromkeys(labels)]
        return {r.target: r for r in self._cams(inference, request, indices)} if indices else {}

    def _cams(self, inference: Inference, request: CamRequest, indices: list[int], strict: bool = False) -> list[CamResult]:
        if inference.detections is not None:
            return self._detector_cams(inference, request, indices, strict)
        feats = inference.features.expand(len(indices), *inference.features.shape[1:])
        maps = cam_heatmaps(self.model, feats, indices, request.method)
        view = self.model.view(inference.width, inference.height)
        out = []
        for index, heatmap in zip(indices, maps):
            heatmap = view.map_to_film(heatmap, self.config.input_size)  # a crop leaves the hidden border empty
            label = self.config.classes[index]
            box = cam_box(heatmap, request.threshold, width=inference.width, height=inference.height, label=label)
            out.append(CamResult(request.method, label, request.threshold, heatmap, box))
        return out

    def _detector_cams(self, inference: Inference, request: CamRequest, indices: list[int], strict: bool) -> list[CamResult]:
        """A detector's CAM per class: EigenCAM of the captured feature map, or a gradient CAM of the class's best box.

        A gradient CAM needs a box of the class: without one, ``strict`` (the CAM the user asked for) raises a
        one-line :class:`InputError`; otherwise (the CAM boxes of the ground truth's classes) the map is empty and
        its box ``None``."""
        out: list[CamResult] = []
        detections = inference.detections or []
        for index in indices:
            label = self.config.classes[index]
            if out and is_class_agnostic(request.method):  # EigenCAM: one map for every class, computed once
                out.append(replace(out[0], target=label, box=out[0].box and replace(out[0].box, label=label)))
                continue
            if not strict and not is_class_agnostic(request.method) and not any(b.label == label for b in detections):
                empty = np.zeros((self.config.input_size, self.config.input_size), np.float32)
                out.append(CamResult(request.method, label, request.threshold, empty, None))
                continue
            heatmap = detector_heatmap(self.model, inference.features, inference.inputs, inference.detections or [], label,
                                       request.method, self.config.input_size, (inference.height, inference.width))
            box = cam_box(heatmap, request.threshold, width=inference.width, height=inference.height, label=label)
            out.append(CamResult(request.method, label, request.threshold, heatmap, box))
        return out

    def model_boxes(self, inference: Inference, score_threshold: float | None = None) -> list[Box]:
        """The model's boxes in original pixels, highest score first: a classifier's box head scored by class
        probability, or a detector's boxes scoring above ``score_threshold`` (default :attr:`score_threshold`)."""
        if inference.detections is not None:
            t = self.score_threshold if score_threshold is None else check_score_threshold(score_threshold)
            return shown_boxes(inference.detections, t)
        view = self.model.view(inference.width, inference.height)
        return model_boxes_in_pixels(self.config, inference.probabilities, inference.boxes, inference.width, inference.height, view)

    def ranked(self, inference: Inference, score_threshold: float | None = None) -> list[ClassProbability]:
        """Every class with its probability and threshold, highest first (a detector's threshold: the score
        threshold its boxes are shown above, so a class is positive when one of its boxes is shown, or, at exact
        equality, when its best box scores the threshold itself)."""
        cfg = self.config
        lm = self.labels
        threshold = cfg.threshold if score_threshold is None else (lambda _c: float(score_threshold))
        rows = [
            ClassProbability(c, float(p), threshold(c), own, nih is not None)
            for c, p, own, nih in zip(cfg.classes, inference.probabilities, lm.model_labels, lm.nih)
        ]
        return sorted(rows, key=lambda r: -r.probability)

    def ground_truth(
        self,
        inference: Inference,
        boxes: Sequence[Box | Sequence[float] | dict] | None = None,
        lookup_nih: bool = True,
    ) -> GroundTruth:
        """Ground truth for an image: the caller's boxes if any (checked), else NIH's list by file name."""
        return ground_truth(inference.image, inference.width, inference.height, self.config.classes, boxes, lookup_nih)

    def cam_boxes(self, inference: Inference, cam: CamResult | None, labels: Sequence[str]) -> dict[str, Box | None] | None:
        """The box cut from the CAM of each of ``labels``, with ``cam``'s method and threshold (``None`` without a CAM)."""
        if cam is None:
            return None
        out: dict[str, Box | None] = {cam.target: cam.box}
        if inference.detections is not None and is_class_agnostic(cam.method):  # a detector's EigenCAM: one map
            return {**{label: cam.box and replace(cam.box, label=label) for label in labels}, **out}
        missing = [label for label in dict.fromkeys(labels) if label not in out]
        if missing:
            request = CamRequest(cam.method, None, cam.threshold)
            out.update({label: r.box for label, r in self.cams(inference, request, missing).items()})
        return out

    def assemble(
        self, inference: Inference, cam: CamResult | None, truth: GroundTruth = GroundTruth(), score_threshold: float | None = None
    ) -> Analysis:
        """Build the :class:`Analysis` from a forward pass, a CAM and checked ground truth (:meth:`ground_truth`).

        The CAM boxes of the ground truth's other classes are computed here, with the same method and threshold,
        then compared by :func:`cxrdemo.compare.iou_rows`; a detector's boxes are those above ``score_threshold``
        (default :attr:`score_threshold`), matched by :func:`cxrdemo.compare.detection_rows`.
        """
        timings = dict(inference.timings_ms)
        detection = None
        with _timed(timings, "compare"):
            boxes = self.model_boxes(inference, score_threshold)
            seen, view_notes = self.visible_truth(inference, truth)
            cam_boxes = self.cam_boxes(inference, cam, [b.label for b in seen])
            if inference.detections is not None:
                t = self.score_threshold if score_threshold is None else check_score_threshold(score_threshold)
                rows, detection = detection_rows(seen, boxes, cam_boxes, t)
            else:
                rows = self.mark_prior_rows(inference.image, iou_rows(seen, boxes, cam_boxes, self.config.box_mode == "single"))
        return Analysis(
            image=inference.image,
            width=inference.width,
            height=inference.height,
            model=self.model_info,
            probabilities=self.ranked(inference, None if detection is None else detection.score_threshold),
            boxes=boxes,
            cam=cam,
            ground_truth=list(truth.boxes),
            ious=rows,
            timings_ms=timings,
            notes=inference.notes + list(truth.notes) + self.provenance_notes(inference.image) + self._box_notes()
            + view_notes + _fitted_notes(rows),
            truth_source=truth.source,
            boxes_static=self.box_probe.all_static,
            model_region=self.model_region(inference),
            detection=detection,
        )

    def mark_prior_rows(self, image: str, rows: Sequence[IouRow]) -> list[IouRow]:
        """``rows`` with ``box_prior`` set where the model's box is its per-class prior (:attr:`box_probe`), and
        ``prior_fitted_here`` where, besides, ``image`` is one of the model's training images (``data_splits.json``):
        the prior was fitted on the training boxes, this image's among them, so its IoU is no result."""
        probe = self.box_probe
        splits = self.loaded.splits
        trained_on = splits is not None and splits.role(image) == "train"
        out = []
        for row in rows:
            prior = row.box is not None and (probe.all_static or row.box.label in probe.static_classes)
            out.append(replace(row, box_prior=prior, prior_fitted_here=prior and trained_on))
        return out

    def model_region(self, inference: Inference) -> Box | None:
        """The part of this film the model saw, in original pixels, when its preprocessing cropped; else ``None``."""
        return self.region_of(inference.width, inference.height)

    def region_of(self, width: int, height: int) -> Box | None:
        """:meth:`model_region` of a ``width`` x ``height`` film, known before the network runs."""
        view = self.model.view(width, height)
        return None if view.full else Box(view.x0, view.y0, view.x1, view.y1, "model input")

    def visible_truth(self, inference: Inference, truth: GroundTruth) -> tuple[list[Box], list[str]]:
        """The ground-truth boxes the model can be scored on, clipped to the part of the film it saw, and notes on
        what is not scored.

        A box of a class the model does not have (NIH's ``Atelectasis`` for a model whose outputs are ``output 0``..)
        is shown but never scored, with a note; a box less than half inside a centre crop is not scored either
        (:data:`cxrdemo.models.geometry.MIN_VISIBLE_FRACTION`).
        """
        boxes, notes = self.scorable_truth(truth.boxes)
        view = self.model.view(inference.width, inference.height)
        if view.full:
            return boxes, notes
        kept = [v for v in (view.visible(b) for b in boxes) if v is not None]
        notes = [view.note() or ""] + notes
        hidden = len(boxes) - len(kept)
        if hidden:
            notes.append(f"{hidden} ground-truth box(es) lie mostly outside the crop the model saw: not scored")
        return kept, notes

    def scorable_truth(self, boxes: Sequence[Box]) -> tuple[list[Box], list[str]]:
        """The boxes whose class the model has (labelled with the model's class name), and one note per class it
        lacks ("the model has no class 'Atelectasis': its ground truth is shown, not scored")."""
        classes = self.config.classes
        kept: list[Box] = []
        lacking: list[str] = []
        for box in boxes:
            found = match_class(str(box.label), classes)
            if found is None:
                lacking.append(str(box.label))
            else:
                kept.append(box if found == box.label else replace(box, label=found))
        notes = [f"the model has no class {clip_text(label, 40)!r}: its ground truth is shown, not scored" for label in dict.fromkeys(lacking)]
        return kept, notes

    def _box_notes(self) -> list[str]:
        if self.is_detector:
            return ["detector: a class's probability is its highest box score (0 without a box); boxes shown above the score threshold"]
        if self.config.box_mode == "none":
            return ["this model has no box head: only the CAM box is compared with the ground truth (model-box IoU skipped)"]
        probe = self.box_probe
        if probe.all_static:
            return [f"{STATIC_BOXES_NOTE}: this model's box head gives the same boxes whatever the image"]
        if probe.static_classes:
            return [f"boxes of {', '.join(probe.static_classes)}: the per-class prior, not image-specific"]
        return []

    def analyse(
        self,
        radiograph: Radiograph,
        *,
        cam_method: str | None = "gradcam",
        target: str | None = None,
        cam_threshold: int = DEFAULT_CAM_THRESHOLD,
        truth_boxes: Sequence[Box | Sequence[float] | dict] | None = None,
        lookup_nih: bool = True,
        score_threshold: float | None = None,
    ) -> Analysis:
        """The whole pipeline for one decoded radiograph (``cam_method=None`` skips the CAM; ``score_threshold``:
        a detector's boxes shown above it, default the model's documented one)."""
        inference = self.forward(radiograph)
        truth = self.ground_truth(inference, truth_boxes, lookup_nih)
        cam = None
        if cam_method:
            with _timed(inference.timings_ms, "cam"):
                cam = self.cam(inference, CamRequest(cam_method, target, cam_threshold))
        return self.assemble(inference, cam, truth, score_threshold)


def network_outputs(model: "AdapterBase", batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The one forward pass of cxrdemo (single images here, the audit's batches in :mod:`cxrdemo.audit.perimage`),
    for any model adapter (:mod:`cxrdemo.models`): a preprocessed ``(N, C, S, S)`` batch already on ``model``'s
    device -> probabilities and normalised boxes (NumPy, float32) and the feature map (float, on the device; a
    normal tensor, not an inference tensor, so that a CAM may differentiate the heads on it)."""
    with torch.no_grad():
        features = model.forward_features(batch)
        out = model.heads(features)
        probs = model.probabilities(out.logits).float().cpu().numpy()
        boxes = out.boxes.float().cpu().numpy()
    return probs, boxes, features.float()


def model_boxes_in_pixels(
    config: ModelConfig, probabilities: np.ndarray, boxes: np.ndarray, width: int, height: int, view: FilmView | None = None
) -> list[Box]:
    """The box head's output in an image's original pixels, scored by class probability, highest first.

    The one conversion of model boxes (the app, the CLI, ``evaluate`` and ``bench`` all call it): a per-class model
    gives one box per box class, labelled and scored by that class; a single-box (CLN) model gives its one box,
    labelled and scored by the top-1 class (:func:`cxrdemo.compare.model_box_for` compares it with every class).
    """
    if config.box_mode == "none":
        return []
    if config.box_mode == "single":
        top = int(np.argmax(probabilities))
        labelled = [(config.classes[top], float(probabilities[top]), boxes[0])]
    else:
        index = {c: i for i, c in enumerate(config.classes)}
        labelled = [(c, float(probabilities[index[c]]), boxes[k]) for k, c in enumerate(config.box_classes)]
    if view is not None and not view.full:
        out = [view.model_box_to_film(b, label, score) for label, score, b in labelled]
    else:
        out = [box_to_original(b, width, height, label, score) for label, score, b in labelled]
    return sorted(out, key=lambda b: -(b.score or 0.0))
