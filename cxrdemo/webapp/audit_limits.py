"""What one visitor may ask of the audit slot: numbers checked, and in public mode capped.

The audit page and the ``audit`` API endpoint both go through :func:`check_request` (called by
:meth:`.audit_runs.AuditService.options`), so a client that skips the page meets the same rules:

- every count (images, ROAD images, sanity images) must be a whole number >= 0; text, NaN, infinity, fractions and
  negatives are refused with one line;
- in public mode (:func:`cxrdemo.publicmode.is_public`) the counts are capped (0, "all", means the cap) and so is
  the number of CAM methods. A count above its cap is clamped to it and a note says so; too many methods are
  refused (which ones to drop is the visitor's choice, not the server's).

The caps come from the environment, read when asked (no module state): ``CXRDEMO_AUDIT_MAX_IMAGES`` (default
60), ``CXRDEMO_AUDIT_MAX_ROAD_IMAGES`` (32), ``CXRDEMO_AUDIT_MAX_SANITY_IMAGES`` (4), ``CXRDEMO_AUDIT_MAX_METHODS``
(2). On a 2-core CPU the defaults bound one audit to a few minutes (see docs/audit-verdicts.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..publicmode import clip_text, is_public

if TYPE_CHECKING:
    from .audit_runs import AuditRequest

#: ``(variable, default)`` of each cap.
CAP_VARIABLES: dict[str, tuple[str, int]] = {
    "images": ("CXRDEMO_AUDIT_MAX_IMAGES", 60),
    "faithfulness_images": ("CXRDEMO_AUDIT_MAX_ROAD_IMAGES", 32),
    "sanity_images": ("CXRDEMO_AUDIT_MAX_SANITY_IMAGES", 4),
    "methods": ("CXRDEMO_AUDIT_MAX_METHODS", 2),
}


#: The ROAD images an audit asks for unless told otherwise (the page's field and the endpoint): ROAD costs about 8 s
#: per image and CAM method on a busy 2-core CPU (docs/audit.md), so 8 images finish in about a minute per method.
DEFAULT_ROAD_IMAGES = 8
#: The sanity images an audit asks for unless told otherwise.
DEFAULT_SANITY_IMAGES = 4


@dataclass(frozen=True)
class AuditLimits:
    """The caps of one server (``None``: no cap, the private default)."""

    images: int | None = None
    faithfulness_images: int | None = None
    sanity_images: int | None = None
    methods: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AuditLimits":
        """The caps in public mode (from the variables, or their defaults); no caps otherwise.

        Raises:
            InputError: a cap variable that is not a whole number >= 1.
        """
        env = os.environ if environ is None else environ
        if not is_public(env):
            return cls()
        from ..envnumbers import env_number

        caps = {key: int(env_number(variable, default, env, integer=True, minimum=1)) for key, (variable, default) in CAP_VARIABLES.items()}
        return cls(**caps)


def field_limits(limits: AuditLimits) -> dict[str, tuple[int, int | None]]:
    """``(default, maximum)`` of each count field of the audit page under ``limits``: a default never above its cap,
    and the cap as the field's maximum (``None``: no cap). ``max_images``' default is 0 (all; the cap on a public
    server)."""
    road, sanity = DEFAULT_ROAD_IMAGES, DEFAULT_SANITY_IMAGES
    if limits.faithfulness_images is not None:
        road = min(road, limits.faithfulness_images)
    if limits.sanity_images is not None:
        sanity = min(sanity, limits.sanity_images)
    return {
        "max_images": (0, limits.images),
        "faithfulness_images": (road, limits.faithfulness_images),
        "sanity_images": (sanity, limits.sanity_images),
    }


def parse_count(value: Any, what: str) -> int:
    """``value`` as a whole number >= 0 (an int, an integral float such as ``8.0``, or digits as text).

    Raises:
        InputError: text, NaN, infinity, a fraction, a negative number, or a boolean (one line naming ``what``).
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, not {value}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number: float | int = int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise InputError(f"{what} {clip_text(text)!r} is not a number; give a whole number of 0 or more") from None
    elif isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(value)  # numpy numbers
        except (TypeError, ValueError):
            raise InputError(f"{what} {clip_text(value)!r} is not a number; give a whole number of 0 or more") from None
    if isinstance(number, float):
        if not math.isfinite(number):
            raise InputError(f"{what} {number} is not a finite number; give a whole number of 0 or more")
        if not number.is_integer():
            raise InputError(f"{what} {number:g} is not a whole number; give a whole number of 0 or more")
        number = int(number)
    if number < 0:
        raise InputError(f"{what} {number} must be 0 or more")
    return int(number)


def _capped(value: int, cap: int | None, what: str, zero_means: str) -> tuple[int, str | None]:
    """``value`` under ``cap`` (0 means "all", i.e. the cap) and a note when it was lowered."""
    if cap is None:
        return value, None
    if value == 0:
        return cap, f"{what}: {zero_means} is capped on this server at {cap}"
    if value > cap:
        shown = f"{value:.3g}" if value >= 10**6 else str(value)
        return cap, f"{what}: {shown} asked, this server's limit is {cap}"
    return value, None


def check_request(request: "AuditRequest", limits: AuditLimits) -> tuple["AuditRequest", list[str]]:
    """``request`` with its counts parsed (and capped by ``limits``), and a one-line note per cap applied.

    Raises:
        InputError: a count that is not a whole number >= 0, or more CAM methods than ``limits.methods``.
    """
    notes: list[str] = []
    counts = {}
    for field_name, what, zero in (("max_images", "images", "every image"), ("faithfulness_images", "ROAD images", "every image"),
                                   ("sanity_images", "sanity images", "every image")):  # fmt: skip
        value = parse_count(getattr(request, field_name), what)
        cap = limits.images if field_name == "max_images" else getattr(limits, field_name)
        value, note = _capped(value, cap, what, zero)
        counts[field_name] = value
        if note and (field_name == "max_images" or getattr(request, field_name.split("_")[0], False)):
            notes.append(note)
    methods = request.methods
    listed = [m for m in (methods.split(",") if isinstance(methods, str) else list(methods or [])) if str(m).strip()]
    if limits.methods is not None and len(dict.fromkeys(str(m).strip().lower() for m in listed)) > limits.methods:
        raise InputError(f"{len(listed)} CAM methods asked; this server runs at most {limits.methods} per audit: pick fewer")
    return replace(request, methods=listed, **counts), notes
