"""Model configuration: everything that defines a model, saved as ``config.json`` beside its weights.

A :class:`ModelConfig` travels with the weights (timm's habit): architecture, classes, box classes, input size,
channels, normalisation, per-class decision thresholds and the per-class "prior box" (the mean training box, the
baseline a box head must beat). Loading a folder never guesses any of these.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .nih import NIH_BOX_CLASSES, NIH_CLASSES

#: ImageNet statistics, the normalisation of every ImageNet-initialised backbone in the registry.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1

CLASS_MODES = ("multilabel", "softmax")
BOX_MODES = ("per_class", "single")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and read its outputs.

    Attributes:
        architecture: backbone name in :mod:`cxrdemo.backbones` (e.g. ``"mobilenet_v3_small"``).
        classes: output labels of the classification head, in head order.
        box_classes: labels that own a box (``box_mode="per_class"``); a subset of ``classes``.
        class_mode: ``"multilabel"`` (sigmoid per class) or ``"softmax"`` (CLN's single-label head).
        box_mode: ``"per_class"`` (one box per box class) or ``"single"`` (CLN's one box per image).
        input_size: side of the square model input in pixels.
        channels: 1 or 3 input channels (grayscale radiographs are repeated to 3 for ImageNet backbones).
        mean, std: per-channel normalisation applied after scaling pixels to [0, 1].
        box_hidden: widths of the box-regression MLP (CLN: 512, 256, 128).
        dropout: dropout before the classification head.
        thresholds: per-class decision threshold on the probability (chosen on validation); 0.5 if absent.
        prior_boxes: per box class, the mean training box as normalised ``[x1, y1, x2, y2]``.
        pretrained: where the starting weights came from (free text, for the model card).
        extra: free-form metadata (training command, seed, metrics); never needed to run the model.
    """

    architecture: str = "mobilenet_v3_small"
    classes: list[str] = field(default_factory=lambda: list(NIH_CLASSES))
    box_classes: list[str] = field(default_factory=lambda: list(NIH_BOX_CLASSES))
    class_mode: str = "multilabel"
    box_mode: str = "per_class"
    input_size: int = 224
    channels: int = 3
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    box_hidden: list[int] = field(default_factory=lambda: [512, 256, 128])
    dropout: float = 0.2
    thresholds: dict[str, float] = field(default_factory=dict)
    prior_boxes: dict[str, list[float]] = field(default_factory=dict)
    pretrained: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`ConfigError` with a one-line reason when the config is inconsistent."""
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ConfigError("config.json: 'architecture' must be a backbone name")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ConfigError("config.json: 'classes' must be a non-empty list of distinct labels")
        if self.class_mode not in CLASS_MODES:
            raise ConfigError(f"config.json: 'class_mode' must be one of {CLASS_MODES}, not {self.class_mode!r}")
        if self.box_mode not in BOX_MODES:
            raise ConfigError(f"config.json: 'box_mode' must be one of {BOX_MODES}, not {self.box_mode!r}")
        unknown = [c for c in self.box_classes if c not in self.classes]
        if unknown:
            raise ConfigError(f"config.json: box classes {unknown} are not among 'classes'")
        if self.box_mode == "per_class" and not self.box_classes:
            raise ConfigError("config.json: box_mode 'per_class' needs at least one box class")
        if not isinstance(self.input_size, int) or not 32 <= self.input_size <= 2048:
            raise ConfigError(f"config.json: 'input_size' must be an integer in 32..2048, not {self.input_size!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"config.json: 'channels' must be 1 or 3, not {self.channels!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ConfigError("config.json: 'mean' and 'std' need one value per input channel")
        if any(s <= 0 for s in self.std):
            raise ConfigError("config.json: 'std' values must be positive")
        for label, t in self.thresholds.items():
            if label not in self.classes or not 0.0 <= float(t) <= 1.0:
                raise ConfigError(f"config.json: threshold for {label!r} must name a class and lie in [0, 1]")
        for label, box in self.prior_boxes.items():
            if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                raise ConfigError(f"config.json: prior box for {label!r} must be normalised [x1, y1, x2, y2]")

    # ---------------------------------------------------------------- derived
    @property
    def num_boxes(self) -> int:
        """Number of boxes the box head predicts."""
        return len(self.box_classes) if self.box_mode == "per_class" else 1

    def threshold(self, label: str) -> float:
        """Decision threshold for ``label`` (0.5 when none was chosen)."""
        return float(self.thresholds.get(label, 0.5))

    # ------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of the config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build a config from a dictionary, refusing unknown keys and wrong types with one line."""
        if not isinstance(data, dict):
            raise ConfigError("config.json must hold a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"config.json: unknown keys {unknown}; is this a cxrdemo model folder?")
        if "architecture" not in data:
            raise ConfigError("config.json: missing 'architecture'")
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ConfigError(f"config.json: format_version {version} is newer than this cxrdemo; upgrade cxrdemo")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config.json: {exc}") from None

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` into ``folder`` and return its path."""
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder_or_file: str | Path) -> "ModelConfig":
        """Read ``config.json`` from a folder (or the file itself)."""
        path = Path(folder_or_file)
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"no config.json in {path.parent}; a model folder needs config.json beside model.safetensors")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.__class__.__name__}: {exc}); fix or re-export the model") from None
        return cls.from_dict(data)
