"""ROAD's noisy linear imputation in torch: batched, on any device, no sparse matrices.

pytorch-grad-cam's ``NoisyLinearImputer`` (from Rong et al. 2022's reference code) fills the removed pixels of an
image so that each removed pixel equals the weighted mean of its in-image 8-neighbours (weight 1/6 for the four
edge neighbours, 1/12 for the four corner ones), known neighbours entering the right-hand side:

    D_i x_i - sum_{j removed} w_ij x_j = sum_{k kept} w_ik v_k        for every removed pixel i,

where ``D_i`` is the sum of the weights of pixel i's in-image neighbours (1 inside, less on the border), then adds
Gaussian noise of standard deviation 0.01 to every imputed value. It builds the matrix with scipy (``lil_matrix``)
and solves it with ``spsolve``, one image and one percentile at a time.

This module solves the SAME system: the matrix-vector product is one 3 x 3 convolution with the neighbour weights
(zero padding drops the out-of-image neighbours, exactly as the library's valid-bit does), so thousands of pixels
and many systems run at once as a tensor batch. The matrix is symmetric and, as soon as one pixel is kept,
positive definite (every removed region touches a kept pixel: the 8-connected grid is connected). Plain CG needs
about as many iterations as a removed region is wide (hundreds at 224 px), so CG is preconditioned by one
geometric multigrid V-cycle (Jacobi smoothing, whose smoothing factor is 1/3 for this stencil; the residual
sum-pooled to a grid of half the size, where a coarse pixel is unknown when all 4 of its children are; bilinear
prolongation; a few CG iterations on the coarsest grid). The V-cycle is not exactly symmetric, so the outer loop
is flexible (Polak-Ribiere) CG. It stops when every system's residual is below ``tol`` (max-norm, in the image's
units), typically after about 12 iterations whatever the size of the removed regions.

Degenerate case: with NO kept pixel (a map whose value at the percentile is its minimum, e.g. a Grad-CAM that
is 0 on more than ``p`` % of the image) the system is singular, its right-hand side 0, and scipy's SuperLU returns
0 for every pixel; so does :func:`linear_impute` (then every pixel is only noise).

Accuracy (measured on gradcam maps of the default model on real NIH images, 224 px, masks removing 20-80 %, vs
scipy's float64 ``spsolve``, 15 systems): the largest pixel error is 3.7e-4 in normalised units with the default
settings (``tol`` 3e-5, 11 iterations; float32 rounding keeps it near 3e-4 however small ``tol`` is, float64
with ``tol`` 1e-6 reaches 9e-6 at twice the cost), 4 % of the 0.01 noise ROAD adds on purpose.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

#: The imputer's 8-neighbour weights (pytorch-grad-cam ``neighbors_weights``) as a 3 x 3 kernel (centre 0).
NEIGHBOUR_KERNEL: tuple[tuple[float, ...], ...] = (
    (1 / 12, 1 / 6, 1 / 12),
    (1 / 6, 0.0, 1 / 6),
    (1 / 12, 1 / 6, 1 / 12),
)

#: Standard deviation of the noise added to every imputed value (pytorch-grad-cam ``NoisyLinearImputer.noise``).
IMPUTATION_NOISE = 0.01


@dataclass(frozen=True)
class SolverSettings:
    """How exactly the imputation's linear systems are solved.

    Attributes:
        tol: a system is solved when its largest residual (max-norm, in the image's units) is below this.
        max_iter: cap on the outer (flexible CG) iterations.
        smooth: Jacobi sweeps before each coarse-grid correction of the V-cycle.
        post_smooth: Jacobi sweeps after it.
        min_side: the V-cycle stops halving when a side would drop below this and runs ``coarse_iter`` CG
            iterations there.
        coarse_iter: CG iterations on the coarsest level.
        check_every: test convergence every this many outer iterations (each test is one device sync).
        threads: torch's intra-op threads of the calling thread while it solves on the CPU (restored after;
            ``None``: leave them as they are). The solver is hundreds of small operations (the coarse levels are
            8-32 px grids); with two OpenMP threads every one of them ends in a barrier, and on a busy machine the
            second thread is often descheduled, so each barrier waits for a scheduler time slice: beside other work
            the two-thread solver slowed far more than the single-threaded library did (bench/RESULTS.md). One
            thread costs little on a quiet machine and keeps the solver's slowdown that of any single-threaded job.
    """

    tol: float = 3e-5
    max_iter: int = 60
    smooth: int = 1
    post_smooth: int = 1
    min_side: int = 8
    coarse_iter: int = 20
    check_every: int = 1
    threads: int | None = 1


@contextmanager
def intra_op_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads on the CPU, then restore the previous count.

    With PyTorch's OpenMP backend the count is the calling thread's own (OpenMP's ``nthreads-var`` is per thread),
    so other threads of the process (a web server's other requests) keep theirs. ``None``, a non-CPU device, or a
    count already in force change nothing.
    """
    before = torch.get_num_threads()
    if n is None or device.type != "cpu" or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Neighbours:
    """``x -> sum_j w_j x_j`` over in-image 8-neighbours for a batch ``(S, 1, H, W)``, as one depthwise convolution.

    (A single-channel ``conv2d`` is ~10x slower on CPU than the same work laid out as ``S`` depthwise channels.)
    """

    def __init__(self, like: Tensor) -> None:
        self.kernel = torch.tensor(NEIGHBOUR_KERNEL, dtype=like.dtype, device=like.device).view(1, 1, 3, 3)

    def __call__(self, x: Tensor) -> Tensor:
        s, _, h, w = x.shape
        out = F.conv2d(x.reshape(1, s, h, w), self.kernel.expand(s, 1, 3, 3), padding=1, groups=s)
        return out.reshape(s, 1, h, w)


@dataclass
class _Level:
    """One level of the V-cycle: the removed-pixel mask ``(S, 1, h, w)`` and the neighbour-weight sums ``(1, 1, h, w)``."""

    removed: Tensor
    diag: Tensor
    inv_diag: Tensor
    neighbours: _Neighbours

    def apply(self, x: Tensor) -> Tensor:
        """The system matrix on ``x`` (zero off the removed pixels): ``removed * (D x - W x)``."""
        return self.neighbours(x).neg_().addcmul_(self.diag, x).mul_(self.removed)


def _levels(removed: Tensor, min_side: int) -> list[_Level]:
    """The finest level and its coarsenings.

    A coarse pixel is unknown only when all 4 of its children are: a coarse grid keeps a pixel wherever the fine
    one keeps one, so it is never left without a kept pixel (its system would be singular and the V-cycle would
    blow up), and the error it corrects is 0 wherever a kept pixel pins it.
    """
    neighbours = _Neighbours(removed)
    levels = []
    while True:
        ones = torch.ones_like(removed[:1])
        diag = neighbours(ones)
        levels.append(_Level(removed, diag, diag.reciprocal(), neighbours))
        h, w = removed.shape[-2:]
        if min(h, w) // 2 < min_side:
            return levels
        removed = -F.max_pool2d(-removed, 2, ceil_mode=True)  # unknown only when all 4 children are


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=(1, 2, 3), keepdim=True)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    tiny = torch.finfo(den.dtype).tiny
    return torch.where(den.abs() > tiny, num / den.where(den.abs() > tiny, torch.ones_like(den)), torch.zeros_like(den))


def _coarse_cg(level: _Level, r: Tensor, iters: int) -> Tensor:
    """A few Jacobi-preconditioned CG iterations from 0 (the coarsest level's solve)."""
    x = torch.zeros_like(r)
    res = r.clone()
    z = res * level.inv_diag
    p = z.clone()
    rz = _dot(res, z)
    for _ in range(iters):
        ap = level.apply(p)
        alpha = _safe_div(rz, _dot(p, ap))
        x.addcmul_(alpha, p)
        res.addcmul_(alpha, ap, value=-1.0)
        z = res * level.inv_diag
        rz_new = _dot(res, z)
        p.mul_(_safe_div(rz_new, rz)).add_(z)
        rz = rz_new
    return x


def _v_cycle(levels: list[_Level], k: int, r: Tensor, settings: SolverSettings) -> Tensor:
    """Approximately solve ``A_k e = r`` (Jacobi smoothing, area restriction, bilinear prolongation)."""
    level = levels[k]
    if k == len(levels) - 1:
        return _coarse_cg(level, r, settings.coarse_iter)
    e = r * level.inv_diag
    for _ in range(settings.smooth - 1):
        e.addcmul_(r - level.apply(e), level.inv_diag)
    res = r - level.apply(e)
    # A = -Laplacian/3 on a grid of step h; on the 2h grid the same stencil is 4x weaker: sum-pool the residual.
    coarse_r = F.avg_pool2d(res, 2, ceil_mode=True).mul_(4.0).mul_(levels[k + 1].removed)
    coarse_e = _v_cycle(levels, k + 1, coarse_r, settings)
    e.add_(F.interpolate(coarse_e, size=r.shape[-2:], mode="bilinear", align_corners=False).mul_(level.removed))
    for _ in range(settings.post_smooth):
        e.addcmul_(r - level.apply(e), level.inv_diag)
    return e


def _solve(levels: list[_Level], b: Tensor, settings: SolverSettings) -> tuple[Tensor, int]:
    """Flexible (Polak-Ribiere) CG preconditioned by one V-cycle, from 0; returns (x, iterations).

    Each system stops moving once its own residual is below ``tol``, so its solution does not depend on the other
    systems of the batch.
    """
    fine = levels[0]
    x = torch.zeros_like(b)
    r = b.clone()
    z = _v_cycle(levels, 0, r, settings)
    p = z.clone()
    rz = _dot(r, z)
    active = r.abs().amax(dim=(1, 2, 3), keepdim=True) > settings.tol
    done = 0
    for done in range(1, settings.max_iter + 1):
        if not bool(active.any()):
            break
        ap = fine.apply(p)
        alpha = _safe_div(rz, _dot(p, ap)).mul_(active)  # a converged system stays as it is
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1.0)
        if done % settings.check_every == 0:
            active &= r.abs().amax(dim=(1, 2, 3), keepdim=True) > settings.tol
        z_new = _v_cycle(levels, 0, r, settings)
        beta = _safe_div(_dot(r, z_new - z), rz)
        rz = _dot(r, z_new)
        p.mul_(beta).add_(z_new)
        z = z_new
    return x, done


def linear_impute(values: Tensor, kept: Tensor, settings: SolverSettings = SolverSettings()) -> tuple[Tensor, int]:
    """Noise-free linear imputation of many images at once.

    Args:
        values: ``(S, 1, H, W)`` float images (one channel each; stack channels as separate systems).
        kept: ``(S, 1, H, W)`` bool, True where the pixel is kept (False: imputed).
        settings: solver settings.

    Returns:
        ``(S, 1, H, W)`` images with the removed pixels filled, and the outer iterations run.
    """
    if values.ndim != 4 or values.shape[1] != 1 or kept.shape != values.shape:
        raise ValueError(f"values {tuple(values.shape)} and kept {tuple(kept.shape)} must both be (S, 1, H, W)")
    if values.shape[0] == 0:
        return values.clone(), 0
    keptf = kept.to(values.dtype)
    removed = 1.0 - keptf
    with intra_op_threads(settings.threads, values.device):
        levels = _levels(removed, settings.min_side)
        b = levels[0].neighbours(values * keptf).mul_(removed)
        x, iters = _solve(levels, b, settings)
    filled = values * keptf + x * removed
    empty = keptf.sum(dim=(1, 2, 3)) == 0
    if bool(empty.any()):  # singular: nothing kept, 0 as scipy (see the module doc)
        filled[empty] = 0.0
    return filled, iters
