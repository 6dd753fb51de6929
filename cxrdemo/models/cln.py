"""The multi-task network of the CLN family: one backbone, a classification head and a box-regression head.

    image -> backbone -> feature map A (N, F, h, w) -> global average pool -> f (N, F)
        f -> dropout -> Linear(F, n_classes)                      = class logits
        f -> 512 -> 256 -> 128 (ReLU, as CLN) -> Linear(128, 4*K) = box parameters -> boxes in [0, 1]

CLN flattens the feature map; global average pooling keeps the head small and lets Grad-CAM be read exactly from
the pooled map. Boxes are parameterised so they are always valid: ``x1 = s(a)``, ``x2 = x1 + (1 - x1) s(c)`` (same
for y) with ``s`` the logistic function, so ``0 <= x1 <= x2 <= 1`` without any post-hoc fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .backbones import build_backbone, cam_layer, get_spec
from .config import ModelConfig
from .base import AdapterBase
from .labels import LabelMap, map_labels


@dataclass
class MultiTaskOutput:
    """Raw network output for a batch.

    Attributes:
        logits: ``(N, n_classes)`` classification logits.
        boxes: ``(N, K, 4)`` normalised ``xyxy`` boxes in the model input frame (K = box classes, or 1).
        features: ``(N, F, h, w)`` final feature map (the Grad-CAM layer's output), when asked for.
    """

    logits: torch.Tensor
    boxes: torch.Tensor
    features: torch.Tensor | None = None


def boxes_from_params(params: torch.Tensor) -> torch.Tensor:
    """Map unconstrained ``(..., 4)`` parameters to valid normalised ``xyxy`` boxes."""
    s = torch.sigmoid(params)
    x1, y1 = s[..., 0], s[..., 1]
    x2 = x1 + (1 - x1) * s[..., 2]
    y2 = y1 + (1 - y1) * s[..., 3]
    return torch.stack((x1, y1, x2, y2), dim=-1)


class ClassHead(nn.Module):
    """Pooled features -> class logits (the part of the network that Grad-CAM differentiates)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(feature_map), 1)))


class BoxHead(nn.Module):
    """Pooled features -> K boxes (CLN's 512-256-128 ReLU regressor)."""

    def __init__(self, in_features: int, hidden: list[int], num_boxes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, 4 * num_boxes))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(*layers)
        self.num_boxes = num_boxes

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        params = self.mlp(torch.flatten(self.pool(feature_map), 1))
        return boxes_from_params(params.view(-1, self.num_boxes, 4))


class MultiTaskNet(AdapterBase):
    """Backbone shared by a classification head and a box-regression head, built from a :class:`ModelConfig`.

    cxrdemo's own format behind the adapter interface of :mod:`cxrdemo.models.base` (whole film resized, no crop).
    """

    format_name = "cxrdemo"
    has_box_head = True

    def __init__(self, config: ModelConfig, pretrained: str | None = None) -> None:
        super().__init__()
        self.config = config
        spec = get_spec(config.architecture)
        self.backbone = build_backbone(config.architecture, pretrained)
        self.class_head = ClassHead(spec.out_channels, len(config.classes), config.dropout)
        self.box_head = BoxHead(spec.out_channels, list(config.box_hidden), config.num_boxes)

    @property
    def cam_layer(self) -> nn.Module:
        """The Grad-CAM target layer, resolved from the backbone registry."""
        return cam_layer(self.backbone, self.config.architecture)

    @property
    def labels(self) -> LabelMap:
        """The config's classes (NIH names for NIH-trained models) as a label map."""
        return map_labels(self.config.classes)

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:
        """An 8-bit grayscale film ``(H, W)`` -> ``(C, S, S)`` (:mod:`cxrdemo.preprocess`: resize, no crop)."""
        from ..preprocess import normalise, resize_gray

        return normalise(resize_gray(pixels, self.config.input_size), self.config)[0]

    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits from the final feature map."""
        return self.class_head(features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` -> final feature map ``(N, F, h, w)``."""
        if self.config.channels == 1 and x.shape[1] == 1 and _first_conv_channels(self.backbone) == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.backbone(x)

    def heads(self, feature_map: torch.Tensor) -> MultiTaskOutput:
        """Both heads on a feature map."""
        return MultiTaskOutput(self.class_head(feature_map), self.box_head(feature_map), feature_map)

    def forward(self, x: torch.Tensor) -> MultiTaskOutput:  # type: ignore[override]
        return self.heads(self.forward_features(x))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> probabilities according to the config's class mode."""
        if self.config.class_mode == "softmax":
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits)


def _first_conv_channels(module: nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def head_parameters(in_features: int, config: ModelConfig) -> int:
    """Exact parameter count of the class head and the box head on an ``in_features``-wide feature map (weights and
    biases of every ``nn.Linear`` built by :class:`ClassHead` and :class:`BoxHead`), computed without building them."""
    total = in_features * len(config.classes) + len(config.classes)
    width = in_features
    for h in config.box_hidden:
        total += width * h + h
        width = h
    return total + width * 4 * config.num_boxes + 4 * config.num_boxes


def estimate_parameters(config: ModelConfig) -> int:
    """A lower bound of the parameter count of ``build_model(config)``, computed without allocating anything: the
    backbone's registered count (:attr:`~cxrdemo.models.backbones.BackboneSpec.parameters`, 0 when unknown) plus the heads'
    exact count. Loading a folder compares it with the weights file's size before building the model."""
    spec = get_spec(config.architecture)
    return spec.parameters + head_parameters(spec.out_channels, config)


def build_model(config: ModelConfig, pretrained: str | None = None) -> MultiTaskNet:
    """A :class:`MultiTaskNet` for ``config`` in eval mode (``pretrained``: starting backbone weights)."""
    return MultiTaskNet(config, pretrained).eval()
