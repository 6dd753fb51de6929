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

from cxrdemo.imaging import load_image
from cxrdemo.weights import load_model

TOL = 2e-3
N_IMAGES = 3


@pytest.fixture(scope="module")
def films(images_dir: Path) -> list[Path]:
    files = sorted(images_dir.glob("*.png"))[:N_IMAGES]
    if not files:
        pytest.skip("no NIH images in the shared data folder")
    return files


def _timm_folder(tmp: Path, arch: str, labels: list[str], **kwargs) -> Path:
    import timm

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, num_classes=len(labels), **kwargs).eval()
    folder = tmp / arch
    timm.models.push_to_hf_hub  # noqa: B018 - the same module exports save_for_hf
    from timm.models import save_for_hf

    save_for_hf(net, str(folder), model_config={"label_names": labels}, safe_serialization=True)
    return folder


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
    folder = _timm_folder(tmp_path, arch, ALPHA, **kwargs)
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
    folder = _timm_folder(tmp_path, "resnet10t", ALPHA)
    cfg = json.loads((folder / "config.json").read_text())
    flat = dict(cfg["pretrained_cfg"], architecture=cfg["architecture"], num_classes=cfg["num_classes"], labels=ALPHA)
    flat.update(crop_pct=0.875, interpolation="bicubic")
    (folder / "config.json").write_text(json.dumps(flat))
    loaded = load_model(f"timm:{folder}", device="cpu")
    assert loaded.model.prep.interpolation == "bicubic" and loaded.model.labels.model_labels == tuple(ALPHA)
    view = loaded.model.view(1024, 1024)
    assert not view.full and view.note()  # crop_pct 0.875 hides the border
    np.testing.assert_allclose(_adapter_probs(loaded, films[0]), _timm_reference(folder, films[0]), atol=TOL, rtol=0)


def _hf_folder(tmp: Path, kind: str, labels: list[str], multi: bool) -> Path:
    from transformers import (AutoImageProcessor, ConvNextConfig, ConvNextForImageClassification, SwinConfig,
                              SwinForImageClassification, ViTConfig, ViTForImageClassification)

    torch.manual_seed(0)
    common = dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
                  problem_type="multi_label_classification" if multi else "single_label_classification")
    if kind == "vit":
        net = ViTForImageClassification(ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64, **common))
        proc = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 64, "width": 64},
                "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    elif kind == "swin":
        net = SwinForImageClassification(SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                                     window_size=4, **common))
        proc = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 64, "width": 64},
                "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    else:
        net = ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, **common))
        proc = {"image_processor_type": "ConvNextImageProcessor", "do_resize": True, "size": {"shortest_edge": 64},
                "crop_pct": 0.875, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    folder = tmp / kind
    net.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(proc))
    AutoImageProcessor.from_pretrained(str(folder))  # the file is one transformers reads
    return folder


@pytest.mark.parametrize("kind,multi", [("vit", True), ("swin", False), ("convnext", True)])
def test_transformers_adapter_equals_pipeline(tmp_path: Path, films: list[Path], kind: str, multi: bool) -> None:
    from transformers import pipeline

    labels = ["Effusion", "Pneumonia", "No Finding"] if multi else ["NORMAL", "PNEUMONIA"]
    folder = _hf_folder(tmp_path, kind, labels, multi)
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


def _xrv_cache(tmp: Path, name: str) -> Path:
    import torchxrayvision as xrv

    torch.manual_seed(0)
    url = xrv.models.model_urls[name]["weights_url"]
    cache = tmp / "xrv-cache"
    cache.mkdir()
    net = xrv.models.DenseNet(num_classes=len(xrv.models.model_urls[name]["labels"]))
    torch.save(net, cache / Path(url).name)  # the library stores whole pickled DenseNets
    return cache


def test_xrv_adapter_equals_documented_pipeline(tmp_path: Path, films: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision
    import torchxrayvision as xrv

    name = "densenet121-res224-nih"
    monkeypatch.setenv("CXRDEMO_XRV_CACHE", str(_xrv_cache(tmp_path, name)))
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
