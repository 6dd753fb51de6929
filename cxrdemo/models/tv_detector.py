"""torchvision detectors: Faster R-CNN (ResNet-50 FPN v1/v2, MobileNetV3-Large FPN and 320 FPN), RetinaNet
(ResNet-50 FPN v1/v2), FCOS (ResNet-50 FPN) and SSDlite (MobileNetV3-Large, 320), from a folder:

- ``config.json``::

      {"builder": "fasterrcnn_resnet50_fpn",                 # one of BUILDERS
       "classes": ["__background__", "Nodule", "Mass"],      # label id -> name, len(classes) = num_classes
       "min_size": 800, "max_size": 1333,                    # torchvision's resize (not for SSDlite: fixed 320)
       "score_threshold": 0.5,                               # optional: the documented threshold to show boxes
       "box_score_thresh": 0.05, "detections_per_img": 100,  # optional: the model's own candidate filter
       "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}   # optional, torchvision's default

  ``classes`` follows torchvision's ``weights.meta["categories"]``: the list indexed by the label ids the model
  outputs, so Faster R-CNN and SSDlite keep ``"__background__"`` at 0; a ``__background__`` / ``N/A`` entry is
  never shown.
- ``model.safetensors``, or ``model.pth`` / ``model.pt`` holding a plain state dict (read with
  ``torch.load(weights_only=True)``: tensors only, no code).

The network is built by the builder with ``weights=None, weights_backbone=None`` (nothing downloaded), first on
the ``meta`` device to compare its parameter count with the file, then for real; the state dict must match it
exactly (one line naming the counts and the first mismatch otherwise). Preprocessing is nothing but the film as a
``[0, 1]`` RGB tensor: the model's own ``GeneralizedRCNNTransform`` (or SSD's) normalises, resizes and maps the
boxes back to the film, so the boxes are the model's eval-mode output exactly. CAM layer: the last stage of the
backbone's body (``layer4`` of a ResNet, the last returned block of a MobileNetV3), before the FPN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from .config import MAX_NAME_CHARS, ModelConfig
from .detector_base import DEFAULT_SCORE_THRESHOLD, MAX_DETECTOR_CLASSES, DetectorBase, check_bounds, is_background
from .files import check_state, read_card, read_json, read_state
from .bounds import check_parameter_count
from .labels import map_labels

#: builder -> (kwarg name of the candidate score floor, kwarg name of the box cap, takes min_size/max_size)
BUILDERS: dict[str, tuple[str, str, bool]] = {
    "fasterrcnn_resnet50_fpn": ("box_score_thresh", "box_detections_per_img", True),
    "fasterrcnn_resnet50_fpn_v2": ("box_score_thresh", "box_detections_per_img", True),
    "fasterrcnn_mobilenet_v3_large_fpn": ("box_score_thresh", "box_detections_per_img", True),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("box_score_thresh", "box_detections_per_img", True),
    "retinanet_resnet50_fpn": ("score_thresh", "detections_per_img", True),
    "retinanet_resnet50_fpn_v2": ("score_thresh", "detections_per_img", True),
    "fcos_resnet50_fpn": ("score_thresh", "detections_per_img", True),
    "ssdlite320_mobilenet_v3_large": ("score_thresh", "detections_per_img", False),
}
WEIGHT_NAMES = ("model.safetensors", "model.pth", "model.pt")
#: Keys a torchvision detector folder's config.json may hold.
KEYS = {"builder", "classes", "min_size", "max_size", "score_threshold", "box_score_thresh", "detections_per_img", "image_mean", "image_std"}


def is_torchvision_config(cfg: dict) -> bool:
    """True when a ``config.json`` names a torchvision detection builder."""
    return isinstance(cfg.get("builder"), str) and "classes" in cfg


def detector_weights(folder: Path) -> Path:
    """The weights file of a torchvision detector folder (:data:`WEIGHT_NAMES`, first found)."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"no {', '.join(WEIGHT_NAMES)} in {folder}; put the detector's state dict there")


def read_tv_config(folder: Path) -> dict:
    """The checked config of a torchvision detector folder (one-line :class:`ConfigError` on any problem)."""
    cfg = read_json(folder / "config.json")
    where = f"{folder}/config.json"
    unknown = sorted(set(cfg) - KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key {unknown[0]!r}; a torchvision detector config holds {', '.join(sorted(KEYS))}")
    builder = cfg.get("builder")
    if builder not in BUILDERS:
        raise ConfigError(f"builder {str(builder)[:64]!r} in {where} is not a torchvision detector cxrdemo builds; use one of {', '.join(BUILDERS)}")
    classes = cfg.get("classes")
    if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_DETECTOR_CLASSES or not all(isinstance(c, str) and 0 < len(c) <= MAX_NAME_CHARS for c in classes):
        raise ConfigError(f"'classes' in {where} must list 2..{MAX_DETECTOR_CLASSES} names of 1..{MAX_NAME_CHARS} characters (label id order, background first)")
    check_bounds({k: cfg.get(k) for k in ("min_size", "max_size", "detections_per_img")}, where)
    if not BUILDERS[builder][2] and ("min_size" in cfg or "max_size" in cfg):
        raise ConfigError(f"{builder} has a fixed 320 px input; remove min_size/max_size from {where}")
    if "min_size" in cfg and "max_size" in cfg and cfg["max_size"] < cfg["min_size"]:
        raise ConfigError(f"max_size {cfg['max_size']} < min_size {cfg['min_size']} in {where}; max_size bounds the longer side")
    for key in ("score_threshold", "box_score_thresh"):
        v = cfg.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
            raise ConfigError(f"{key} = {v!r} in {where} must be a number in [0, 1]")
    for key in ("image_mean", "image_std"):
        v = cfg.get(key)
        if v is not None and (not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) or (key == "image_std" and min(v) <= 0)):
            raise ConfigError(f"{key} in {where} must be three numbers (positive for image_std)")
    return cfg


def build_detector(cfg: dict) -> nn.Module:
    """The torchvision detector a checked config names, randomly initialised, nothing downloaded."""
    from torchvision.models import detection

    builder = cfg["builder"]
    floor_key, cap_key, sized = BUILDERS[builder]
    kwargs: dict = {"weights": None, "weights_backbone": None, "num_classes": len(cfg["classes"])}
    if sized:
        kwargs.update({k: int(cfg[k]) for k in ("min_size", "max_size") if k in cfg})
    if "box_score_thresh" in cfg:
        kwargs[floor_key] = float(cfg["box_score_thresh"])
    if "detections_per_img" in cfg:
        kwargs[cap_key] = int(cfg["detections_per_img"])
    for key in ("image_mean", "image_std"):
        if key in cfg:
            kwargs[key] = [float(v) for v in cfg[key]]
    return getattr(detection, builder)(**kwargs)


class TvDetector(DetectorBase):
    """A torchvision detector (see module doc)."""

    format_name = "torchvision"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        cfg = read_tv_config(folder)
        path = detector_weights(folder)
        try:
            with torch.device("meta"):
                needed = sum(t.numel() for t in build_detector(cfg).state_dict().values())
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ConfigError(f"torchvision cannot build {cfg['builder']} from {folder}/config.json ({' '.join(str(exc).split())[:100]})") from None
        check_parameter_count(needed, path, f"config.json in {folder} (a {cfg['builder']})",
                              "use the config saved with these weights")
        net = build_detector(cfg)
        state = read_state(path)
        check_state(net, state, path, f"config.json ({cfg['builder']}, {len(cfg['classes'])} classes)")
        net.load_state_dict(state, strict=True)
        self.net = net.eval().requires_grad_(False)
        self.weights_path = path
        self.builder = cfg["builder"]
        ids = [i for i, name in enumerate(cfg["classes"]) if not is_background(name)]
        self.labels = map_labels([cfg["classes"][i] for i in ids])
        self.label_names = dict(zip(ids, self.labels.shown))
        self.score_threshold = float(cfg.get("score_threshold", DEFAULT_SCORE_THRESHOLD))
        side = int(cfg.get("min_size", 800 if BUILDERS[self.builder][2] else 320))
        if self.builder == "fasterrcnn_mobilenet_v3_large_320_fpn" and "min_size" not in cfg:
            side = 320
        self.config = ModelConfig(
            architecture=f"torchvision:{self.builder}", classes=list(self.labels.shown), box_classes=list(self.labels.shown),
            class_mode="multilabel", box_mode="detections", input_size=min(side, 1024), channels=3,
            mean=list(cfg.get("image_mean", [0.485, 0.456, 0.406])), std=list(cfg.get("image_std", [0.229, 0.224, 0.225])),
            pretrained=str(folder)[:2000], thresholds={c: self.score_threshold for c in self.labels.shown},
        )
        self.card = read_card(folder)

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:  # noqa: D102
        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8)).float().div_(255.0)
        return x[None].expand(3, -1, -1).contiguous()

    def raw_forward(self, x: torch.Tensor) -> object:  # noqa: D102
        return self.net(list(x))

    def postprocess(self, outputs: object, sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:  # noqa: D102
        return list(outputs)  # type: ignore[arg-type] - eval mode already returns boxes in the input's pixels

    def cam_root(self) -> nn.Module:  # noqa: D102
        backbone = self.net.backbone
        return backbone.body if hasattr(backbone, "body") else backbone.features
