"""transformers image classifiers: ``config.json`` (``id2label``, ``problem_type``) + ``preprocessor_config.json``
+ ``model.safetensors`` (or ``pytorch_model.bin``, read with ``weights_only=True`` by transformers), as
``save_pretrained`` writes them. ``trust_remote_code`` is never set: only architectures built into transformers load.

Probabilities follow the pipeline's rule: a sigmoid per output for ``problem_type="multi_label_classification"``
(or one output), else a softmax. Preprocessing is the model's own image processor (``AutoImageProcessor``) on the
film as RGB; the film region it keeps is computed from the same file (``size``, ``crop_pct``, ``crop_size``).
CAM layers: ViT, the input of the last encoder layer (class token dropped in the reshape); Swin, the final hidden
states (pooled by the classifier); ConvNeXt, the final feature map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ModelConfig
from ..errors import ConfigError
from .base import AdapterBase, sequence_to_grid, tokens_to_grid
from .bounds import HF_FIX as FIX, check_folder_bounds, check_parameter_count
from .files import count_parameters, first_names, read_card, read_json, weights_file
from .geometry import FilmView, centre_crop_view
from .labels import map_labels

#: ``model_type`` values whose network this adapter splits at the CAM layer.
SUPPORTED_TYPES = ("vit", "swin", "convnext")


def check_loading_info(info: dict, path: Path, what: str) -> None:
    """Refuse a model whose weights file did not fill it exactly (transformers only logs "newly initialized" and
    would run with random weights): one line with the counts of missing, unexpected and misshapen tensors and the
    first names of each, from ``from_pretrained(..., output_loading_info=True)``'s ``info``."""
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    wrong = sorted(str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys") or [])
    if missing or unexpected or wrong:
        raise ConfigError(
            f"{path.name} does not match {what}: {len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
            f"misshapen tensors ({first_names(wrong, missing, unexpected)}); {FIX}"
        )


def _size_pair(size: dict | int | None, default: int = 224) -> tuple[int, int] | int:
    if isinstance(size, int):
        return size
    size = size or {}
    if "shortest_edge" in size and size["shortest_edge"]:
        return int(size["shortest_edge"])
    return int(size.get("width") or default), int(size.get("height") or default)


def processor_view(proc: object, width: int, height: int) -> tuple[FilmView, int]:
    """The film region an image processor keeps, and the side of its output (square outputs only)."""
    size = _size_pair(getattr(proc, "size", None))
    crop_pct = getattr(proc, "crop_pct", None)
    if getattr(proc, "do_resize", True) is False:
        raise ConfigError("preprocessor_config.json has do_resize false; cxrdemo needs a fixed input size")
    if isinstance(size, int):
        s = size
        if crop_pct and s < 384:  # ConvNeXt: shortest edge to s / crop_pct, then an s x s centre crop
            r = int(s / crop_pct)
            rw, rh = (r, int(r * height / width)) if width <= height else (int(r * width / height), r)
            return centre_crop_view(width, height, (rw, rh), (s, s)), s
        if crop_pct:
            return FilmView.whole(width, height), s
        rw, rh = (s, int(s * height / width)) if width <= height else (int(s * width / height), s)
        crop = _size_pair(getattr(proc, "crop_size", None)) if getattr(proc, "do_center_crop", False) else None
        if not isinstance(crop, tuple):
            raise ConfigError("preprocessor_config.json resizes the shortest edge without a centre crop; the input would not be square")
        return centre_crop_view(width, height, (rw, rh), crop), crop[1]
    rw, rh = size
    if getattr(proc, "do_center_crop", False):
        crop = _size_pair(getattr(proc, "crop_size", None))
        crop = crop if isinstance(crop, tuple) else (crop, crop)
        return centre_crop_view(width, height, (rw, rh), crop), crop[1]
    return FilmView.whole(width, height), rh


class HfAdapter(AdapterBase):
    """A transformers image classifier (ViT, Swin, ConvNeXt) behind the adapter interface (no box head)."""

    format_name = "transformers"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

        cfg = read_json(folder / "config.json")
        kind = cfg.get("model_type")
        if kind not in SUPPORTED_TYPES:
            raise ConfigError(f"transformers model_type {kind!r} in {folder} is not supported; supported: {', '.join(SUPPORTED_TYPES)}")
        # Bounded, then counted on the meta device against the weights' header, before anything is allocated.
        check_folder_bounds(folder, "transformers")
        path = weights_file(folder)
        try:
            net_config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            with torch.device("meta"):
                shell = AutoModelForImageClassification.from_config(net_config)
        except Exception as exc:  # noqa: BLE001 - a config transformers refuses is one line
            raise ConfigError(f"transformers cannot build a model from config.json in {folder} ({' '.join(str(exc).split())[:120]}); {FIX}") from None
        check_parameter_count(count_parameters(shell), path, f"config.json in {folder} ({kind})", FIX)
        del shell
        try:
            net, info = AutoModelForImageClassification.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False, weights_only=True, use_safetensors=None,
                output_loading_info=True,
            )
            self.processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - any loader failure (incl. a refused pickle) is one line
            raise ConfigError(f"transformers cannot load {folder} ({' '.join(str(exc).split())[:120]}); check config.json and the weights") from None
        check_loading_info(info, path, f"config.json ({kind}, {net.config.num_labels} labels)")
        self.net = net.eval().requires_grad_(False)
        self.kind = kind
        n = int(net.config.num_labels)
        id2label = net.config.id2label or {}
        self.labels = map_labels([str(id2label.get(i, f"output {i}")) for i in range(n)])
        multi = net.config.problem_type == "multi_label_classification" or n == 1
        _, side = processor_view(self.processor, 1024, 1024)
        mean = list(getattr(self.processor, "image_mean", None) or [0.5, 0.5, 0.5])
        std = list(getattr(self.processor, "image_std", None) or [0.5, 0.5, 0.5])
        self.config = ModelConfig(
            architecture=f"transformers:{net.config.architectures[0] if net.config.architectures else kind}",
            classes=list(self.labels.shown), box_classes=[], class_mode="multilabel" if multi else "softmax",
            box_mode="none", input_size=side, channels=3, mean=mean, std=std, pretrained=str(folder),
        )
        self.card = read_card(folder)
        if kind == "vit":
            patch = int(net.config.patch_size)
            self.cam_reshape = tokens_to_grid(1, (side // patch, side // patch))  # type: ignore[assignment]
        elif kind == "swin":
            self.cam_reshape = sequence_to_grid  # type: ignore[assignment]

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:  # noqa: D102
        rgb = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"][0].float()

    def view(self, width: int, height: int) -> FilmView:  # noqa: D102
        return processor_view(self.processor, width, height)[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        net = self.net
        if self.kind == "vit":
            h = net.vit.embeddings(x)
            for layer in _vit_layers(net)[:-1]:
                h = _first(layer(h))
            return h
        if self.kind == "swin":
            return net.swin(pixel_values=x).last_hidden_state
        return net.convnext(pixel_values=x).last_hidden_state

    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        net = self.net
        if self.kind == "vit":
            h = net.vit.layernorm(_first(_vit_layers(net)[-1](features)))
            return net.classifier(h[:, 0, :])
        if self.kind == "swin":
            pooled = torch.flatten(net.swin.pooler(features.transpose(1, 2)), 1)
            return net.classifier(pooled)
        return net.classifier(net.convnext.layernorm(features.mean([-2, -1])))


def _first(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out  # type: ignore[return-value]


def _vit_layers(net: torch.nn.Module):
    """The encoder layers of a transformers ViT (``vit.layers`` in transformers 5, ``vit.encoder.layer`` before)."""
    vit = net.vit
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer
