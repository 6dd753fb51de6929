"""What every object detector (transformers, torchvision) shares behind the adapter interface.

A detector does not give one probability per class from a feature map; it gives boxes, each with a class and a
score. :class:`DetectorBase` keeps the :class:`~cxrdemo.models.base.AdapterBase` interface that the rest of cxrdemo
talks to and adds :meth:`DetectorBase.detect`:

- ``detect(x, width, height)`` runs the detector's own forward and post-processing once on a preprocessed film and
  returns a :class:`Detections`: every candidate box the library's post-processing keeps at the floor threshold
  (transformers: score > 0; torchvision: the model's own ``box_score_thresh``) in ORIGINAL film pixels, highest
  score first, and the backbone's last feature map captured by a forward hook in the same pass (the CAM layer);
- the image-level probability of a class is the highest score of its boxes (0 when it has none), so panel (c),
  thresholds and AUCs read the same numbers as the boxes (:func:`class_scores`);
- which boxes are shown is decided later by a score threshold (:func:`shown_boxes`): strictly above it, as both
  libraries' post-processing filter (``score > threshold``), so boxes equal ``pipeline(threshold=t)``.

The CAM layer is found in the first forward (:func:`find_cam_layer`): of the modules under the backbone, the last
to finish whose output IS the last feature map the backbone hands on (identity, so a position embedding of the
same shape is never taken); a transformer backbone (YOLOS) names its layer and reshapes tokens to a grid.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..boxes import Box
from ..compare import DEFAULT_SCORE_THRESHOLD
from ..errors import ConfigError, InputError
from .base import AdapterBase

#: Class names that mark a background / placeholder output (torchvision's ``__background__``, COCO's ``N/A``):
#: such outputs are neither shown nor scored.
BACKGROUND_NAMES = frozenset({"__background__", "background", "n/a", "__ignore__"})
#: Bounds on a detector's config, checked before anything is built (a file asking for more is refused).
MAX_DETECTOR_CLASSES = 1000
MAX_QUERIES = 1000
MAX_LAYERS = 48
MAX_WIDTH = 8192
MAX_INPUT_SIDE = 4096


@dataclass
class Detections:
    """One detector pass on one film.

    Attributes:
        boxes: every candidate box (label = the model's shown class name, score) in original pixels, highest first.
        features: the backbone's last feature map ``(1, C, h, w)`` (tokens already reshaped), detached, on the CPU.
        input_shape: ``(H, W)`` of the tensor the detector ran on (the CAM's frame).
    """

    boxes: list[Box]
    features: torch.Tensor
    input_shape: tuple[int, int]


def check_bounds(values: dict[str, Any], where: str) -> None:
    """One-line :class:`ConfigError` when a detector config asks for more than cxrdemo builds (see the ``MAX_*``)."""
    limits = {
        "num_queries": MAX_QUERIES, "num_detection_tokens": MAX_QUERIES, "num_labels": MAX_DETECTOR_CLASSES,
        "encoder_layers": MAX_LAYERS, "decoder_layers": MAX_LAYERS, "num_hidden_layers": MAX_LAYERS,
        "d_model": MAX_WIDTH, "hidden_size": MAX_WIDTH, "encoder_ffn_dim": 4 * MAX_WIDTH, "decoder_ffn_dim": 4 * MAX_WIDTH,
        "intermediate_size": 4 * MAX_WIDTH, "encoder_hidden_dim": MAX_WIDTH, "num_feature_levels": 8,
        "min_size": MAX_INPUT_SIDE, "max_size": MAX_INPUT_SIDE, "shortest_edge": MAX_INPUT_SIDE,
        "longest_edge": MAX_INPUT_SIDE, "height": MAX_INPUT_SIDE, "width": MAX_INPUT_SIDE,
        "detections_per_img": MAX_QUERIES, "box_detections_per_img": MAX_QUERIES,
    }
    for key, limit in limits.items():
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= limit:
            raise ConfigError(f"{key} = {value!r} in {where} is out of bounds (1..{limit}); use the config saved with the weights")


def is_background(name: str) -> bool:
    """True for a background / placeholder class name (:data:`BACKGROUND_NAMES`)."""
    return str(name).strip().lower() in BACKGROUND_NAMES


def shown_boxes(boxes: Sequence[Box], threshold: float) -> list[Box]:
    """The boxes whose score is strictly above ``threshold`` (as the libraries' post-processing keep them)."""
    return [b for b in boxes if (b.score or 0.0) > threshold]


def class_scores(boxes: Sequence[Box], classes: Sequence[str]) -> np.ndarray:
    """The image-level score of each class: its highest box score, 0 when it has no box (float32, class order)."""
    best = {c: 0.0 for c in classes}
    for b in boxes:
        if b.label in best:
            best[b.label] = max(best[b.label], float(b.score or 0.0))
    return np.asarray([best[c] for c in classes], dtype=np.float32)


def _tensors(out: object) -> list[torch.Tensor]:
    """The tensors of a module output (tensor, tuple/list, dict, ModelOutput), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def last_feature_map(out: object) -> torch.Tensor | None:
    """The last 4-D floating tensor of a module output (a backbone's deepest feature map), or ``None``."""
    maps = [t for t in _tensors(out) if t.dim() == 4 and t.is_floating_point()]
    return maps[-1] if maps else None


def find_cam_layer(root: nn.Module, run: Callable[[], object]) -> str:
    """The name (under ``root``) of the module that produces ``root``'s last feature map, found by running ``run``.

    Forward hooks on every module under ``root`` (``root`` included) record, in the order they finish, the modules
    whose output is a 4-D tensor; the answer is the last of them whose output is the very tensor ``root`` hands on
    (so the outermost module that made it), or the last 4-D output when none is (a backbone that copies its maps).
    """
    fired: list[tuple[str, torch.Tensor]] = []
    root_out: list[object] = []
    handles = []
    for name, module in root.named_modules():
        def hook(_m, _i, output, name=name):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.is_floating_point():
                fired.append((name, output))
        handles.append(module.register_forward_hook(hook))
    handles.append(root.register_forward_hook(lambda _m, _i, output: root_out.append(output)))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    if not fired:
        raise ConfigError("the detector's backbone gives no 2-D feature map; cxrdemo cannot place a CAM on it")
    final = last_feature_map(root_out[-1]) if root_out else None
    same = [name for name, t in fired if final is not None and t is final]
    return same[-1] if same else fired[-1][0]


class DetectorBase(AdapterBase):
    """An object detector behind the adapter interface (see module doc); subclasses implement :meth:`_run`."""

    is_detector = True
    has_box_head = True
    #: the shown score threshold when the caller gives none (from the model's files, else 0.5)
    score_threshold: float = DEFAULT_SCORE_THRESHOLD

    def __init__(self) -> None:
        super().__init__()
        # Hooks on the shared network fire for every pass through it: one hooked pass (detect, a gradient CAM) at a
        # time per detector, so that concurrent requests never read each other's activations.
        self.hook_lock = threading.RLock()

    def cam_root(self) -> nn.Module:
        """The backbone module under which the CAM layer is searched."""
        raise NotImplementedError

    def cam_layer_name(self) -> str | None:
        """A fixed CAM layer (relative to :meth:`cam_root`), or ``None`` to find it in the first forward."""
        return None

    def token_grid(self, input_shape: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The reshape of a transformer backbone's tokens to ``(N, D, h, w)`` for an input of ``input_shape``."""
        return None

    def raw_forward(self, x: torch.Tensor) -> object:
        """The network on a preprocessed batch ``(N, C, H, W)``: the library's raw outputs."""
        raise NotImplementedError

    def postprocess(self, outputs: object, sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """The library's own post-processing at its floor: per image ``{"boxes" (xyxy in the film's pixels), "labels",
        "scores"}`` for films of ``sizes`` ``(height, width)``."""
        raise NotImplementedError

    def cam_layer(self) -> nn.Module:
        """The module whose output is the CAM layer's activations."""
        name = self.cam_layer_name() or getattr(self, "_found_layer", None)
        root = self.cam_root()
        return root.get_submodule(name) if name else root

    def detect(self, x: torch.Tensor, width: int, height: int) -> Detections:
        """One pass of the detector on ``x`` ``(1, C, H, W)`` of a ``width x height`` film (see module doc)."""
        captured: list[torch.Tensor] = []

        def keep(_module: nn.Module, _inputs: object, out: object) -> None:
            found = last_feature_map(out)
            captured.append(found if found is not None else _tensors(out)[0])

        with self.hook_lock:
            if self.cam_layer_name() is None and getattr(self, "_found_layer", None) is None:
                # found once, by hooks on a first pass (the same outputs as any other pass)
                self._found_layer = find_cam_layer(self.cam_root(), lambda: self.raw_forward(x))
            handle = self.cam_layer().register_forward_hook(keep)
            try:
                with torch.no_grad():
                    outputs = self.raw_forward(x)
                    result = self.postprocess(outputs, [(height, width)])[0]
            finally:
                handle.remove()
        boxes = self.to_boxes(result, width, height)
        feats = captured[-1].detach()
        reshape = self.token_grid(tuple(x.shape[-2:]))
        if reshape is not None:
            feats = reshape(feats)
        return Detections(boxes, feats.float().cpu(), (int(x.shape[-2]), int(x.shape[-1])))

    def predict_boxes(self, images: Sequence[np.ndarray]) -> list[list[Box]]:
        """Every candidate box of each film (2-D uint8, original pixels), highest score first, in the same pixels:
        what the audit scores (:class:`cxrdemo.audit.detection.BoxPredictor`; AP and FROC need the boxes below the
        shown threshold too). One :meth:`detect` per film, as the single-case page runs it."""
        device = next(self.parameters()).device
        out = []
        for pixels in images:
            height, width = int(pixels.shape[0]), int(pixels.shape[1])
            out.append(self.detect(self.preprocess(pixels)[None].to(device), width, height).boxes)
        return out

    def to_boxes(self, result: dict[str, torch.Tensor], width: int, height: int) -> list[Box]:
        """Post-processed tensors -> :class:`Box` list (shown class names), background dropped, highest first."""
        names = self.label_names
        out = []
        for xyxy, label, score in zip(result["boxes"].tolist(), result["labels"].tolist(), result["scores"].tolist()):
            name = names.get(int(label))
            if name is None:
                continue
            out.append(Box(*(float(v) for v in xyxy), label=name, score=float(score)))
        return sorted(out, key=lambda b: -(b.score or 0.0))

    #: output label id -> the shown class name (background ids absent)
    label_names: dict[int, str]

    # the classifier interface, for code that treats every model alike (the audit's batches, bench)
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raise InputError("a detector runs through detect(), not forward_features(); use cxrdemo.predict.Predictor")

    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raise InputError("a detector has no class head on its feature map; its CAM targets a box (cxrdemo.explain)")
