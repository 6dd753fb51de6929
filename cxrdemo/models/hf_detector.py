"""transformers object detectors: DETR, Conditional DETR, Deformable DETR, RT-DETR (v1, v2) and YOLOS.

A folder as ``save_pretrained`` writes it: ``config.json`` (``architectures`` ending in ``ForObjectDetection``,
``id2label``), ``preprocessor_config.json`` (the image processor) and ``model.safetensors`` (safetensors only: a
detector's ``pytorch_model.bin`` is refused). ``trust_remote_code`` is never set.

The path is exactly the library's ``object-detection`` pipeline: the image processor on the film as RGB, the model
on ``pixel_values``, then ``image_processor.post_process_object_detection(outputs, threshold, target_sizes)`` with
the film's ``(height, width)``; boxes come back in original pixels. DETR and Conditional DETR score with a softmax
that has a no-object class, the others with a sigmoid and a top-k over (query, class); nothing applies NMS.

Before anything is built: the config's sizes are bounded (:func:`~cxrdemo.models.detector_base.check_bounds`),
the model is built on the ``meta`` device (no memory) and its parameter count compared with the tensors the
safetensors header lists, and after loading any missing, unexpected or misshapen tensor is refused in one line.
The documented score threshold is the config's ``score_threshold`` (a key cxrdemo reads when a model's author
sets it), else 0.5 as the pipeline. CAM layer: the backbone's last feature map (DETR family, RT-DETR); for YOLOS
the input of the last encoder block's attention (``layernorm_before``: there the detection tokens still read the
patch tokens), its patch tokens reshaped to the input's patch grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import ConfigError, WeightsError
from .config import ModelConfig
from .detector_base import DEFAULT_SCORE_THRESHOLD, DetectorBase, check_bounds, is_background
from .bounds import check_parameter_count
from .files import count_parameters, read_card, read_json
from .hf_adapter import check_loading_info
from .labels import map_labels

#: The ``model_type`` values loaded (each runs on the CPU in plain PyTorch: Deformable DETR and RT-DETR v2 use
#: their PyTorch deformable attention unless a ``kernels`` package is installed).
SUPPORTED_DETECTORS = ("detr", "conditional_detr", "deformable_detr", "rt_detr", "rt_detr_v2", "yolos")
MAX_WEIGHTS_HEADER = 100 << 20


def is_detector_config(cfg: dict) -> bool:
    """True when a transformers ``config.json`` describes an object detector (``architectures`` end so)."""
    archs = cfg.get("architectures") or []
    return isinstance(archs, list) and any(isinstance(a, str) and a.endswith("ForObjectDetection") for a in archs)


def _bounded(cfg: dict, proc: dict, folder: Path) -> None:
    check_bounds({**cfg, "num_labels": len(cfg.get("id2label") or {}) or None}, f"{folder}/config.json")
    backbone = cfg.get("backbone_config")
    if isinstance(backbone, dict):
        depths = backbone.get("depths") or []
        widths = backbone.get("hidden_sizes") or []
        if len(depths) > 8 or any(not isinstance(d, int) or d > 64 for d in depths) or any(not isinstance(w, int) or w > 8192 for w in widths):
            raise ConfigError(f"backbone_config in {folder}/config.json asks for more than 8 stages of 64 blocks of 8192 channels; use the config saved with the weights")
    size = proc.get("size")
    sizes = dict(size) if isinstance(size, dict) else ({"shortest_edge": size} if size is not None else {})
    if proc.get("max_size") is not None:  # the legacy spelling of longest_edge
        sizes["longest_edge"] = proc["max_size"]
    check_bounds(sizes, f"{folder}/preprocessor_config.json")


class HfDetector(DetectorBase):
    """A transformers object detector (see module doc)."""

    format_name = "transformers"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

        cfg = read_json(folder / "config.json")
        proc_cfg = read_json(folder / "preprocessor_config.json")
        kind = cfg.get("model_type")
        if kind not in SUPPORTED_DETECTORS:
            raise ConfigError(f"transformers detector model_type {kind!r} in {folder} is not supported; supported: {', '.join(SUPPORTED_DETECTORS)}")
        _bounded(cfg, proc_cfg, folder)
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise WeightsError(f"no model.safetensors in {folder}; cxrdemo loads a transformers detector from safetensors only (convert the .bin)")
        try:
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            if hasattr(config, "use_pretrained_backbone"):
                config.use_pretrained_backbone = False  # never fetch backbone weights: the folder holds them all
            with torch.device("meta"):
                skeleton = AutoModelForObjectDetection.from_config(config)
        except Exception as exc:  # noqa: BLE001 - any config failure is one line
            raise ConfigError(f"transformers cannot build the detector in {folder} ({' '.join(str(exc).split())[:120]}); check config.json") from None
        check_parameter_count(count_parameters(skeleton), weights, f"config.json in {folder} (a {kind} detector)",
                              "use the config saved with these weights")
        del skeleton
        try:
            net, info = AutoModelForObjectDetection.from_pretrained(
                str(folder), config=config, local_files_only=True, trust_remote_code=False, use_safetensors=True,
                output_loading_info=True,
            )
            self.processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"transformers cannot load {folder} ({' '.join(str(exc).split())[:120]}); check config.json and the weights") from None
        check_loading_info(info, weights, f"config.json in {folder} (a {kind} detector)")
        self.net = net.eval().requires_grad_(False)
        self.kind = kind
        id2label = {int(k): str(v) for k, v in (net.config.id2label or {}).items()}
        ids = sorted(i for i, name in id2label.items() if not is_background(name))
        self.labels = map_labels([id2label[i] for i in ids])
        self.label_names = dict(zip(ids, self.labels.shown))
        t = cfg.get("score_threshold", DEFAULT_SCORE_THRESHOLD)
        self.score_threshold = float(t) if isinstance(t, (int, float)) and 0 <= t <= 1 else DEFAULT_SCORE_THRESHOLD
        side = _nominal_side(self.processor)
        mean = list(getattr(self.processor, "image_mean", None) or [0.5] * 3)
        std = list(getattr(self.processor, "image_std", None) or [0.5] * 3)
        self.config = ModelConfig(
            architecture=f"transformers:{net.config.architectures[0] if net.config.architectures else kind}"[:64],
            classes=list(self.labels.shown), box_classes=list(self.labels.shown), class_mode="multilabel",
            box_mode="detections", input_size=side, channels=3, mean=mean, std=std, pretrained=str(folder)[:2000],
            thresholds={c: self.score_threshold for c in self.labels.shown},
        )
        self.card = read_card(folder)

    # ------------------------------------------------------------------ the pipeline's steps
    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:  # noqa: D102
        rgb = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
        return self.processor(images=[rgb], return_tensors="pt")["pixel_values"][0].float()

    def raw_forward(self, x: torch.Tensor) -> object:  # noqa: D102
        return self.net(pixel_values=x)

    def postprocess(self, outputs: object, sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:  # noqa: D102
        return self.processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=sizes)

    # ------------------------------------------------------------------ CAM layer
    def cam_root(self) -> nn.Module:  # noqa: D102
        if self.kind == "yolos":
            return self.net.vit.encoder
        return self.net.model.backbone

    def cam_layer_name(self) -> str | None:  # noqa: D102
        if self.kind == "yolos":
            return f"layer.{len(self.net.vit.encoder.layer) - 1}.layernorm_before"
        return None

    def token_grid(self, input_shape: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:  # noqa: D102
        if self.kind != "yolos":
            return None
        patch = self.net.config.patch_size
        ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
        h, w = input_shape[0] // ph, input_shape[1] // pw

        def reshape(tokens: torch.Tensor) -> torch.Tensor:
            grid = tokens[:, 1:1 + h * w, :]  # [CLS] first, detection tokens after the patches
            return grid.reshape(tokens.shape[0], h, w, tokens.shape[-1]).permute(0, 3, 1, 2)

        return reshape


def _nominal_side(proc: object) -> int:
    """The side cxrdemo draws a CAM at for this processor: its shortest edge (or height), at most 1024."""
    size = getattr(proc, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    side = get("shortest_edge") or get("height") or 800
    return int(min(max(int(side), 32), 1024))
