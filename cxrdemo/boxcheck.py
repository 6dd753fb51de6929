"""Does a model's box head look at the image? A probe for box heads that output the same box for any input.

A box head trained on a handful of boxes (the embedded model saw 9) can learn the per-class prior (the mean training
box) and nothing else: its "predictions" are then the same rectangle on every radiograph, and a page that presents
them as image-specific misleads. :func:`probe_boxes` runs the model on a small set of very different synthetic
inputs (flat, noise at two scales, bright and dark halves, two offset "lung fields") and calls a box class static
when none of its four coordinates moves by more than :data:`STATIC_TOLERANCE` of the image side across them, or when
every output equals the config's prior box for that class within the same tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .models.config import ModelConfig

#: Largest spread (max - min, as a share of the image side) of a coordinate across the probes for a "static" box.
STATIC_TOLERANCE = 0.01
#: What panels, notes and exports say about a static box head.
STATIC_BOXES_NOTE = "boxes: the per-class prior, not image-specific"


@dataclass(frozen=True)
class BoxProbe:
    """The result of :func:`probe_boxes`.

    Attributes:
        static_classes: box classes whose box does not move across the probes (or equals the prior box).
        spread: per box class, the largest coordinate spread across the probes (share of the image side).
        n_probes: how many probe inputs were run.
    """

    static_classes: tuple[str, ...]
    spread: dict[str, float]
    n_probes: int

    @property
    def all_static(self) -> bool:
        """True when every box class is static (the whole box head ignores the image)."""
        return bool(self.spread) and len(self.static_classes) == len(self.spread)


def probe_images(size: int, seed: int = 0) -> np.ndarray:
    """``(8, size, size)`` uint8 synthetic inputs that differ as much as radiographs can (no real pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    images = [
        np.full((size, size), 40.0),
        np.full((size, size), 200.0),
        rng.uniform(0, 255, (size, size)),
        np.kron(rng.uniform(0, 255, (8, 8)), np.ones((size // 8 + 1, size // 8 + 1)))[:size, :size],
        np.where(xx < 0.5, 230.0, 25.0),
        np.where(yy < 0.5, 25.0, 230.0),
    ]
    for cx in (0.3, 0.65):  # two dark ellipses on a bright field: lung fields, shifted
        lungs = ((xx - cx) / 0.18) ** 2 + ((yy - 0.5) / 0.35) ** 2 < 1
        images.append(np.where(lungs, 50.0, 190.0))
    return np.clip(np.stack(images), 0, 255).astype(np.uint8)


def probe_boxes(model: torch.nn.Module, config: ModelConfig, device: torch.device | str = "cpu") -> BoxProbe:
    """Run ``model`` on :func:`probe_images` and report which box classes ignore the input."""
    from .preprocess import normalise

    if config.box_mode in ("none", "detections"):  # a detector's boxes come from the image; a classifier without a box head (cxrdemo.models): nothing to probe
        return BoxProbe((), {}, 0)
    batch = normalise(probe_images(config.input_size), config).to(device)
    with torch.inference_mode():
        boxes = model(batch).boxes.float().cpu().numpy()  # (P, K, 4) normalised
    labels = list(config.box_classes) if config.box_mode == "per_class" else ["(single box)"]
    spread: dict[str, float] = {}
    static: list[str] = []
    for k, label in enumerate(labels):
        coords = boxes[:, k, :]
        spread[label] = float((coords.max(axis=0) - coords.min(axis=0)).max())
        prior = config.prior_boxes.get(label)
        at_prior = prior is not None and bool(np.abs(coords - np.asarray(prior)[None, :]).max() <= STATIC_TOLERANCE)
        if spread[label] <= STATIC_TOLERANCE or at_prior:
            static.append(label)
    return BoxProbe(tuple(static), spread, int(batch.shape[0]))
