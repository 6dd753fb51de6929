"""Numbers read from the environment, all through one checked parser (torch-free, no module state).

``CXRDEMO_MAX_UPLOAD_MB=nan`` once made the app fail at start-up with a traceback, and ``CXRDEMO_MAX_DICOM_MB=inf``
on every upload: :func:`env_number` refuses text, NaN, infinity, negative numbers (and zero, unless a minimum says
otherwise) and fractions where a whole number is needed, with one line naming the variable. The app reads every
one of its settings at start (:func:`cxrdemo.webapp.resources.check_settings`), so a bad value stops it with that
line before it serves anyone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .errors import InputError
from .publicmode import clip_text


def env_number(
    name: str,
    default: float,
    environ: Mapping[str, str] | None = None,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """The number in variable ``name`` (``default`` when unset or blank).

    Args:
        name: the variable, e.g. ``"CXRDEMO_MAX_UPLOAD_MB"``.
        default: the value when the variable is unset or blank.
        environ: the environment to read (default ``os.environ``).
        integer: the value must be a whole number (returned as an ``int``).
        minimum: the smallest value allowed (inclusive); ``None``: any number above 0.
        maximum: the largest value allowed (inclusive), or ``None``.

    Raises:
        InputError: text, NaN, infinity or a value out of range: one line naming the variable and what to set.
    """
    env = os.environ if environ is None else environ
    raw = str(env.get(name, "") or "").strip()
    if not raw:
        return default
    kind = "a whole number" if integer else "a number"
    if minimum is None:
        wanted = f"{'a whole number of 1 or more' if integer else 'a positive number'}"
    elif maximum is None:
        wanted = f"{kind} of at least {minimum:g}"
    else:
        wanted = f"{kind} in {minimum:g}..{maximum:g}"
    problem = f"{name}={clip_text(raw, 40)!r} is not {wanted}; set it to one (e.g. {default:g}) or unset it for the default"
    try:
        value = float(raw)
    except ValueError:
        raise InputError(problem) from None
    if not math.isfinite(value) or (integer and not value.is_integer()):
        raise InputError(problem)
    if (value <= 0 if minimum is None else value < minimum) or (maximum is not None and value > maximum):
        raise InputError(problem)
    return int(value) if integer else value
