"""A box head that ignores the image is detected and said: the embedded model, a random model, a bias-only head."""

from __future__ import annotations

import copy

import numpy as np
import torch

from cxrdemo.boxcheck import STATIC_BOXES_NOTE, probe_boxes, probe_images
from cxrdemo.imaging import Radiograph
from cxrdemo.predict import Predictor


def test_probe_images_are_synthetic_and_different():
    images = probe_images(64)
    assert images.shape == (8, 64, 64) and images.dtype == np.uint8
    flat = images.reshape(len(images), -1).astype(float)
    assert min(np.abs(a - b).mean() for i, a in enumerate(flat) for b in flat[i + 1:]) > 10


def test_random_model_boxes_move(predictor):
    probe = predictor.box_probe
    assert not probe.all_static and probe.n_probes == 8
    assert max(probe.spread.values()) > 0.01


def test_bias_only_box_head_is_static_and_said(predictor):
    static = Predictor(copy.copy(predictor.loaded))
    static.model = copy.deepcopy(predictor.model)
    last = [m for m in static.model.box_head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()  # the box no longer depends on the features
    probe = probe_boxes(static.model, static.config)
    assert probe.all_static and set(probe.static_classes) == set(static.config.box_classes)
    film = Radiograph(np.random.default_rng(0).integers(0, 255, (300, 260), dtype=np.uint8), "x.png", "png")
    analysis = static.analyse(film)
    assert analysis.boxes_static and any(STATIC_BOXES_NOTE in n for n in analysis.notes)
    assert not predictor.analyse(film).boxes_static


def test_embedded_default_model_has_prior_boxes():
    """The shipped model learned its box head from a handful of boxes: the probe must say so."""
    probe = Predictor.from_source(device="cpu").box_probe
    assert probe.all_static, probe.spread
