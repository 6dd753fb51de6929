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

Implementation: :func:`road_scores` runs the same computation in torch (:mod:`.road_impute` solves the
imputation's linear systems by multigrid-preconditioned conjugate gradients, every image, percentile and
direction of a call at once, on the inputs' device), forwards the imputed images in batches and the original
once per image; :func:`road_scores_library` is pytorch-grad-cam's ``ROADCombined`` itself (scipy ``spsolve``, one
image and percentile at a time, 16 forward passes per image), kept as the reference the tests compare against.
An image's channels that are affine maps of its first channel (the demo's gray radiograph repeated, normalised
per channel) are imputed once: the solution commutes with ``a * x + b``.

The imputation adds Gaussian noise (sd 0.01); it is seeded per image (``seed``, or ``seeds`` one per image) with
its own generator, so an image's score does not depend on the other images of the call, and the caller's RNG
state is never touched. Measured cost and agreement with the library: docs/faithfulness.md, bench/RESULTS.md.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..lazy_imports import import_deferring
from .road_impute import IMPUTATION_NOISE, SolverSettings, linear_impute

import_deferring("pytorch_grad_cam")
from pytorch_grad_cam.metrics.road import ROADCombined  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget  # noqa: E402

#: The ROAD percentiles used by default (of the map's values; see the module doc).
DEFAULT_PERCENTILES: tuple[int, ...] = (20, 40, 60, 80)

#: Linear systems (masks x images) solved together: enough to amortise each tensor operation's overhead, few enough
#: to stay in cache-friendly memory (32 systems of 224 x 224 float32 are 6.4 MB per vector of the solver).
SYSTEMS_PER_SOLVE = 32

#: ``score`` -> pytorch-grad-cam target class.
SCORE_TARGETS = {"logit": ClassifierOutputTarget, "softmax": ClassifierOutputSoftmaxTarget}


def logits_fn(model: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """``images -> class logits`` of a :class:`cxrdemo.models.cln.MultiTaskNet` (the ``model_fn`` of :func:`road_scores`)."""

    def run(x: Tensor) -> Tensor:
        return model(x).logits

    return run


def _check(inputs: Tensor, heatmaps: np.ndarray, targets: Sequence[int], score: str) -> np.ndarray:
    """Validate the arguments shared by both implementations; the maps as finite float32 in [0, 1]."""
    if score not in SCORE_TARGETS:
        raise ValueError(f"score must be one of {', '.join(SCORE_TARGETS)}, not {score!r}")
    maps = np.ascontiguousarray(np.nan_to_num(np.asarray(heatmaps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    if inputs.ndim != 4 or maps.shape != (inputs.shape[0], inputs.shape[2], inputs.shape[3]):
        raise ValueError(f"heatmaps {maps.shape} must be (N, H, W) for inputs {tuple(inputs.shape)}")
    if len(targets) != inputs.shape[0]:
        raise ValueError(f"{len(targets)} targets for {inputs.shape[0]} images")
    return np.clip(maps, 0.0, 1.0)


def road_scores(
    model_fn: Callable[[Tensor], Tensor],
    inputs: Tensor,
    heatmaps: np.ndarray,
    targets: Sequence[int],
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    *,
    score: str = "logit",
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    solver: SolverSettings = SolverSettings(),
    noise: float = IMPUTATION_NOISE,
) -> np.ndarray:
    """ROAD-combined score of each map (higher = more faithful; see the module doc), in torch.

    Args:
        model_fn: ``(N, C, S, S)`` batch -> ``(N, n_classes)`` logits (e.g. :func:`logits_fn`); called without
            gradients, on ``inputs``' device.
        inputs: the preprocessed images the maps explain, in the model frame.
        heatmaps: ``(N, S, S)`` maps in [0, 1] in the same frame (e.g. :func:`cxrdemo.explain.cam_heatmaps`).
        targets: the explained class index of each image.
        percentiles: ROAD's percentiles of the map's values (see the module doc).
        score: ``"logit"`` (``ClassifierOutputTarget``) or ``"softmax"`` (``ClassifierOutputSoftmaxTarget``).
        seed: seeds the imputation noise of every image (when ``seeds`` is not given).
        seeds: one noise seed per image (an image's score then depends only on its own input, map and seed).
        batch_size: imputed images per forward pass (8: on a 2-core CPU batch 8 runs faster per image than 32).
        solver: how exactly the imputation is solved (:class:`~cxrdemo.audit.road_impute.SolverSettings`).
        noise: standard deviation of the imputation noise (the library's 0.01; 0 for a noise-free check).

    Returns:
        ``(N,)`` float64 scores.
    """
    maps = _check(inputs, heatmaps, targets, score)
    n = inputs.shape[0]
    seeds = [int(seed)] * n if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} images")
    if not percentiles or any(not 0 < float(p) < 100 for p in percentiles):
        raise ValueError(f"percentiles must be a non-empty list of numbers in (0, 100), not {list(percentiles)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    out = np.zeros(n, dtype=np.float64)
    per_chunk = max(1, SYSTEMS_PER_SOLVE // (2 * len(percentiles)))
    with torch.no_grad():
        for start in range(0, n, per_chunk):
            stop = min(n, start + per_chunk)
            x = inputs[start:stop].detach().float()
            chunk_maps = torch.from_numpy(maps[start:stop]).to(x.device)
            out[start:stop] = _road_chunk(
                model_fn, x, chunk_maps, list(targets[start:stop]), list(percentiles), score, seeds[start:stop], batch_size, solver, noise
            )
    return out


def _target_scores(logits: Tensor, targets: Tensor, score: str) -> Tensor:
    """``(M, n_classes)`` outputs -> ``(M,)`` float32 target scores (logit or softmax probability)."""
    values = logits.float()
    if score == "softmax":
        values = torch.softmax(values, dim=-1)
    return values.gather(1, targets.view(-1, 1)).squeeze(1)


def _road_chunk(
    model_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    maps: Tensor,
    targets: list[int],
    percentiles: list[int],
    score: str,
    seeds: list[int],
    batch_size: int,
    solver: SolverSettings,
    noise: float,
) -> np.ndarray:
    """ROAD-combined scores of a few images: all their masks imputed at once, the forwards batched."""
    n, c, h, w = x.shape
    kept = removal_masks(maps, percentiles)  # (n, 2P, h, w): LeRF masks then MoRF masks
    k = kept.shape[1]
    imputed = impute(x, kept, seeds, solver, noise)  # (n, 2P, c, h, w)
    tgt = torch.tensor(targets, dtype=torch.long, device=x.device)
    original = _target_scores(model_fn(x), tgt, score)
    flat = imputed.reshape(n * k, c, h, w)
    flat_tgt = tgt.repeat_interleave(k)
    after = torch.cat(
        [_target_scores(model_fn(flat[i : i + batch_size]), flat_tgt[i : i + batch_size], score) for i in range(0, n * k, batch_size)]
    )
    diff = after.view(n, k) - original.view(n, 1)  # float32, as the library's np.float32 scores
    p = len(percentiles)
    lerf, morf = diff[:, :p].mean(dim=1), diff[:, p:].mean(dim=1)
    return ((lerf - morf) / 2).double().cpu().numpy()


def removal_masks(maps: Tensor, percentiles: Sequence[int]) -> Tensor:
    """Kept-pixel masks ``(N, 2P, H, W)`` bool, exactly as pytorch-grad-cam's Remove{Least,Most}RelevantFirst.

    LeRF at ``p`` keeps ``1 - map < percentile(1 - map, p)`` (removes the least relevant ``100 - p`` %), MoRF at
    ``p`` keeps ``map < percentile(map, p)`` (removes the most relevant ``100 - p`` %). The percentile is numpy's
    default (linear interpolation; float64), compared in float32 as the library's torch comparison does.
    """
    q = torch.tensor([float(p) / 100.0 for p in percentiles], dtype=torch.float64, device=maps.device)
    out = []
    for m in (1.0 - maps, maps):  # float32 ``1 - mask``, as the library computes it
        flat = m.reshape(m.shape[0], -1)
        thresholds = torch.quantile(flat.double(), q, dim=1).T.float()  # (N, P)
        out.append(m.unsqueeze(1) < thresholds[:, :, None, None])
    return torch.cat(out, dim=1)


def _affine_channels(x: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(a, b)`` of shape ``(N, C)`` with ``x[:, c] == a[:, c] * x[:, 0] + b[:, c]`` for every image, or None.

    Exactness test: the least-squares fit's largest residual must be within float32 rounding of the values
    (1e-5 of the channel's range: the demo's normalisation ``(g - mean_c) / std_c`` leaves ~1e-7).
    """
    base = x[:, :1].flatten(2)  # (N, 1, HW)
    chans = x.flatten(2)  # (N, C, HW)
    centred = base - base.mean(dim=2, keepdim=True)
    var = (centred * centred).sum(dim=2)  # (N, 1)
    a = (centred * (chans - chans.mean(dim=2, keepdim=True))).sum(dim=2) / var.clamp_min(1e-12)
    b = chans.mean(dim=2) - a * base.mean(dim=2)
    fit = a.unsqueeze(2) * base + b.unsqueeze(2)
    span = chans.amax(dim=2) - chans.amin(dim=2)
    if bool((var <= 1e-12).any()) or bool(((fit - chans).abs().amax(dim=2) > 1e-5 * span.clamp_min(1e-6)).any()):
        return None
    return a, b


def impute(x: Tensor, kept: Tensor, seeds: Sequence[int], solver: SolverSettings = SolverSettings(), noise: float = IMPUTATION_NOISE) -> Tensor:
    """Noisy linear imputation of every mask of every image: ``(N, C, H, W)``, ``(N, K, H, W)`` -> ``(N, K, C, H, W)``.

    The noise (sd ``noise`` on each imputed value and channel, as the library) is drawn on the CPU from one
    generator per image seeded with ``seeds[i]``: the same on every device.
    """
    n, c, h, w = x.shape
    k = kept.shape[1]
    affine = _affine_channels(x) if c > 1 else None
    solved = x[:, :1] if affine is not None else x
    cs = solved.shape[1]
    values = solved.unsqueeze(1).expand(n, k, cs, h, w).reshape(n * k * cs, 1, h, w)
    masks = kept.unsqueeze(2).expand(n, k, cs, h, w).reshape(n * k * cs, 1, h, w)
    filled, _ = linear_impute(values, masks, solver)
    filled = filled.view(n, k, cs, h, w)
    if affine is not None:  # the solution commutes with a * x + b, except where nothing is kept (0 in every channel)
        a, b = affine
        nothing_kept = ~kept.flatten(2).any(dim=2).view(n, k, 1, 1, 1)
        filled = (filled * a.view(n, 1, c, 1, 1) + b.view(n, 1, c, 1, 1)).masked_fill_(nothing_kept, 0.0)
    eps = torch.stack([torch.randn((k, c, h, w), generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(x.device)
    removed = (~kept).unsqueeze(2)
    return torch.where(removed, filled.add_(eps, alpha=float(noise)), x.unsqueeze(1))  # kept pixels: bit-exact


def road_scores_library(
    model_fn: Callable[[Tensor], Tensor],
    inputs: Tensor,
    heatmaps: np.ndarray,
    targets: Sequence[int],
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    *,
    score: str = "logit",
    seed: int = 0,
) -> np.ndarray:
    """The same score by pytorch-grad-cam's ``ROADCombined`` itself (the reference; ~10x slower, see module doc).

    Arguments as :func:`road_scores`; ``seed`` seeds the library's global-RNG noise in a forked RNG.
    """
    maps = _check(inputs, heatmaps, targets, score)
    if inputs.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    target_cls = SCORE_TARGETS[score]
    metric = ROADCombined(percentiles=list(percentiles))
    # The imputation (and its noise) runs on the CPU whatever the device: fork the CPU generator only.
    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        # grad-cam 1.5.7 calls np.float32 on a torch bool tensor (numpy 2 deprecation notice, harmless).
        warnings.filterwarnings("ignore", message=".*__array_wrap__.*", category=DeprecationWarning)
        torch.manual_seed(int(seed))
        out = metric(inputs.detach().float(), maps, [target_cls(int(t)) for t in targets], model_fn)
    return np.asarray(out, dtype=np.float64).reshape(inputs.shape[0])
