"""cxrdemo.audit.sanity: cascading parameter randomization and class sensitivity on a small real model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import calibrated_model
from cxrdemo.audit.sanity import (
    SanityResult,
    cascading_randomization,
    class_sensitivity,
    randomization_steps,
    spearman,
    summarise_class_sensitivity,
)

SIZE = 96


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny tensors run fastest on one thread


@pytest.fixture(scope="module")
def small_model():
    """A random MobileNetV3-Small multi-task model at 96 px, BatchNorm calibrated (as conftest.model_dir does)."""
    return calibrated_model(SIZE, batches=3)


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, SIZE, SIZE, generator=g) * 4 - 2


def test_steps_go_from_the_head_down_the_backbone(small_model):
    steps = randomization_steps(small_model)
    assert steps[:3] == ["trained", "class head", "stage 12"]
    assert steps[-1] == "stage 0" and len(steps) == 2 + 13  # MobileNetV3-Small: 13 stages, all with parameters


def test_cascade_drops_gradcam_correlation_and_leaves_the_model_alone(small_model, batch):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    torch.manual_seed(42)
    expected_next = torch.rand(2)
    torch.manual_seed(42)
    targets = [0, 3]
    result = cascading_randomization(small_model, batch, targets, ["gradcam"], seed=0)
    assert torch.equal(torch.rand(2), expected_next)  # the caller's RNG is untouched
    after = small_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is never changed

    steps = randomization_steps(small_model)
    assert result.steps == steps and result.methods == ["gradcam"]
    rho, sim = result.spearman["gradcam"], result.ssim["gradcam"]
    assert rho.shape == sim.shape == (len(steps), 2)
    assert np.allclose(rho[0], 1.0) and np.allclose(sim[0], 1.0)  # trained vs itself
    randomized = rho[1:][np.isfinite(rho[1:])]
    assert randomized.size > 0 and randomized.max() < 1.0
    assert np.nanmean(rho[-1]) < 0.9  # after the whole network: far from the trained map
    assert np.isfinite(sim).all() and (sim <= 1.0 + 1e-9).all()


def test_eigencam_ignores_the_class_head(small_model, batch):
    # EigenCAM does not use the head: randomizing only the class head leaves its map exactly as it was.
    result = cascading_randomization(small_model, batch, [0, 3], ["eigencam", "gradcam"], steps=2)
    assert result.steps == ["trained", "class head"]
    assert np.allclose(result.spearman["eigencam"][1], 1.0) and np.allclose(result.ssim["eigencam"][1], 1.0)
    assert not np.allclose(result.spearman["gradcam"][1], 1.0)


def test_cascade_is_seeded_and_json_summarises_each_step(small_model, batch):
    a = cascading_randomization(small_model, batch, [1, 1], ["gradcam"], seed=3, steps=4)
    b = cascading_randomization(small_model, batch, [1, 1], ["gradcam"], seed=3, steps=4, keep_maps=True)
    assert a.steps == ["trained", "class head", "stage 12", "stage 11"]
    assert np.array_equal(a.spearman["gradcam"], b.spearman["gradcam"], equal_nan=True)
    assert b.maps is not None and b.maps["gradcam"].shape == (4, 2, SIZE, SIZE)
    doc = json.loads(json.dumps(a.to_json(n_resamples=100)))
    assert doc["steps"] == a.steps and doc["spearman"] == "absolute" and doc["n_images"] == 2
    first = doc["methods"]["gradcam"][0]
    assert first["step"] == "trained" and first["spearman"]["value"] == pytest.approx(1.0) and first["spearman"]["n"] == 2
    assert set(first["ssim"]) == {"value", "low", "high", "n", "undefined"}
    both = SanityResult.concat([a, a])
    assert both.n_images == 4 and both.spearman["gradcam"].shape == (4, 4)


def test_class_sensitivity_eigencam_is_one(small_model, batch):
    with torch.no_grad():
        out = small_model(batch)
    probs = small_model.probabilities(out.logits)
    result = class_sensitivity(small_model, out.features.clone(), probs, ["eigencam", "gradcam"])
    assert set(result) == {"eigencam", "gradcam"}
    assert result["eigencam"].shape == (2,) and np.allclose(result["eigencam"], 1.0)
    g = result["gradcam"]
    assert g.shape == (2,) and np.all(np.isnan(g) | ((g >= -1.0) & (g <= 1.0)))
    doc = summarise_class_sensitivity(result, n_resamples=50)
    assert doc["methods"]["eigencam"]["value"] == pytest.approx(1.0)


def test_spearman_of_a_constant_map_is_undefined():
    ramp = np.arange(16, dtype=float).reshape(4, 4)
    assert np.isnan(spearman(np.zeros((4, 4)), ramp))
    assert spearman(ramp, -ramp) == pytest.approx(-1.0)
    assert spearman(ramp, -ramp, absolute=True) == pytest.approx(1.0)
