"""timm models: a folder (or Hub snapshot) with ``config.json`` (``architecture``, ``num_classes``, ``label_names``
or the legacy ``labels``, ``pretrained_cfg``) and ``model.safetensors``, as ``timm`` ``save_for_hf`` writes it.

The network is built by ``timm.create_model(architecture, pretrained=False, ...)`` from the folder's own config
(timm's parser, so the legacy flat layout works too) and its weights loaded by :mod:`cxrdemo.models.files`;
preprocessing is timm's eval transform as ``resolve_model_data_config`` resolves it (resize, interpolation,
``crop_pct``, ``crop_mode``, mean, std). The CAM layer: the final feature map of a CNN or Swin (``forward_head``
pools it); for a ViT, the input of the last block (its class token reads the patches there; after the last block
the patch tokens no longer reach the class token), with the prefix (class and register) tokens dropped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from ..errors import ConfigError
from .base import AdapterBase, DeclaredPreprocessing, channels_last_to_first, tokens_to_grid
from .bounds import TIMM_FIX as FIX, check_folder_bounds, check_parameter_count, safetensors_shapes
from .files import check_shapes, count_parameters, load_into, read_card, read_state, weights_file
from .labels import map_labels


def timm_preprocessing(data_config: dict) -> DeclaredPreprocessing:
    """timm's eval transform (``transforms_imagenet_eval``) for a resolved data config, as a declared pipeline."""
    _, h, w = data_config["input_size"]
    crop_pct = float(data_config.get("crop_pct") or 0.875)
    mode = data_config.get("crop_mode") or "center"
    interp = str(data_config.get("interpolation") or "bilinear")
    if interp == "random":
        interp = "bilinear"
    scale = (math.floor(h / crop_pct), math.floor(w / crop_pct))
    if mode == "squash":
        resize: tuple[str, object] = ("exact", (scale[1], scale[0]))
    elif mode == "center" and scale[0] == scale[1]:
        resize = ("shortest", scale[0])
    else:
        raise ConfigError(f"timm crop_mode {mode!r} with a non-square input is not supported; use crop_mode 'center' or 'squash'")
    return DeclaredPreprocessing(resize, interp, (w, h), tuple(data_config["mean"]), tuple(data_config["std"]), 3)


class TimmAdapter(AdapterBase):
    """A timm classifier behind the adapter interface (no box head)."""

    format_name = "timm"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        import timm
        from timm.models._hub import load_model_config_from_path

        # Bounded before timm parses it, then built on the meta device and matched against the weights' header,
        # so a hostile config never allocates (cxrdemo.models.bounds).
        check_folder_bounds(folder, "timm")
        try:
            pretrained_cfg, arch, model_args = load_model_config_from_path(folder)
        except (KeyError, TypeError, ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"config.json in {folder} is not a timm config ({exc.__class__.__name__}: {exc}); re-export it with timm save_for_hf") from None
        num_classes = int(pretrained_cfg.get("num_classes") or 0)
        if num_classes <= 0:
            raise ConfigError(f"config.json in {folder} has no num_classes; re-export it with timm save_for_hf")
        args = {**dict(model_args or {}), "num_classes": num_classes}
        what = f"timm {arch} with {num_classes} classes"
        path = weights_file(folder)

        def build() -> torch.nn.Module:
            try:
                return timm.create_model(arch, pretrained=False, pretrained_cfg=pretrained_cfg, **args)
            except (RuntimeError, ValueError, TypeError, KeyError, AssertionError, NotImplementedError) as exc:
                raise ConfigError(f"timm cannot build {arch!r} from {folder}/config.json ({' '.join(str(exc).split())[:100]}); check the architecture name") from None

        with torch.device("meta"):
            shell = build()
        check_parameter_count(count_parameters(shell), path, f"config.json in {folder} ({what})", FIX)
        state = read_state(path) if path.suffix != ".safetensors" else None
        found = {k: tuple(v.shape) for k, v in state.items()} if state is not None else safetensors_shapes(path)
        check_shapes({k: tuple(v.shape) for k, v in shell.state_dict().items()}, found, path, what)
        del shell
        net = build()
        load_into(net, state if state is not None else read_state(path), path, what)
        self.net = net.eval().requires_grad_(False)
        labels = list(pretrained_cfg.get("label_names") or [])
        if labels and len(labels) != num_classes:
            raise ConfigError(f"config.json in {folder} lists {len(labels)} labels for {num_classes} outputs; fix label_names")
        self.labels = map_labels(labels or [f"output {i}" for i in range(num_classes)])
        self.prep = timm_preprocessing(timm.data.resolve_model_data_config(net))
        single = pretrained_cfg.get("problem_type") == "single_label_classification"
        self.config = ModelConfig(
            architecture=f"timm:{arch}", classes=list(self.labels.shown), box_classes=[], class_mode="softmax" if single else "multilabel",
            box_mode="none", input_size=self.prep.crop[0] if self.prep.crop else 224, channels=3,
            mean=list(self.prep.mean), std=list(self.prep.std), pretrained=str(folder),
        )
        self.card = read_card(folder)
        self._vit = _is_vit(net)
        if self._vit:
            grid = tuple(net.patch_embed.grid_size)
            self.cam_reshape = tokens_to_grid(int(net.num_prefix_tokens), grid)  # type: ignore[assignment]
        elif getattr(net, "output_fmt", "NCHW") == "NHWC":
            self.cam_reshape = channels_last_to_first  # type: ignore[assignment]

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:  # noqa: D102
        return self.prep.apply(pixels)

    def view(self, width: int, height: int):  # noqa: D102
        return self.prep.view(width, height)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        net = self.net
        if not self._vit:
            return net.forward_features(x)
        x = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(x))))
        return net.blocks[:-1](x)

    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        net = self.net
        if self._vit:
            features = net.norm(net.blocks[-1](features))
        return net.forward_head(features)


def _is_vit(net: torch.nn.Module) -> bool:
    """A timm VisionTransformer-style model (patch embedding, a plain ``blocks`` sequence, prefix tokens)."""
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(net, VisionTransformer)
