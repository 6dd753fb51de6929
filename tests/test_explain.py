"""Grad-CAM from cached features equals pytorch-grad-cam on the whole network; CAM box as in CLN; hooks released."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cxrdemo.errors import InputError
from cxrdemo.cams import check_method, check_threshold
from cxrdemo.explain import CAM_METHODS, cam_box, cam_heatmaps


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


@pytest.mark.parametrize("method, cls", [("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus), ("layercam", LayerCAM)])
def test_cam_from_features_equals_full_network_cam(predictor, method, cls):
    import copy

    model = copy.deepcopy(predictor.model)
    # A freshly initialised head gives CAM values near 1e-10, where pytorch-grad-cam's 1e-7 normalisation epsilon
    # dominates; scale the head so the maps have real magnitudes.
    with torch.no_grad():
        model.class_head.fc.weight.mul_(1e6)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 128, 128)
    targets = [1, 4]
    with torch.no_grad():
        feats = model.forward_features(x)
    ours = cam_heatmaps(model, feats, targets, method, size=128)
    # our CAM left the shared model without gradients and without hooks
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    with cls(model=_LogitsOnly(model), target_layers=[model.cam_layer]) as cam:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    assert ours.shape == ref.shape == (2, 128, 128)
    assert ref.max() > 0.99  # a real map, not an all-zero one
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99 and np.abs(ours - ref).mean() < 0.01


def test_gradcam_matches_its_definition(predictor):
    """Grad-CAM by hand: weights = spatial mean of d(logit)/dA over the full network; map = ReLU(sum_k w_k A_k)."""
    import copy

    import cv2

    model = copy.deepcopy(predictor.model)
    with torch.no_grad():
        model.class_head.fc.weight.mul_(1e6)
    torch.manual_seed(2)
    x = torch.randn(1, 3, 128, 128)
    feats = model.forward_features(x)
    feats.retain_grad()
    model.heads(feats).logits[0, 3].backward()
    weights = feats.grad[0].mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * feats[0].detach()).sum(0)).numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    expected = cv2.resize(cam.astype(np.float32), (128, 128), interpolation=cv2.INTER_LINEAR)
    ours = cam_heatmaps(model, feats.detach(), [3], "gradcam", size=128)[0]
    assert np.abs(ours - expected).max() < 1e-4


def test_every_method_gives_maps_in_unit_range(predictor):
    feats = torch.rand(1, predictor.model.class_head.fc.in_features, 4, 4)
    for method in CAM_METHODS:
        maps = cam_heatmaps(predictor.model, feats, [0], method)
        assert maps.shape == (1, 128, 128) and maps.dtype == np.float32
        assert 0.0 <= maps.min() and maps.max() <= 1.0, method


def test_cam_box_largest_connected_region_in_original_pixels():
    heat = np.zeros((100, 100), np.float32)
    heat[10:20, 10:20] = 1.0  # small blob
    heat[50:90, 40:70] = 0.8  # large blob (0.8*255 = 204)
    heat[60:62, 5:7] = 0.55  # below 180/255, above 127/255
    box = cam_box(heat, 127, width=1000, height=500, label="Mass")
    assert box is not None and box.xyxy == (400.0, 250.0, 700.0, 450.0) and box.label == "Mass"
    assert cam_box(heat, 180, width=100, height=100).xyxy == (40, 50, 70, 90)
    heat2 = np.zeros((100, 100), np.float32)
    heat2[0:10, 0:10] = 0.49  # 124.95 -> below 127
    assert cam_box(heat2, 127, width=100, height=100) is None


def test_threshold_and_method_validation():
    assert check_method("GradCAM++") == "gradcam++" and check_method("grad-cam") == "gradcam"
    assert check_threshold(180.0) == 180
    with pytest.raises(InputError, match="unknown CAM method"):
        check_method("scorecam")
    with pytest.raises(InputError, match="outside 1..254"):
        check_threshold(300)
    with pytest.raises(InputError, match="not a finite number"):
        check_threshold("abc")


def test_economy_svd_projection_equals_grad_cam_library():
    """FastEigenCAM's projection is pytorch-grad-cam's get_2d_projection, map for map (economy SVD only)."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from cxrdemo.explain import first_component_projection

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(3, 1280, 7, 7)).astype(np.float32) * rng.uniform(0.1, 3.0, size=(3, 1280, 1, 1)).astype(np.float32)
    ours, theirs = first_component_projection(acts), get_2d_projection(acts)
    assert ours.shape == theirs.shape == (3, 7, 7)
    assert np.allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())
