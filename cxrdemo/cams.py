"""The CAM vocabulary, without torch: method names, how people write them, box thresholds, and what was asked.

The CLI's ``--help``, the app's controls, the renderer's captions and the review CSV need these words, not the
network; :mod:`cxrdemo.explain` maps each name to its pytorch-grad-cam class and does the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .datasets.nih import TOP1, is_top1
from .publicmode import clip_text

#: Method name -> how people write it (controls, captions), in the order the controls list them.
CAM_METHOD_NAMES: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGrad-CAM",
}
#: The method names, the keys of :data:`CAM_METHOD_NAMES`.
CAM_METHOD_KEYS: tuple[str, ...] = tuple(CAM_METHOD_NAMES)
#: Methods whose map does not depend on the target class (the first principal component of the activations):
#: labelling their map with a class misleads, so captions say "class-agnostic".
CLASS_AGNOSTIC_METHODS: frozenset[str] = frozenset({"eigencam"})
#: CAM box thresholds studied by CLN (pixel values in [T, 255] of the map scaled to 0..255).
CAM_THRESHOLDS = (127, 180)
DEFAULT_CAM_THRESHOLD = 127
DEFAULT_CAM_METHOD = "gradcam"


def check_method(method: str) -> str:
    """Normalise a CAM method name (``Grad-CAM++``, ``gradcam_pp``...); :class:`InputError` listing the choices."""
    key = str(method).strip().lower().replace("_", "").replace(" ", "").replace("-", "")
    key = {"gradcamplusplus": "gradcam++", "gradcampp": "gradcam++"}.get(key, key)
    if key not in CAM_METHOD_NAMES:
        raise InputError(f"unknown CAM method {clip_text(method)!r}; choose one of {', '.join(CAM_METHOD_KEYS)}")
    return key


def check_threshold(threshold: int | float | str) -> int:
    """A CAM threshold as an int in 1..254 (so the box is never the whole image or nothing by construction)."""
    try:
        value = int(round(float(threshold)))
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"CAM threshold {clip_text(repr(threshold))} is not a finite number; use 1..254 (CLN uses 127 or 180)") from None
    if not 1 <= value <= 254:
        # ``g``: 1e308 is echoed as "1e+308", never as its 309 digits (clip_text cuts anything else to 80 characters)
        shown = f"{value}" if abs(value) < 10**15 else f"{float(threshold):g}"
        raise InputError(f"CAM threshold {clip_text(shown)} is outside 1..254; CLN uses 127 or 180")
    return value


def method_name(method: str) -> str:
    """How people write ``method`` (``gradcam++`` -> ``Grad-CAM++``); unknown names are returned as they are."""
    return CAM_METHOD_NAMES.get(method, method)


def is_class_agnostic(method: str) -> bool:
    """True when ``method``'s map ignores the target class (see :data:`CLASS_AGNOSTIC_METHODS`)."""
    return method in CLASS_AGNOSTIC_METHODS


@dataclass(frozen=True)
class CamRequest:
    """What the user asked the CAM for: method, target class (``None`` = top-1) and box threshold.

    Build it with :meth:`of`, which checks and normalises raw values; a constructed request is always valid.
    """

    method: str = DEFAULT_CAM_METHOD
    target: str | None = None
    threshold: int = DEFAULT_CAM_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", check_method(self.method))
        object.__setattr__(self, "threshold", check_threshold(self.threshold))
        object.__setattr__(self, "target", None if is_top1(self.target) else str(self.target).strip())

    @classmethod
    def of(
        cls,
        method: str | None = None,
        target: str | None = None,
        threshold: int | float | str | None = None,
    ) -> "CamRequest":
        """A request from raw control or flag values (``None``/empty -> the defaults; ``top-1`` -> ``None``)."""
        return cls(
            method=method or DEFAULT_CAM_METHOD,
            target=target,
            threshold=DEFAULT_CAM_THRESHOLD if threshold in (None, "") else threshold,  # type: ignore[arg-type]
        )

    @property
    def target_text(self) -> str:
        """The target as a control shows it (``top-1`` when ``None``)."""
        return self.target or TOP1
