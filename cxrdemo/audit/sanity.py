"""Sanity checks of CAMs: cascading model-parameter randomization (Adebayo et al. 2018) and class sensitivity.

Cascading randomization. A map that explains the model must change when the model's learned parameters are
destroyed. Starting from the trained model, the parameters are re-initialised cumulatively from the top of the
network down: first the classification head, then the backbone's stages from the last to the first (the stages of
:func:`cxrdemo.models.backbones.backbone_stages`: for efficientnet_lite0 ``stage 8`` = head conv + BN, ``stage 7`` ... ``stage 1``
= the block groups, ``stage 0`` = the stem; stages without parameters are skipped). After each step the features
are recomputed with the randomized network and the maps with :func:`cxrdemo.explain.cam_heatmaps` for the same
target classes, and each map is compared with the trained model's map of the same image:

- Spearman rank correlation (``scipy.stats.spearmanr`` on the flattened maps), in ABSOLUTE value by default as
  Adebayo et al. report it (an inverted map still carries the same structure; ``absolute=False`` keeps the sign);
- SSIM (``skimage.metrics.structural_similarity``, ``data_range=1``, default 7 x 7 window).

A sane method's similarity falls towards 0 as the cascade proceeds; one that stays high shows the input (edge
detector behaviour), not the model. The "trained" step is the reference itself (1.0 unless the map is constant).

Re-initialisation: every module of the randomized part gets its own ``reset_parameters()``, the PyTorch default
initialisation a freshly built model gets (Conv/Linear: Kaiming-uniform; BatchNorm: weight 1, bias 0 and running
statistics reset to mean 0, variance 1), from a generator seeded with ``seed`` in a forked RNG (the caller's RNG
state is untouched); the caller's model is deep-copied and never changed.

A map that is constant (typically Grad-CAM that the ReLU turned to all zeros) has no ranks: its Spearman
correlation is undefined and stored as NaN (SSIM is still defined); :meth:`SanityResult.to_json` counts them per
step as ``undefined`` and the bootstrap means leave them out.

Class sensitivity. The map of the top-1 class and the map of the lowest-ranked class of the same image should
differ for a class-discriminative method: the (signed) Spearman correlation between them is reported per image;
EigenCAM ignores the target (first principal component of the activations) and scores exactly 1.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..explain import cam_heatmaps
from ..models.cln import MultiTaskNet
from .stats import bootstrap_mean

TRAINED = "trained"
CLASS_HEAD = "class head"
STAGE_PREFIX = "stage "


def _stages(model: MultiTaskNet) -> list[nn.Module]:
    from ..models.backbones import backbone_stages

    return backbone_stages(model.backbone)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def randomization_steps(model: MultiTaskNet) -> list[str]:
    """The cascade's cumulative steps: ``"trained"``, ``"class head"``, then ``"stage K"`` ... ``"stage 0"``.

    ``K`` indexes :func:`cxrdemo.models.backbones.backbone_stages` (0 = stem); stages without parameters are left out.
    """
    stages = _stages(model)
    names = [f"{STAGE_PREFIX}{i}" for i in reversed(range(len(stages))) if _has_parameters(stages[i])]
    return [TRAINED, CLASS_HEAD, *names]


def _reinitialise(module: nn.Module) -> None:
    """Every sub-module's own ``reset_parameters()`` (parameters, and BatchNorm running statistics)."""
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset) and (any(True for _ in m.parameters(recurse=False)) or isinstance(m, nn.modules.batchnorm._NormBase)):
            reset()


def spearman(a: np.ndarray, b: np.ndarray, absolute: bool = False) -> float:
    """Spearman rank correlation of two maps (flattened); NaN when either is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(x, y).statistic)
    return abs(rho) if absolute else rho


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two [0, 1] maps (``skimage.metrics.structural_similarity``, ``data_range=1``)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), data_range=1.0))


def _summary(values: np.ndarray, n_resamples: int, seed: int, level: float) -> dict[str, Any]:
    out = bootstrap_mean(values, n_resamples=n_resamples, seed=seed, level=level).to_json()
    out["undefined"] = int(np.isnan(values).sum())
    return out


@dataclass
class SanityResult:
    """Per method, per cascade step, per image similarity of the randomized maps to the trained ones.

    Attributes:
        steps: :func:`randomization_steps` (row order of the arrays).
        methods: the CAM methods.
        spearman: method -> ``(len(steps), N)`` Spearman correlations (absolute when ``absolute``; NaN: constant map).
        ssim: method -> ``(len(steps), N)`` SSIM.
        absolute: whether ``spearman`` holds absolute values.
        maps: method -> ``(len(steps), N, S, S)`` maps, only when asked for (``keep_maps``).
    """

    steps: list[str]
    methods: list[str]
    spearman: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    absolute: bool = True
    maps: dict[str, np.ndarray] | None = None

    @property
    def n_images(self) -> int:
        return int(next(iter(self.ssim.values())).shape[1]) if self.ssim else 0

    @classmethod
    def concat(cls, results: Sequence["SanityResult"]) -> "SanityResult":
        """One result from results on consecutive batches of images (same model, steps and methods)."""
        if not results:
            raise ValueError("nothing to concatenate")
        first = results[0]
        for r in results[1:]:
            if r.steps != first.steps or r.methods != first.methods or r.absolute != first.absolute:
                raise ValueError("results of different cascades cannot be concatenated")
        maps = None
        if all(r.maps is not None for r in results):
            maps = {m: np.concatenate([r.maps[m] for r in results], axis=1) for m in first.methods}  # type: ignore[index]
        return cls(
            steps=list(first.steps),
            methods=list(first.methods),
            spearman={m: np.concatenate([r.spearman[m] for r in results], axis=1) for m in first.methods},
            ssim={m: np.concatenate([r.ssim[m] for r in results], axis=1) for m in first.methods},
            absolute=first.absolute,
            maps=maps,
        )

    def to_json(self, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
        """Per method, per step: the mean Spearman and SSIM over images with bootstrap CIs, and NaN counts."""
        return {
            "test": "cascading model-parameter randomization (Adebayo et al. 2018)",
            "steps": list(self.steps),
            "spearman": "absolute" if self.absolute else "signed",
            "n_images": self.n_images,
            "bootstrap": {"n_resamples": int(n_resamples), "seed": int(seed), "level": float(level), "unit": "image"},
            "methods": {
                method: [
                    {
                        "step": step,
                        "spearman": _summary(self.spearman[method][i], n_resamples, seed, level),
                        "ssim": _summary(self.ssim[method][i], n_resamples, seed, level),
                    }
                    for i, step in enumerate(self.steps)
                ]
                for method in self.methods
            },
        }


def _targets(targets: Sequence[int], n: int) -> list[int]:
    out = [int(t) for t in targets]
    if len(out) != n:
        raise ValueError(f"{len(out)} targets for {n} images")
    return out


def _cascade_one(
    model: MultiTaskNet, x: torch.Tensor, target: int, methods: list[str], seed: int, run_steps: list[str], size: int | None
) -> dict[str, list[np.ndarray]]:
    """One image's maps at every step of the cascade (a fresh copy of ``model``, re-initialised from ``seed``)."""
    work = copy.deepcopy(model).eval()
    stages = _stages(work)
    device = x.device
    maps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(int(seed))
        for step in run_steps:
            if step == CLASS_HEAD:
                _reinitialise(work.class_head)
            elif step.startswith(STAGE_PREFIX):
                _reinitialise(stages[int(step[len(STAGE_PREFIX):])])
            with torch.no_grad():
                features = work.forward_features(x).float()
            for method in methods:
                maps[method].append(cam_heatmaps(work, features, [target], method, size)[0])
    return maps


def cascading_randomization(
    model: MultiTaskNet,
    inputs: torch.Tensor,
    targets: Sequence[int],
    methods: Sequence[str],
    seed: int = 0,
    *,
    size: int | None = None,
    absolute: bool = True,
    keep_maps: bool = False,
    steps: int | None = None,
) -> SanityResult:
    """Run the cascade of :func:`randomization_steps` on each image of a batch (see the module doc).

    Each image runs its own cascade, as a batch of one, on a fresh copy of the model re-initialised from the same
    ``seed``: every image sees the same randomized networks, and its values do not depend on which other images
    share the batch (a batched forward's float32 sums do), so a data set split across processes or batches gives
    the same values as one run.

    Args:
        model: the trained model (deep-copied; never changed).
        inputs: ``(N, C, S, S)`` preprocessed images.
        targets: the explained class of each image (the same at every step; usually the trained model's top-1).
        methods: CAM method keys (:data:`cxrdemo.explain.CAM_METHODS`).
        seed: seeds the re-initialisation.
        size: side of the compared maps (default: the model's input size, the frame of ``inputs``).
        absolute: store ``|Spearman|`` (Adebayo et al.) rather than the signed value.
        keep_maps: also return every step's maps (memory: steps x N x S x S floats per method).
        steps: run only the first ``steps`` steps (default all).
    """
    methods = list(dict.fromkeys(methods))
    n = int(inputs.shape[0])
    target_list = _targets(targets, n)
    all_steps = randomization_steps(model)
    run_steps = all_steps[: steps] if steps is not None else all_steps
    device = next(model.parameters()).device
    x = inputs.to(device)
    shape = (len(run_steps), n)
    rho = {m: np.full(shape, math.nan) for m in methods}
    sim = {m: np.full(shape, math.nan) for m in methods}
    kept: dict[str, list[list[np.ndarray]]] = {m: [] for m in methods}
    for k in range(n):
        maps = _cascade_one(model, x[k : k + 1], target_list[k], methods, seed, run_steps, size)
        for method in methods:
            ref = maps[method][0] if run_steps and run_steps[0] == TRAINED else None
            for i, current in enumerate(maps[method]):
                if ref is None:
                    continue
                rho[method][i, k] = spearman(ref, current, absolute)
                sim[method][i, k] = ssim(ref, current)
            if keep_maps:
                kept[method].append(maps[method])
    return SanityResult(
        steps=list(run_steps),
        methods=methods,
        spearman=rho,
        ssim=sim,
        absolute=absolute,
        # (steps, N, S, S): image k's maps stacked along axis 1
        maps={m: np.stack([np.stack(per_image) for per_image in kept[m]], axis=1) for m in methods} if keep_maps and n else None,
    )


def class_sensitivity(
    model: MultiTaskNet,
    features: torch.Tensor,
    probabilities: np.ndarray | torch.Tensor,
    methods: Sequence[str],
    *,
    size: int | None = None,
    absolute: bool = False,
) -> dict[str, np.ndarray]:
    """Per method, the ``(N,)`` Spearman correlation between the top-1 class's map and the lowest-ranked class's map.

    Args:
        model: the model that produced ``features``.
        features: ``(N, F, h, w)`` cached feature maps (:meth:`MultiTaskNet.forward_features`).
        probabilities: ``(N, n_classes)`` the model's probabilities (picks the two classes of each image).
        methods: CAM method keys.
        size: side of the compared maps (default: the model's input size).
        absolute: ``|rho|`` instead of the signed correlation (default signed: 1 = the same ranking).

    NaN where either map is constant.
    """
    probs = probabilities.detach().cpu().numpy() if isinstance(probabilities, torch.Tensor) else np.asarray(probabilities)
    n = int(features.shape[0])
    if probs.ndim != 2 or probs.shape[0] != n:
        raise ValueError(f"probabilities {probs.shape} must be (N, n_classes) for {n} feature maps")
    top = [int(i) for i in np.argmax(probs, axis=1)]
    low = [int(i) for i in np.argmin(probs, axis=1)]
    both = torch.cat([features, features]) if n else features
    out: dict[str, np.ndarray] = {}
    for method in dict.fromkeys(methods):
        maps = cam_heatmaps(model, both, top + low, method, size)
        out[method] = np.array([spearman(maps[k], maps[n + k], absolute) for k in range(n)], dtype=np.float64)
    return out


def summarise_class_sensitivity(
    result: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """JSON of :func:`class_sensitivity`: per method the mean correlation with its bootstrap CI and NaN count."""
    return {
        "test": "class sensitivity: Spearman between the top-1 and the lowest-ranked class's maps",
        "bootstrap": {"n_resamples": int(n_resamples), "seed": int(seed), "level": float(level), "unit": "image"},
        "methods": {m: _summary(np.asarray(v, dtype=np.float64), n_resamples, seed, level) for m, v in result.items()},
    }
