"""torchxrayvision named weights (``xrv:densenet121-res224-all``, ``xrv:resnet50-res512-all``...).

The library fetches its own weights into its own cache (``~/.torchxrayvision/models_data`` or
``$CXRDEMO_XRV_CACHE``) and unpickles them itself: this is allowed only for the library's named weights, never for a
path the user gives. Preprocessing is the library's documented one: ``xrv.datasets.normalize(img, 255)`` (pixels to
[-1024, 1024]), one channel, ``XRayCenterCrop`` (the centred square of the shorter side) and ``XRayResizer(S)``.
``op_threshs`` is set to ``None``: the adapter returns raw logits (what a CAM explains) and sigmoid probabilities;
the library's calibrated outputs (``op_norm``) are not used. Outputs the weights were not trained for (label
``''``) are shown as ``output i`` and never scored.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .config import ModelConfig
from ..errors import WeightsError
from .base import AdapterBase
from .geometry import FilmView
from .labels import map_labels

ENV_XRV_CACHE = "CXRDEMO_XRV_CACHE"


def xrv_weight_names() -> list[str]:
    """The named weights torchxrayvision knows (DenseNet-121 and ResNet classifiers)."""
    import torchxrayvision as xrv

    return sorted(k for k in xrv.models.model_urls if k.startswith(("densenet", "resnet")))


def xrv_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """torchxrayvision's documented preprocessing of an 8-bit grayscale film: ``(1, size, size)`` float32."""
    import torchxrayvision as xrv

    img = xrv.datasets.normalize(np.asarray(pixels, dtype=np.float32), 255)[None, ...]
    img = xrv.datasets.XRayCenterCrop()(img)
    return xrv.datasets.XRayResizer(size)(img)


class XrvAdapter(AdapterBase):
    """A torchxrayvision DenseNet or ResNet classifier behind the adapter interface (no box head)."""

    format_name = "torchxrayvision"

    def __init__(self, name: str) -> None:
        super().__init__()
        import torchxrayvision as xrv

        names = xrv_weight_names()
        if name not in names:
            raise WeightsError(f"{name!r} is not a torchxrayvision weight name; use xrv: with one of {', '.join(names)}")
        cache = os.environ.get(ENV_XRV_CACHE) or None
        try:
            if name.startswith("resnet"):
                net = xrv.models.ResNet(weights=name, cache_dir=cache)
            else:
                net = xrv.models.DenseNet(weights=name, cache_dir=cache)
        except Exception as exc:  # noqa: BLE001 - download or unpickling failure: one line
            first = " ".join(str(exc).split())[:120] or exc.__class__.__name__
            raise WeightsError(f"torchxrayvision could not load {name} ({first}); connect once so it can download its weights, or set {ENV_XRV_CACHE}") from None
        net.op_threshs = None  # raw logits, not the library's calibrated outputs
        self.net = net.eval().requires_grad_(False)
        self.name = name
        self.size = int(xrv.models.model_urls[name].get("input_resolution", 224))
        self.labels = map_labels(list(net.targets))
        self.config = ModelConfig(
            architecture=f"xrv:{name}", classes=list(self.labels.shown), box_classes=[], class_mode="multilabel",
            box_mode="none", input_size=self.size, channels=1, mean=[0.5], std=[1.0 / 2048.0], pretrained=f"torchxrayvision {name}",
        )
        self.card = f"torchxrayvision weights `{name}` (https://github.com/mlmed/torchxrayvision); outputs: {', '.join(t or chr(39) * 2 for t in net.targets)}"

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:  # noqa: D102
        return torch.from_numpy(xrv_input(pixels, self.size))

    def view(self, width: int, height: int) -> FilmView:  # noqa: D102
        side = min(width, height)
        x0, y0 = width // 2 - side // 2, height // 2 - side // 2
        return FilmView(width, height, float(x0), float(y0), float(x0 + side), float(y0 + side))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.name.startswith("resnet"):
            m = self.net.model
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            return m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return self.net.features(x)

    def cam_logits(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.name.startswith("resnet"):
            m = self.net.model
            return m.fc(torch.flatten(m.avgpool(features), 1))
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.relu(features), (1, 1)).flatten(1)
        return self.net.classifier(pooled)
