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


#: The labels of the tiny detectors (NIH names, one synonym, so the label map is exercised).
DETECTOR_LABELS = ["Nodule", "Mass", "Pleural Effusion"]


def spread_heads(net: torch.nn.Module, parts: tuple[str, ...], std: float = 0.5) -> None:
    """Redraw the head weights whose names contain one of ``parts`` with a wide normal, so that a random tiny
    detector's scores and boxes differ from box to box (freshly initialised heads give nearly tied scores)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if any(part in name for part in parts):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def hf_detector_folder(tmp: Path, kind: str, labels: list[str] = DETECTOR_LABELS) -> Path:
    """A random-initialised tiny transformers detector (``detr``, ``conditional_detr``, ``deformable_detr``,
    ``rt_detr`` or ``yolos``) saved as
    ``save_pretrained`` does, with its image processor; nothing downloaded (a tiny ResNet backbone from a config)."""
    from transformers import (DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig, RTDetrConfig,
                              RTDetrForObjectDetection, RTDetrImageProcessor, RTDetrResNetConfig, YolosConfig,
                              YolosForObjectDetection, YolosImageProcessor)

    torch.manual_seed(0)
    common = dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    if kind == "detr":
        backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
        net = DetrForObjectDetection(DetrConfig(
            backbone_config=backbone, use_timm_backbone=False, use_pretrained_backbone=False, num_queries=12,
            encoder_layers=1, decoder_layers=1, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32,
            encoder_attention_heads=2, decoder_attention_heads=2, **common))
        proc = DetrImageProcessor(size={"shortest_edge": 160, "longest_edge": 224})
    elif kind in ("conditional_detr", "deformable_detr"):
        from transformers import (ConditionalDetrConfig, ConditionalDetrForObjectDetection, DeformableDetrConfig,
                                  DeformableDetrForObjectDetection)

        deformable = kind == "deformable_detr"
        stages = ["stage1", "stage2"] if deformable else ["stage2"]
        backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=stages)
        config_cls, net_cls = ((DeformableDetrConfig, DeformableDetrForObjectDetection) if deformable
                               else (ConditionalDetrConfig, ConditionalDetrForObjectDetection))
        extra = dict(num_feature_levels=2, encoder_n_points=2, decoder_n_points=2) if deformable else {}
        # Deformable DETR: GroupNorm(32, d_model) needs d_model 32; its tied box heads need two decoder layers
        net = net_cls(config_cls(
            backbone_config=backbone, use_timm_backbone=False, use_pretrained_backbone=False, num_queries=12,
            encoder_layers=1, decoder_layers=2 if deformable else 1, d_model=32 if deformable else 16, encoder_ffn_dim=32, decoder_ffn_dim=32,
            encoder_attention_heads=2, decoder_attention_heads=2, **extra, **common))
        proc = DetrImageProcessor(size={"shortest_edge": 160, "longest_edge": 224})
    elif kind == "rt_detr":
        backbone = RTDetrResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                      out_features=["stage2", "stage3", "stage4"])
        net = RTDetrForObjectDetection(RTDetrConfig(
            backbone_config=backbone, use_pretrained_backbone=False, encoder_hidden_dim=16, encoder_in_channels=[16, 16, 16],
            encoder_ffn_dim=32, encoder_attention_heads=2, d_model=16, num_queries=20, decoder_in_channels=[16, 16, 16],
            decoder_ffn_dim=32, decoder_layers=1, decoder_attention_heads=2, num_denoising=0, **common))
        proc = RTDetrImageProcessor(size={"height": 160, "width": 160})
    elif kind == "yolos":
        net = YolosForObjectDetection(YolosConfig(
            image_size=[96, 96], patch_size=16, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, num_detection_tokens=10, **common))
        proc = YolosImageProcessor(size={"shortest_edge": 128, "longest_edge": 192})
    else:
        raise ValueError(kind)
    spread_heads(net, ("class", "bbox", "score", "detection_tokens", "position_embeddings"))
    folder = tmp / f"hf-{kind}"
    net.eval().save_pretrained(str(folder))
    proc.save_pretrained(str(folder))
    return folder


def tv_detector_folder(tmp: Path, labels: list[str] = DETECTOR_LABELS, suffix: str = ".safetensors", **extra) -> Path:
    """A random-initialised torchvision ``fasterrcnn_mobilenet_v3_large_320_fpn`` (weights=None,
    weights_backbone=None) in a cxrdemo torchvision folder: config.json + model.safetensors (or a .pth state dict)."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    classes = ["__background__", *labels]
    net = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=len(classes)).eval()
    spread_heads(net, ("roi_heads", "fpn"), std=0.05)
    folder = tmp / "tv-frcnn"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"builder": "fasterrcnn_mobilenet_v3_large_320_fpn", "classes": classes, "min_size": 320, "max_size": 640, **extra}
    (folder / "config.json").write_text(json.dumps(cfg))
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    else:
        torch.save(net.state_dict(), folder / f"model{suffix}")
    return folder


def tv_detector_reference(folder: Path, image: Path, threshold: float) -> list[tuple[str, tuple[float, ...], float]]:
    """torchvision's own answer for a :func:`tv_detector_folder`: the network rebuilt by torchvision from the folder's
    state dict, called in eval mode on the PNG read by PIL and scaled to [0, 1] (the model's transform does the
    rest); ``(class, xyxy, score)`` of the boxes scoring above ``threshold``, highest score first."""
    import numpy as np
    from PIL import Image
    from safetensors.torch import load_file
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    cfg = json.loads((folder / "config.json").read_text())
    ref = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=len(cfg["classes"]),
                                                min_size=cfg["min_size"], max_size=cfg["max_size"])
    ref.load_state_dict(load_file(str(folder / "model.safetensors")))
    ref.eval()
    x = torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32) / 255.0)[None].expand(3, -1, -1)
    with torch.no_grad():
        out = ref([x])[0]
    rows = [(cfg["classes"][int(c)], tuple(b.tolist()), float(s))
            for b, c, s in zip(out["boxes"], out["labels"], out["scores"]) if float(s) > threshold]
    return sorted(rows, key=lambda r: (-r[2], r[1]))
