"""Each foreign format's adapter against the format's own reference pipeline, on real NIH radiographs.

Small random-initialised models are built in each format in a temporary folder (timm ``save_for_hf``,
transformers ``save_pretrained``, a torchxrayvision weights file in a temporary xrv cache); nothing touches the
network. Tolerance 2e-3 on probabilities (the issue's bar): the adapter and the reference run the same float32
operations on the same 8-bit pixels, except that the adapter resamples one gray plane where the reference resamples
R, G and B of the same gray image (identical planes, so identical values) and splits the forward at the CAM layer
(the same operations in the same order); what remains is float32 summation order, ~1e-6 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_formats import hf_folder, timm_folder, xrv_cache

from cxrdemo.imaging import load_image
from cxrdemo.models.weights import load_model

TOL = 2e-3
N_IMAGES = 3


@pytest.fixture(scope="module")
def films(images_dir: Path) -> list[Path]:
    files = sorted(images_dir.glob("*.png"))[:N_IMAGES]
    if not files:
        pytest.skip("no NIH images in the shared data folder")
    return files


def _timm_reference(folder: Path, film: Path) -> np.ndarray:
    import timm

    net = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    cfg = timm.data.resolve_model_data_config(net)
    transform = timm.data.create_transform(**cfg, is_training=False)
    rgb = Image.fromarray(load_image(film).pixels).convert("RGB")
    with torch.inference_mode():
        return torch.sigmoid(net(transform(rgb)[None]))[0].numpy()


def _adapter_probs(loaded, film: Path) -> np.ndarray:
    model = loaded.model
    x = model.preprocess(load_image(film).pixels)[None]
    with torch.inference_mode():
        return model.probabilities(model(x).logits)[0].numpy()


ALPHA = sorted(["Atelectasis", "Cardiomegaly", "Pleural Effusion", "Infiltrate", "No Finding", "Pleural_Thickening"])


@pytest.mark.parametrize("arch,kwargs", [("resnet10t", {}), ("vit_tiny_patch16_224", {"img_size": 96})])
def test_timm_adapter_equals_timm_pipeline(tmp_path: Path, films: list[Path], arch: str, kwargs: dict) -> None:
    folder = timm_folder(tmp_path, arch, ALPHA, **kwargs)
    loaded = load_model(str(folder), device="cpu")
    assert loaded.model.format_name == "timm"
    lm = loaded.model.labels
    assert lm.model_labels == tuple(ALPHA)
    assert "Effusion" in lm.scored and "Infiltration" in lm.scored and "Pleural_Thickening" in lm.scored
    assert "No Finding" in lm.unscored
    for film in films:
        ours, ref = _adapter_probs(loaded, film), _timm_reference(folder, film)
        np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)


def test_timm_legacy_flat_config_and_prefix(tmp_path: Path, films: list[Path]) -> None:
    folder = timm_folder(tmp_path, "resnet10t", ALPHA)
    cfg = json.loads((folder / "config.json").read_text())
    flat = dict(cfg["pretrained_cfg"], architecture=cfg["architecture"], num_classes=cfg["num_classes"], labels=ALPHA)
    flat.update(crop_pct=0.875, interpolation="bicubic")
    (folder / "config.json").write_text(json.dumps(flat))
    loaded = load_model(f"timm:{folder}", device="cpu")
    assert loaded.model.prep.interpolation == "bicubic" and loaded.model.labels.model_labels == tuple(ALPHA)
    view = loaded.model.view(1024, 1024)
    assert not view.full and view.note()  # crop_pct 0.875 hides the border
    np.testing.assert_allclose(_adapter_probs(loaded, films[0]), _timm_reference(folder, films[0]), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind,multi", [("vit", True), ("swin", False), ("convnext", True)])
def test_transformers_adapter_equals_pipeline(tmp_path: Path, films: list[Path], kind: str, multi: bool) -> None:
    from transformers import pipeline

    labels = ["Effusion", "Pneumonia", "No Finding"] if multi else ["NORMAL", "PNEUMONIA"]
    folder = hf_folder(tmp_path, kind, labels, multi)
    loaded = load_model(str(folder), device="cpu")
    assert loaded.model.format_name == "transformers"
    assert loaded.config.class_mode == ("multilabel" if multi else "softmax")
    pipe = pipeline("image-classification", model=str(folder), device="cpu")
    for film in films:
        ours = _adapter_probs(loaded, film)
        rgb = Image.fromarray(load_image(film).pixels).convert("RGB")
        ref = {r["label"]: r["score"] for r in pipe(rgb, top_k=None)}
        assert set(ref) == set(labels)
        np.testing.assert_allclose(ours, [ref[l] for l in labels], atol=TOL, rtol=0)


def test_xrv_adapter_equals_documented_pipeline(tmp_path: Path, films: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision
    import torchxrayvision as xrv

    name = "densenet121-res224-nih"
    monkeypatch.setenv("CXRDEMO_XRV_CACHE", str(xrv_cache(tmp_path, name)))
    loaded = load_model(f"xrv:{name}", device="cpu")
    assert loaded.model.format_name == "torchxrayvision" and loaded.source.kind == "xrv"
    lm = loaded.model.labels
    assert "" in lm.model_labels and len(lm.scored) == len(lm.model_labels) - lm.model_labels.count("") == 14
    ref_net = xrv.models.DenseNet(weights=name, cache_dir=str(Path(loaded.model.net.weights_filename_local).parent)).eval()
    ref_net.op_threshs = None
    transform = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)])
    for film in films:
        img = xrv.datasets.normalize(np.asarray(Image.open(film).convert("L"), dtype=np.float32), 255)[None, ...]
        with torch.inference_mode():
            ref = torch.sigmoid(ref_net(torch.from_numpy(transform(img))[None]))[0].numpy()
        np.testing.assert_allclose(_adapter_probs(loaded, film), ref, atol=TOL, rtol=0)


def test_bare_xrv_name_and_bad_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrdemo.errors import WeightsError

    with pytest.raises(WeightsError, match="not a torchxrayvision weight name"):
        load_model("xrv:densenet121-res224-nope", device="cpu")


def test_model_card_is_shown_as_plain_text(tmp_path: Path) -> None:
    from cxrdemo.models.files import card_summary
    from cxrdemo.models.weights import describe_model

    card = "---\nlicense: mit\n---\n# A model\n\n![badge](http://b)\nA **ResNet** fine-tuned on [NIH](http://n) <b>films</b>.\n"
    assert card_summary(card) == "A ResNet fine-tuned on NIH films."
    assert card_summary("# heading only\n") is None
    folder = timm_folder(tmp_path, "resnet10t", ALPHA)
    (folder / "README.md").write_text(card)
    info = describe_model(load_model(str(folder), device="cpu"))
    assert info["format"] == "timm" and info["card"].startswith("A ResNet fine-tuned")


def test_tensor_only_pickles_and_refused_pickles(tmp_path: Path, films: list[Path]) -> None:
    """A transformers ``pytorch_model.bin`` is read with ``weights_only=True``; a pickle that carries code is refused."""
    from safetensors.torch import load_file

    from cxrdemo.errors import CxrDemoError

    folder = hf_folder(tmp_path, "vit", ["Effusion", "Mass"], multi=True)
    reference = _adapter_probs(load_model(str(folder), device="cpu"), films[0])
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")  # tensors only
    np.testing.assert_array_equal(_adapter_probs(load_model(f"hf:{folder}", device="cpu"), films[0]), reference)

    class Payload:  # unpickling this would call os.system
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"x": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CxrDemoError):
        load_model(f"hf:{folder}", device="cpu")
    assert not (tmp_path / "pwned").exists()
