"""Small random-initialised models in each foreign format, written to a folder (shared by the adapter tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def timm_folder(tmp: Path, arch: str, labels: list[str], **kwargs) -> Path:
    import timm

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, num_classes=len(labels), **kwargs).eval()
    folder = tmp / arch
    from timm.models import save_for_hf

    save_for_hf(net, str(folder), model_config={"label_names": labels}, safe_serialization=True)
    return folder


def hf_folder(tmp: Path, kind: str, labels: list[str], multi: bool) -> Path:
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


def xrv_cache(tmp: Path, name: str) -> Path:
    import torchxrayvision as xrv

    torch.manual_seed(0)
    url = xrv.models.model_urls[name]["weights_url"]
    cache = tmp / "xrv-cache"
    cache.mkdir()
    net = xrv.models.DenseNet(num_classes=len(xrv.models.model_urls[name]["labels"]))
    torch.save(net, cache / Path(url).name)  # the library stores whole pickled DenseNets
    return cache
