"""The one interface every model format sits behind, and the declared preprocessing of foreign models.

:class:`AdapterBase` is what the predictor, the audit, ``evaluate`` and ``bench`` talk to, whatever the format:

- ``config``: a :class:`~cxrdemo.models.config.ModelConfig` (the shown labels, input size, class mode, box mode);
- ``preprocess(pixels)``: an 8-bit grayscale film ``(H, W)`` -> the ``(C, S, S)`` input the model's files declare;
- ``view(width, height)``: the :class:`~cxrdemo.models.geometry.FilmView` of the film that input shows;
- ``forward_features(x)`` -> the CAM layer's activations; ``heads(features)`` -> logits and boxes (one forward pass,
  split at the CAM layer so a CAM never reruns the network);
- ``cam_logits(features)`` and ``cam_reshape``: the rest of the network as the CAM differentiates it, and the
  reshape of token activations ``(N, T, D)`` / ``(N, H, W, C)`` to ``(N, C, h, w)``;
- ``has_box_head``, ``labels`` (:class:`~cxrdemo.models.labels.LabelMap`), ``format_name``, ``card``.

The CLN-family :class:`~cxrdemo.models.cln.MultiTaskNet` is one such adapter; :mod:`cxrdemo.models.timm_adapter`,
:mod:`~cxrdemo.models.hf_adapter` and :mod:`~cxrdemo.models.xrv_adapter` are the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from .geometry import FilmView, centre_crop_view
from .labels import LabelMap


@dataclass
class BoxlessOutput:
    """``(logits, boxes, features)`` of a model without a box head (``boxes`` is ``(N, 0, 4)``)."""

    logits: torch.Tensor
    boxes: torch.Tensor
    features: torch.Tensor | None = None


#: PIL resampling filters by the names model files use (timm, transformers' integer codes, torchvision).
PIL_FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST, "0": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR, "2": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "3": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS, "1": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX, "4": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING, "5": Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class DeclaredPreprocessing:
    """Resize, centre crop and normalisation as a model's files declare them (timm's ``pretrained_cfg`` habit).

    Attributes:
        resize: ``("shortest", s)`` resizes the shorter side to ``s`` keeping the aspect ratio (timm
            ``crop_mode='center'``); ``("exact", (w, h))`` resizes to exactly ``w x h`` (``squash``).
        interpolation: a key of :data:`PIL_FILTERS`.
        crop: ``(w, h)`` of the centre crop after resizing, or ``None``.
        mean, std: per channel, applied after scaling to [0, 1].
        channels: 1 or 3 (a grayscale film is repeated; resampling R, G and B of a gray image gives the same
            plane, so working on one plane is exact and three times cheaper).
    """

    resize: tuple[str, object]
    interpolation: str
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` after the resize step (torchvision's rounding for the shorter-side resize)."""
        kind, value = self.resize
        if kind == "exact":
            w, h = value  # type: ignore[misc]
            return int(w), int(h)
        s = int(value)  # type: ignore[arg-type]
        if width <= height:
            return s, int(s * height / width)
        return int(s * width / height), s

    def view(self, width: int, height: int) -> FilmView:
        """The region of a ``width x height`` film that the input shows."""
        resized = self.resized_size(width, height)
        return centre_crop_view(width, height, resized, self.crop) if self.crop else FilmView.whole(width, height)

    def apply(self, pixels: np.ndarray) -> torch.Tensor:
        """``(H, W)`` uint8 -> ``(C, S, S)`` float32."""
        from torchvision.transforms import functional as TF

        img = Image.fromarray(np.ascontiguousarray(pixels))
        w, h = self.resized_size(img.width, img.height)
        img = img.resize((w, h), PIL_FILTERS[self.interpolation])
        if self.crop:
            img = TF.center_crop(img, [self.crop[1], self.crop[0]])
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
        x = x.expand(self.channels, -1, -1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (x - mean) / std


class AdapterBase(nn.Module, ABC):
    """Shared behaviour of the model adapters; subclasses set ``config``, ``labels`` and the split forward."""

    format_name: str = "cxrdemo"
    has_box_head: bool = False
    card: str | None = None

    # ------------------------------------------------------------------ to be provided by a format
    @abstractmethod
    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:
        """An 8-bit grayscale film ``(H, W)`` -> the model input ``(C, S, S)``."""
        raise NotImplementedError

    def view(self, width: int, height: int) -> FilmView:
        """The part of a ``width x height`` film that :meth:`preprocess` keeps."""
        return FilmView.whole(width, height)

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(N, C, S, S)`` -> the CAM layer's activations."""
        raise NotImplementedError

    @abstractmethod
    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The CAM layer's activations -> class logits (the part of the network the CAM differentiates)."""
        raise NotImplementedError

    #: Token activations -> ``(N, C, h, w)`` for pytorch-grad-cam, or ``None`` for a CNN feature map.
    cam_reshape: Callable[[torch.Tensor], torch.Tensor] | None = None

    # ------------------------------------------------------------------ common
    def preprocess_batch(self, films: list[np.ndarray]) -> torch.Tensor:
        """Several films -> ``(N, C, S, S)``."""
        return torch.stack([self.preprocess(p) for p in films])

    def heads(self, features: torch.Tensor) -> BoxlessOutput:
        """Logits from the CAM layer's activations; no boxes (a box head overrides this)."""
        logits = self.cam_logits(features)
        return BoxlessOutput(logits, logits.new_zeros((logits.shape[0], 0, 4)), features)

    def forward(self, x: torch.Tensor) -> BoxlessOutput:  # type: ignore[override]
        return self.heads(self.forward_features(x))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> probabilities: softmax for a single-label model, else a sigmoid per output."""
        if self.config.class_mode == "softmax":  # type: ignore[attr-defined]
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits)

    #: The model's own labels and their NIH names (set by each format).
    labels: LabelMap


def tokens_to_grid(prefix_tokens: int, grid: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A reshape transform ``(N, prefix + h*w, D)`` -> ``(N, D, h, w)`` dropping class/register tokens."""
    h, w = grid

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix_tokens:, :]
        return patches.reshape(patches.shape[0], h, w, patches.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def channels_last_to_first(x: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, C)`` -> ``(N, C, H, W)`` (Swin's feature maps)."""
    return x.permute(0, 3, 1, 2)


def sequence_to_grid(x: torch.Tensor) -> torch.Tensor:
    """``(N, h*w, C)`` with a square grid -> ``(N, C, h, w)`` (transformers' Swin hidden states)."""
    side = int(round(x.shape[1] ** 0.5))
    return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)
