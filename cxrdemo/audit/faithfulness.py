"""Faithfulness of a CAM by ROAD, RemOve And Debias (Rong et al. 2022), through pytorch-grad-cam.

ROAD removes pixels in the order the map ranks them and replaces them by a noisy linear imputation from their
neighbours (so the removal itself leaks no shape information), then measures how the model's output for the
target class changes. pytorch-grad-cam's ``ROADCombined`` (used as is, not rewritten) does, for each percentile
``p``:

- MoRF (most relevant first): impute every pixel whose map value is at or above the map's ``p``-th percentile
  (keep only the least relevant ``p`` %), score change ``d_morf = s(imputed) - s(original)``;
- LeRF (least relevant first): impute every pixel at or below the ``(100 - p)``-th percentile (keep only the most
  relevant ``p`` %), score change ``d_lerf``;

and returns ``mean over p of (d_lerf - d_morf) / 2`` per image.

**Higher is more faithful**: keeping the pixels the map calls relevant preserves the class score
(``d_lerf`` near 0) while removing them destroys it (``d_morf`` very negative). The value is in the units of the
score: here the target class's LOGIT (``ClassifierOutputTarget``), 0 means the map ranks pixels no better than
chance would, negative means removing the "relevant" pixels hurts less than removing the others.

Why the logit and not ``ClassifierOutputSoftmaxTarget``: the NIH heads are independent sigmoids (multi-label), so
a softmax across the 14 findings would make one finding's score depend on the others' logits (a map could "gain"
by lowering a different finding); the sigmoid probability saturates near 0 and 1 and would squash the changes of
confident images. The logit is also what the demo's CAMs explain (:mod:`cxrdemo.explain` uses
``ClassifierOutputTarget``). For a softmax model (CLN's ``class_mode="softmax"``) pass ``score="softmax"``.

The imputation adds Gaussian noise (``torch.randn_like``); :func:`road_scores` seeds it (``seed``) in a forked RNG,
so results are repeatable and the caller's RNG state is left as it was. Cost: per image and percentile, two sparse
linear solves over the imputed pixels and two forward passes (see the report of the audit for timings).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..lazy_imports import import_deferring

import_deferring("pytorch_grad_cam")
from pytorch_grad_cam.metrics.road import ROADCombined  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget  # noqa: E402

#: The ROAD percentiles used by default (of the map's values; see the module doc).
DEFAULT_PERCENTILES: tuple[int, ...] = (20, 40, 60, 80)

#: ``score`` -> pytorch-grad-cam target class.
SCORE_TARGETS = {"logit": ClassifierOutputTarget, "softmax": ClassifierOutputSoftmaxTarget}


def logits_fn(model: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """``images -> class logits`` of a :class:`cxrdemo.model.MultiTaskNet` (the ``model_fn`` of :func:`road_scores`)."""

    def run(x: Tensor) -> Tensor:
        return model(x).logits

    return run


def road_scores(
    model_fn: Callable[[Tensor], Tensor],
    inputs: Tensor,
    heatmaps: np.ndarray,
    targets: Sequence[int],
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    *,
    score: str = "logit",
    seed: int = 0,
) -> np.ndarray:
    """ROAD-combined score of each map (higher = more faithful; see the module doc).

    Args:
        model_fn: ``(N, C, S, S)`` batch -> ``(N, n_classes)`` logits (e.g. :func:`logits_fn`); called without
            gradients, on ``inputs``' device.
        inputs: the preprocessed images the maps explain, in the model frame.
        heatmaps: ``(N, S, S)`` maps in [0, 1] in the same frame (e.g. :func:`cxrdemo.explain.cam_heatmaps`).
        targets: the explained class index of each image.
        percentiles: ROAD's percentiles of the map's values (see the module doc).
        score: ``"logit"`` (``ClassifierOutputTarget``) or ``"softmax"`` (``ClassifierOutputSoftmaxTarget``).
        seed: seeds the imputation noise (in a forked RNG: the global state is left untouched).

    Returns:
        ``(N,)`` float64 scores.
    """
    if score not in SCORE_TARGETS:
        raise ValueError(f"score must be one of {', '.join(SCORE_TARGETS)}, not {score!r}")
    maps = np.ascontiguousarray(np.nan_to_num(np.asarray(heatmaps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    if inputs.ndim != 4 or maps.shape != (inputs.shape[0], inputs.shape[2], inputs.shape[3]):
        raise ValueError(f"heatmaps {maps.shape} must be (N, H, W) for inputs {tuple(inputs.shape)}")
    if len(targets) != inputs.shape[0]:
        raise ValueError(f"{len(targets)} targets for {inputs.shape[0]} images")
    if inputs.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    maps = np.clip(maps, 0.0, 1.0)
    target_cls = SCORE_TARGETS[score]
    metric = ROADCombined(percentiles=list(percentiles))
    # The imputation (and its noise) runs on the CPU whatever the device: fork the CPU generator only.
    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        # grad-cam 1.5.7 calls np.float32 on a torch bool tensor (numpy 2 deprecation notice, harmless).
        warnings.filterwarnings("ignore", message=".*__array_wrap__.*", category=DeprecationWarning)
        torch.manual_seed(int(seed))
        out = metric(inputs.detach().float(), maps, [target_cls(int(t)) for t in targets], model_fn)
    return np.asarray(out, dtype=np.float64).reshape(inputs.shape[0])
