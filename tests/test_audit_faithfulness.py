"""cxrdemo.audit.faithfulness: ROAD through pytorch-grad-cam's ROADCombined on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import calibrated_model
from cxrdemo.audit.faithfulness import logits_fn, road_scores


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny tensors run fastest on one thread


class QuadrantModel(nn.Module):
    """Logit 0 = 10 x the mean of the top-left 8 x 8 quadrant; logit 1 = 10 x the mean of the rest."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(dim=1)
        q = g[:, :8, :8].mean(dim=(1, 2))
        rest = (g.sum(dim=(1, 2)) - g[:, :8, :8].sum(dim=(1, 2))) / (g[0].numel() - 64)
        return 10 * torch.stack([q, rest], dim=1)


def quadrant_inputs(n: int = 2) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    x = torch.zeros(n, 3, 16, 16)
    x[:, :, :8, :8] = 1.0
    good = np.zeros((n, 16, 16), dtype=np.float32)
    good[:, :8, :8] = 0.9
    good += rng.random((n, 16, 16)).astype(np.float32) * 0.1  # no ties: ROAD's percentiles stay distinct
    return x, good


def test_road_runs_on_a_tiny_random_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(3, 3, 16, 16)
    maps = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    out = road_scores(model, x, maps, [0, 2, 1])
    assert out.shape == (3,) and out.dtype == np.float64 and np.isfinite(out).all()


def test_a_map_of_the_relevant_pixels_beats_its_inverse():
    x, good = quadrant_inputs()
    model = QuadrantModel()
    faithful = road_scores(model, x, good, [0, 0])
    inverse = road_scores(model, x, 1.0 - good, [0, 0])
    assert (faithful > 1.0).all() and (inverse < 0).all()


def test_road_is_seeded_and_leaves_the_global_rng_alone():
    x, good = quadrant_inputs(1)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = road_scores(QuadrantModel(), x, good, [0], seed=5)
    assert torch.equal(torch.rand(3), expected_next)
    b = road_scores(QuadrantModel(), x, good, [0], seed=5)
    assert np.array_equal(a, b)
    c = road_scores(QuadrantModel(), x, good, [0], seed=6)
    assert not np.array_equal(a, c)  # the imputation noise moved


def test_road_on_a_multitask_model_with_its_cam():
    from cxrdemo.explain import cam_heatmaps

    size = 48
    model = calibrated_model(size, batches=3)
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = model(x)
    targets = [int(i) for i in out.logits.argmax(dim=1)]
    maps = cam_heatmaps(model, out.features.clone(), targets, "gradcam")
    scores = road_scores(logits_fn(model), x, maps, targets, percentiles=(20, 80), score="softmax")
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores != 0).any()


def test_road_refuses_mismatched_arguments():
    x, good = quadrant_inputs()
    with pytest.raises(ValueError):
        road_scores(QuadrantModel(), x, good[:1], [0, 0])
    with pytest.raises(ValueError):
        road_scores(QuadrantModel(), x, good, [0])
    with pytest.raises(ValueError):
        road_scores(QuadrantModel(), x, good, [0, 0], score="probability")
