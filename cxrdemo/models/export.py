"""Export cxrdemo's own timm-backed network (``efficientnet_lite*``) as a timm folder (``save_for_hf``).

The classification path only: timm's ``efficientnet_lite0`` with the backbone's weights and the class head's linear
layer (timm's ``global_pool='avg'`` + ``classifier`` is the class head's GAP + linear; dropout is off in eval). The
box head has no timm counterpart and is dropped. ``alphabetical=True`` reorders the outputs (and their labels)
alphabetically, as some exported models do, to exercise label mapping. Preprocessing is declared as the nearest
timm eval transform of cxrdemo's (whole film, no crop: ``crop_mode='squash'``, ``crop_pct=1``, bilinear).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError


def export_timm(model: torch.nn.Module, folder: str | Path, alphabetical: bool = False) -> Path:
    """Write ``model`` (a :class:`~cxrdemo.models.cln.MultiTaskNet` on a timm backbone) as a timm folder; returns it."""
    import timm
    from timm.models import save_for_hf

    cfg = model.config
    body = getattr(model.backbone, "body", None)
    if body is None or not cfg.architecture.startswith("efficientnet_lite"):
        raise ConfigError(f"only timm-backed cxrdemo networks (efficientnet_lite*) export to timm, not {cfg.architecture}")
    classes = list(cfg.classes)
    order = sorted(range(len(classes)), key=lambda i: classes[i]) if alphabetical else list(range(len(classes)))
    net = timm.create_model(cfg.architecture, pretrained=False, num_classes=len(classes)).eval()
    state = {k: v for k, v in body.state_dict().items()}
    fc = model.class_head.fc
    state["classifier.weight"] = fc.weight.detach()[order].clone()
    state["classifier.bias"] = fc.bias.detach()[order].clone()
    net.load_state_dict(state, strict=True)
    data = {"input_size": (3, cfg.input_size, cfg.input_size), "crop_pct": 1.0, "crop_mode": "squash",
            "interpolation": "bilinear", "mean": tuple(cfg.mean), "std": tuple(cfg.std)}
    out = Path(folder)
    save_for_hf(net, str(out), model_config={"label_names": [classes[i] for i in order]}, data_config=data, safe_serialization=True)
    return out
