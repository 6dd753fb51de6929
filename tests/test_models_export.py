"""The shipped network exported to timm (alphabetical labels) predicts what the shipped folder predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrdemo.imaging import load_image
from cxrdemo.models.export import export_timm
from cxrdemo.models.weights import EMBEDDED_DIR, load_model


def test_timm_export_of_the_shipped_network(tmp_path: Path, images_dir: Path) -> None:
    native = load_model(str(EMBEDDED_DIR), device="cpu")
    if native.config.architecture != "efficientnet_lite0":
        pytest.skip("the embedded network is not timm-backed")
    folder = export_timm(native.model, tmp_path / "export", alphabetical=True)
    timm_model = load_model(f"timm:{folder}", device="cpu")
    assert list(timm_model.model.labels.model_labels) == sorted(native.config.classes)
    assert sorted(timm_model.config.classes) == sorted(native.config.classes)  # every label maps back to its NIH name
    order = [timm_model.config.classes.index(c) for c in native.config.classes]
    film = load_image(sorted(images_dir.glob("*.png"))[0]).pixels
    x = native.model.preprocess(film)[None]
    with torch.inference_mode():
        ours = native.model.probabilities(native.model(x).logits)[0].numpy()
        theirs = timm_model.model.probabilities(timm_model.model(x).logits)[0].numpy()[order]
    # The same float32 operations (the backbone, a mean over the 7x7 map, one linear layer) on the same tensor:
    # only summation order may differ, ~1e-6 on a probability.
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
