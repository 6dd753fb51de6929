"""Model configuration: everything that defines a model, saved as ``config.json`` beside its weights.

A :class:`ModelConfig` travels with the weights (timm's habit): architecture, classes, box classes, input size,
channels, normalisation, per-class decision thresholds and the per-class "prior box" (the mean training box, the
baseline a box head must beat). Loading a folder never guesses any of these.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..datasets.nih import NIH_BOX_CLASSES, NIH_CLASSES

#: ImageNet statistics, the normalisation of every ImageNet-initialised backbone in the registry.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1

#: What to do about a bad config.json (every ConfigError of this module ends with it).
FIX = "use the config.json saved with these weights"

#: Bounds of every size a config.json sets, checked before anything is allocated (a config read from a stranger's
#: folder must not make the server build a 17 GB layer). Each is far above what a chest X-ray model needs: NIH has 14
#: classes and 8 box classes, CLN's box head is 512-256-128, ImageNet heads have 1000 classes.
MAX_CLASSES = 1000
MAX_BOX_LAYERS = 8
MAX_BOX_WIDTH = 4096
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 2000
#: config.json files larger than this are refused before they are read (a cxrdemo config is a few KB).
MAX_CONFIG_BYTES = 1 << 20

CLASS_MODES = ("multilabel", "softmax")
BOX_MODES = ("per_class", "single", "none", "detections")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and read its outputs.

    Attributes:
        architecture: backbone name in :mod:`cxrdemo.models.backbones` (e.g. ``"mobilenet_v3_small"``).
        classes: output labels of the classification head, in head order.
        box_classes: labels that own a box (``box_mode="per_class"``); a subset of ``classes``.
        class_mode: ``"multilabel"`` (sigmoid per class) or ``"softmax"`` (CLN's single-label head).
        box_mode: ``"per_class"`` (one box per box class), ``"single"`` (CLN's one box per image), ``"detections"``
            (an object detector's scored boxes, :mod:`cxrdemo.models.detector_base`) or ``"none"``
            (a foreign classifier without a box head, :mod:`cxrdemo.models`).
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
        """Raise :class:`ConfigError` with a one-line reason (what is wrong; what to do) when the config is wrong.

        Types first (a string ``mean`` of 3 characters would otherwise pass a length check and fail at the first
        image), then values. The only home of config checks: loading a folder relies on it.
        """
        problem = _type_problem(self) or _value_problem(self)
        if problem:
            raise ConfigError(f"config.json: {problem}; {FIX}")

    # ---------------------------------------------------------------- derived
    @property
    def num_boxes(self) -> int:
        """Number of boxes the box head predicts."""
        if self.box_mode in ("none", "detections"):
            return 0
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
            raise ConfigError(f"config.json must hold a JSON object; {FIX}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"config.json: unknown keys {unknown}; is this a cxrdemo model folder?")
        if "architecture" not in data:
            raise ConfigError(f"config.json: missing 'architecture'; {FIX}")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"config.json: 'format_version' must be an integer; {FIX}")
        if version > FORMAT_VERSION:
            raise ConfigError(f"config.json: format_version {version} is newer than this cxrdemo; upgrade cxrdemo")
        try:
            return cls(**data)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            text = " ".join(str(exc).split())[:120] or exc.__class__.__name__
            raise ConfigError(f"config.json has a value of the wrong type ({text}); {FIX}") from None

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
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config.json in {path.parent} has {size} bytes, more than the {MAX_CONFIG_BYTES} a model config may have; {FIX}"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise ConfigError(f"config.json in {path.parent} is nested too deeply to be a model config; {FIX}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.__class__.__name__}: {exc}); fix or re-export the model") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config.json", f"config.json in {path.parent}", 1)) from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_names(values: object, allow_empty: bool = False) -> bool:
    return isinstance(values, list) and all(isinstance(c, str) and c for c in values) and (allow_empty or bool(values))


def _type_problem(c: ModelConfig) -> str | None:
    """The first field of the wrong type, as a one-line phrase, or None."""
    checks = (
        (isinstance(c.architecture, str) and bool(c.architecture), "'architecture' must be a backbone name"),
        (isinstance(c.format_version, int) and not isinstance(c.format_version, bool), "'format_version' must be an integer"),
        (_is_names(c.classes) and _is_names(c.box_classes, allow_empty=True), "'classes' and 'box_classes' must be lists of names"),
        (isinstance(c.input_size, int) and not isinstance(c.input_size, bool), "'input_size' must be an integer"),
        (isinstance(c.channels, int) and not isinstance(c.channels, bool), "'channels' must be an integer"),
        (isinstance(c.class_mode, str) and isinstance(c.box_mode, str), "'class_mode' and 'box_mode' must be strings"),
        (isinstance(c.pretrained, str), "'pretrained' must be a string"),
        (isinstance(c.extra, dict), "'extra' must be a JSON object"),
        (isinstance(c.mean, list) and all(_is_number(v) for v in c.mean), "'mean' must be a list of numbers"),
        (isinstance(c.std, list) and all(_is_number(v) for v in c.std), "'std' must be a list of numbers"),
        (
            isinstance(c.box_hidden, list)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in c.box_hidden),
            "'box_hidden' must be a list of positive layer widths",
        ),
        (_is_number(c.dropout) and 0.0 <= c.dropout < 1.0, "'dropout' must be a number in [0, 1)"),
        (
            isinstance(c.thresholds, dict) and all(_is_number(v) for v in c.thresholds.values()),
            "'thresholds' must map class names to numbers",
        ),
        (
            isinstance(c.prior_boxes, dict)
            and all(isinstance(b, list) and all(_is_number(v) for v in b) for b in c.prior_boxes.values()),
            "'prior_boxes' must map class names to [x1, y1, x2, y2]",
        ),
    )
    return next((message for ok, message in checks if not ok), None)


def _size_problem(c: ModelConfig) -> str | None:
    """The first size out of its bound (see :data:`MAX_CLASSES`...), as a one-line phrase, or None (types are right).

    Checked before any other value, so that no later check (nor the model build) walks a huge list.
    """
    if len(c.architecture) > MAX_NAME_CHARS:
        return f"'architecture' is longer than {MAX_NAME_CHARS} characters"
    if len(c.classes) > MAX_CLASSES or len(c.box_classes) > MAX_CLASSES:
        return f"'classes' and 'box_classes' may hold at most {MAX_CLASSES} labels, not {max(len(c.classes), len(c.box_classes))}"
    if any(len(label) > MAX_NAME_CHARS for label in (*c.classes, *c.box_classes)):
        return f"class labels must be at most {MAX_NAME_CHARS} characters"
    if len(c.thresholds) > MAX_CLASSES or len(c.prior_boxes) > MAX_CLASSES:
        return f"'thresholds' and 'prior_boxes' may name at most {MAX_CLASSES} classes"
    if len(c.box_hidden) > MAX_BOX_LAYERS or any(v > MAX_BOX_WIDTH for v in c.box_hidden):
        return f"'box_hidden' may have at most {MAX_BOX_LAYERS} layers of at most {MAX_BOX_WIDTH} units, not {_clip_list(c.box_hidden)}"
    if len(c.mean) > 3 or len(c.std) > 3:
        return "'mean' and 'std' need one value per input channel (1 or 3)"
    if len(c.pretrained) > MAX_TEXT_CHARS:
        return f"'pretrained' is longer than {MAX_TEXT_CHARS} characters"
    return None


def _clip_list(values: list[int], shown: int = 4) -> str:
    """``[65536, 65536, 65536]``, or the first ``shown`` values and the count, for a one-line message."""
    head = ", ".join(str(v) for v in values[:shown])
    return f"[{head}]" if len(values) <= shown else f"[{head}, ... {len(values)} layers]"


def _value_problem(c: ModelConfig) -> str | None:
    """The first inconsistent value, as a one-line phrase, or None (types are known to be right)."""
    size = _size_problem(c)
    if size:
        return size
    if len(set(c.classes)) != len(c.classes):
        return "'classes' must be distinct labels"
    if c.class_mode not in CLASS_MODES:
        return f"'class_mode' must be one of {CLASS_MODES}, not {c.class_mode!r}"
    if c.box_mode not in BOX_MODES:
        return f"'box_mode' must be one of {BOX_MODES}, not {c.box_mode!r}"
    unknown = [b for b in c.box_classes if b not in c.classes]
    if unknown:
        return f"box classes {unknown} are not among 'classes'"
    if c.box_mode == "per_class" and not c.box_classes:
        return "box_mode 'per_class' needs at least one box class"
    if not 32 <= c.input_size <= 2048:
        return f"'input_size' must be an integer in 32..2048, not {c.input_size!r}"
    if c.channels not in (1, 3):
        return f"'channels' must be 1 or 3, not {c.channels!r}"
    if len(c.mean) != c.channels or len(c.std) != c.channels:
        return "'mean' and 'std' need one value per input channel"
    if any(s <= 0 for s in c.std):
        return "'std' values must be positive"
    for label, t in c.thresholds.items():
        if label not in c.classes or not 0.0 <= float(t) <= 1.0:
            return f"threshold for {label!r} must name a class and lie in [0, 1]"
    for label, box in c.prior_boxes.items():
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            return f"prior box for {label!r} must be normalised [x1, y1, x2, y2]"
    return None
