"""The torch ROAD (cxrdemo.audit.road_impute, faithfulness.road_scores) against pytorch-grad-cam's, the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve

from conftest import BOXED, calibrated_model
from cxrdemo.audit.faithfulness import impute, logits_fn, removal_masks, road_scores, road_scores_library
from cxrdemo.audit.road_impute import SolverSettings, linear_impute

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: small tensors run fastest on one thread

SIZE = 64  # small enough for the library's scipy solves to stay cheap, large enough for a 3-level V-cycle


@pytest.fixture(scope="module")
def nih_inputs(images_dir):
    """Three real NIH radiographs at ``SIZE`` px, the demo's normalisation (gray repeated to 3 channels)."""
    from cxrdemo.models.config import ModelConfig
    from cxrdemo.imaging import load_image
    from cxrdemo.preprocess import to_tensor

    config = ModelConfig(architecture="mobilenet_v3_small", input_size=SIZE)
    return torch.cat([to_tensor(load_image(images_dir / name), config) for name in list(BOXED)[:3]])


@pytest.fixture(scope="module")
def model_and_maps(nih_inputs):
    """The calibrated small model, its top-1 classes and their Grad-CAM maps on ``nih_inputs``."""
    from cxrdemo.explain import cam_heatmaps

    model = calibrated_model(SIZE, batches=3)
    with torch.no_grad():
        out = model(nih_inputs)
    top1 = [int(i) for i in out.logits.argmax(dim=1)]
    return model, top1, cam_heatmaps(model, out.features.clone(), top1, "gradcam")


def library_system(mask: np.ndarray, img: np.ndarray):
    """pytorch-grad-cam's own sparse system (A, b) for a kept-pixel ``mask`` (H, W) and an image (C, H, W)."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, neighbors_weights

    a, b = NoisyLinearImputer.setup_sparse_system(mask, img, neighbors_weights)
    return csc_matrix(a), b


def test_the_imputation_solves_the_librarys_own_system(nih_inputs):
    img = nih_inputs[0, :1].double().numpy()  # (1, H, W)
    rng = np.random.default_rng(0)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((1, 1, SIZE, SIZE))), 9, 1, 4)[0, 0].numpy()
    settings = SolverSettings()
    for keep_fraction in (0.2, 0.5, 0.8):  # blobs of removed pixels of every size, as ROAD's percentiles make
        mask = (smooth < np.quantile(smooth, keep_fraction)).astype(np.float32)
        filled, _ = linear_impute(nih_inputs[:1, :1], torch.from_numpy(mask > 0.5)[None, None], settings)
        removed = np.flatnonzero(mask.ravel() == 0)
        x = filled[0, 0].double().numpy().ravel()[removed]
        a, b = library_system(mask, img)
        residual = np.abs(a @ x - b[:, 0]).max()
        # The solver stops when its float32 residual is <= tol; the true residual differs from the recursively
        # updated one by float32 rounding: ~ (iterations <= 60) x eps (6e-8) x |A| (2) x |x| (<= 3) ~ 2e-5.
        assert residual <= settings.tol + 3e-5
        # A is an M-matrix (up to sign): the error is at most ||A^-1||_inf x residual, ||A^-1||_inf = max(-A^-1 1).
        inv_norm = np.abs(spsolve(a, -np.ones(a.shape[0]))).max()
        exact = spsolve(a, b[:, 0])
        assert np.abs(x - exact).max() <= inv_norm * residual + 1e-6


def test_removal_masks_are_the_librarys(nih_inputs):
    rng = np.random.default_rng(1)
    maps = np.round(rng.random((2, 16, 16)), 1).astype(np.float32)  # many ties, as CAMs that are 0 on a region
    percentiles = (10, 20, 50, 80, 90)
    ours = removal_masks(torch.from_numpy(maps), percentiles).numpy()
    for i in range(2):
        cam = torch.from_numpy(maps[i])
        for k, p in enumerate(percentiles):  # pytorch-grad-cam's RemoveMostRelevantFirst, verbatim arithmetic
            lerf = np.float32((1 - cam) < np.percentile((1 - cam).numpy(), p))
            morf = np.float32(cam < np.percentile(cam.numpy(), p))
            assert np.array_equal(ours[i, k], lerf > 0.5) and np.array_equal(ours[i, len(percentiles) + k], morf > 0.5)


@pytest.mark.filterwarnings("ignore:.*__array_wrap__.*:DeprecationWarning")  # the library, under numpy 2
def test_nothing_kept_imputes_zero_as_the_library():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    x = torch.rand(1, 3, 12, 12) * 2 - 1
    kept = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    ours = impute(x, kept, [0], noise=0.0)
    theirs = NoisyLinearImputer(noise=0.0)(x[0], torch.zeros(12, 12))
    assert torch.equal(ours[0, 0], torch.zeros(3, 12, 12)) and torch.equal(theirs, torch.zeros(3, 12, 12))


def test_affine_channels_are_solved_once_with_the_same_result(nih_inputs):
    x = nih_inputs[:1]  # the demo's channels: (g - mean_c) / std_c, affine maps of channel 0
    kept = removal_masks(torch.rand(1, SIZE, SIZE), (30, 70))
    settings = SolverSettings()
    fast = impute(x, kept, [0], settings, noise=0.0)
    for c in range(3):  # each channel on its own, as the library solves it
        alone, _ = linear_impute(x[:, c : c + 1].expand(kept.shape[1], -1, -1, -1), kept.view(-1, 1, SIZE, SIZE), settings)
        for k in range(kept.shape[1]):
            a, _ = library_system(kept[0, k].float().numpy(), x[0, :1].double().numpy())
            inv_norm = np.abs(spsolve(a, -np.ones(a.shape[0]))).max()
            # Both are within ||A^-1||_inf x residual of the same exact solution; channel 0's residual is scaled
            # by |a_c| = std_0 / std_c <= 1.1 (ImageNet stds) and each residual is <= tol + 3e-5 (see above).
            assert (fast[0, k, c] - alone[k, 0]).abs().max() <= inv_norm * 2.1 * (settings.tol + 3e-5) + 1e-5


def test_an_images_score_does_not_depend_on_its_batch(nih_inputs, model_and_maps):
    model, top1, maps = model_and_maps
    fn = logits_fn(model)
    together = road_scores(fn, nih_inputs, maps, top1, seeds=[7, 8, 9])
    for j, seed in enumerate((7, 8, 9)):
        alone = road_scores(fn, nih_inputs[j : j + 1], maps[j : j + 1], top1[j : j + 1], seed=seed)
        # Same masks, same per-image noise, each system stops on its own residual: only the batched forward's
        # float32 summation order differs (logits ~ 1, eps 6e-8 x a few thousand terms) -> well under 1e-4.
        assert abs(together[j] - alone[0]) <= 1e-4


def test_scores_agree_with_road_combined_within_its_seed_spread(nih_inputs, model_and_maps):
    model, top1, maps = model_and_maps
    fn = logits_fn(model)
    seeds = range(5)
    lib = np.array([road_scores_library(fn, nih_inputs, maps, top1, seed=s) for s in seeds])  # (S, N)
    ours = np.array([road_scores(fn, nih_inputs, maps, top1, seed=s) for s in seeds])
    sd_lib, sd_ours = lib.std(axis=0, ddof=1), ours.std(axis=0, ddof=1)
    assert (sd_lib > 0).all() and (sd_ours > 0).all()  # both add the noise
    # Without noise both compute the same numbers up to the solver's tolerance (test above: pixel errors <1e-3,
    # 1e-3 of the 0.01 noise's effect); with it, each mean over S = 5 seeds is an independent estimate of the same
    # expectation, so their difference has sd sqrt((sd_lib^2 + sd_ours^2) / S): allow 4 of those (a normal
    # difference exceeds it with probability 6e-5), i.e. about 2.5 library seed-to-seed sds.
    bound = 4 * np.sqrt((sd_lib**2 + sd_ours**2) / len(seeds))
    assert (np.abs(ours.mean(axis=0) - lib.mean(axis=0)) <= bound).all()
    # The same noise (sd 0.01 on every imputed value) gives the same spread: with 4 degrees of freedom each, a
    # variance ratio above 6^2 = 36 has probability ~0.002 (F(4, 4) tail).
    ratio = sd_ours / sd_lib
    assert ((ratio > 1 / 6) & (ratio < 6)).all()


def test_road_scores_refuses_bad_seeds_and_percentiles(nih_inputs, model_and_maps):
    model, top1, maps = model_and_maps
    fn = logits_fn(model)
    with pytest.raises(ValueError, match="seeds"):
        road_scores(fn, nih_inputs, maps, top1, seeds=[1])
    with pytest.raises(ValueError, match="percentiles"):
        road_scores(fn, nih_inputs, maps, top1, percentiles=(0, 50))
    with pytest.raises(ValueError, match="batch_size"):
        road_scores(fn, nih_inputs, maps, top1, batch_size=0)
    with pytest.raises(ValueError):
        linear_impute(torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8, dtype=torch.bool))


def test_the_solver_runs_on_one_thread_and_restores_the_callers_count(monkeypatch) -> None:
    """Issue 27 D1: the solver's many small operations run on one intra-op thread (a second thread, descheduled on
    a busy machine, made every operation wait for it), and the calling thread's count is restored afterwards."""
    import threading

    from cxrdemo.audit import road_impute

    seen: list[int] = []
    real_solve = road_impute._solve

    def recording_solve(levels, b, settings):
        seen.append(torch.get_num_threads())
        return real_solve(levels, b, settings)

    monkeypatch.setattr(road_impute, "_solve", recording_solve)
    values = torch.rand(2, 1, 16, 16)
    kept = torch.rand(2, 1, 16, 16) > 0.5
    counts: dict[str, int] = {}

    def run() -> None:  # a fresh thread: the fixture's one-thread setting is the main thread's own
        torch.set_num_threads(2)
        road_impute.linear_impute(values, kept)
        counts["after"] = torch.get_num_threads()
        road_impute.linear_impute(values, kept, SolverSettings(threads=None))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert seen == [1, 2] and counts["after"] == 2
