"""Radiograph -> model tensor, and boxes between the model frame and the original image.

The contract (torchxrayvision's habit: one explicit preprocessing, shared by training and inference):
1. resize the whole 8-bit grayscale image to ``input_size`` x ``input_size`` (bilinear with antialiasing via PIL's
   ``reduce`` fast path; no crop, so every original pixel maps into the model frame and back),
2. scale to [0, 1], repeat to ``channels``, normalise with the config's ``mean`` / ``std``.
Model boxes are normalised ``[0, 1]`` in that square frame, so mapping back is a per-axis scale by the original
width and height.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .boxes import Box
from .models.config import ModelConfig
from .imaging import Radiograph


def resize_gray(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize a ``(H, W)`` uint8 image to ``(size, size)`` uint8 (bilinear, antialiased, fast for big inputs)."""
    img = Image.fromarray(pixels)
    if img.size == (size, size):
        return pixels
    # reducing_gap lets PIL first shrink by an integer factor with a box filter (fast), then resample exactly.
    return np.array(img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0))


def normalise(resized: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """``(S, S)`` or ``(N, S, S)`` uint8 -> ``(N, C, S, S)`` float tensor normalised as the config says."""
    x = torch.from_numpy(np.ascontiguousarray(resized))
    if x.ndim == 2:
        x = x.unsqueeze(0)
    x = x.unsqueeze(1).float().div_(255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(1, -1, 1, 1)
    x = x.expand(-1, config.channels, -1, -1)
    return (x - mean) / std


def to_tensor(radiograph: Radiograph, config: ModelConfig) -> torch.Tensor:
    """A radiograph as a ``(1, C, S, S)`` model input."""
    return normalise(resize_gray(radiograph.pixels, config.input_size), config)


def box_to_original(xyxy_norm: list[float] | np.ndarray, width: int, height: int, label: str = "", score: float | None = None) -> Box:
    """A normalised model-frame box -> pixels of the original image."""
    x1, y1, x2, y2 = (float(v) for v in xyxy_norm)
    return Box(x1 * width, y1 * height, x2 * width, y2 * height, label, score).clipped(width, height)


def box_to_normalised(box: Box, width: int, height: int) -> list[float]:
    """A box in original pixels -> normalised ``[x1, y1, x2, y2]`` in the model frame."""
    return [box.x1 / width, box.y1 / height, box.x2 / width, box.y2 / height]
