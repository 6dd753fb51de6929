"""Hugging Face ZeroGPU: the app's GPU handlers under ``spaces.GPU``, and nothing changed anywhere else.

A Space on ZeroGPU hardware has no GPU of its own: it borrows one for each call of a function decorated with
``spaces.GPU(duration=...)`` (the ``spaces`` package, preinstalled there; ``SPACES_ZERO_GPU`` is set to ``true``).
``duration`` is the longest the call may hold the GPU, in seconds, or a function of the call's arguments that returns
it; a shorter duration gets a visitor a GPU sooner. ``spaces`` runs the decorated function in a forked worker
process and pickles its arguments and its result across.

:func:`on_gpu` wraps one handler. Without ``SPACES_ZERO_GPU`` (any machine but a ZeroGPU Space), or when ``spaces``
does not import, it returns the function itself, unchanged: nothing is imported, nothing wraps. On ZeroGPU:

- a handler that answers with a dict keyed by components (``{ui.status: ...}``) is given ``outputs``, the event's
  output list, and answers with a tuple in that order instead (components do not pickle: Gradio's blocks hold weak
  references), ``gr.skip()`` for the outputs it left alone; a generator handler stays a generator;
- the durations are :data:`CASE_SECONDS`, :data:`COMPARE_MODELS_SECONDS` and, for an audit, :func:`audit_seconds`
  of its own arguments (see docs/app.md, "ZeroGPU", for why these numbers).

This module only reads the environment when asked (no module state), so tests set it per call, and it imports
``spaces`` only on a ZeroGPU Space.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

LOG = logging.getLogger("cxrdemo.app")

#: The variable Hugging Face sets (to ``true``) on a ZeroGPU Space; ``spaces`` reads the same one.
ENV = "SPACES_ZERO_GPU"
#: One radiograph: a forward pass, the CAMs and four panels take 2 s on this project's 2-core CPU (docs/app.md,
#: "Answer times"); the rest is for a model's first load inside the call (a Hub download of up to the 500 MB cap).
#: Also ZeroGPU's own default.
CASE_SECONDS = 60
#: Two models on one radiograph (compare with model B): up to two first loads.
COMPARE_MODELS_SECONDS = 120
#: An audit: the fixed part (loads, statistics, report, zip) ...
AUDIT_BASE_SECONDS = 60
#: ... plus, per image and CAM method, the forward pass, CAMs and map metrics (0.12 s per image on the 2-core CPU in
#: the full evaluate runs of bench/RESULTS.md; a whole single-case answer with panels takes 0.91 s: docs/app.md),
AUDIT_IMAGE_SECONDS = 1.0
#: ... ROAD per image and method (its imputation runs on the CPU even beside a GPU: 12.3 and 16.5 s measured in the
#: two full runs of bench/RESULTS.md on the busy 2-core VM, about 8 s on the page),
AUDIT_ROAD_SECONDS = 17.0
#: ... and the randomization cascade per image and method (11 randomized steps: 2.4 and 3.0 s measured in the same
#: runs, on the CPU).
AUDIT_SANITY_SECONDS = 5.0
#: The longest an audit may ask for; the public caps (docs/security.md) keep a public audit well under it.
AUDIT_MAX_SECONDS = 1800
#: What an audit of "all" images (0) counts when the server has no cap (a private Space): ZeroGPU ends a call that
#: outlives its duration, so a private Space that audits more sets CXRDEMO_AUDIT_* caps or asks for a count.
AUDIT_ALL_IMAGES = 120

_TRUE = {"1", "t", "true"}  # the values ``spaces`` itself takes for true


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this is a ZeroGPU Space (``SPACES_ZERO_GPU`` is ``1``/``t``/``true``, as ``spaces`` reads it)."""
    env = os.environ if environ is None else environ
    return env.get(ENV, "").strip().lower() in _TRUE


def load_spaces(environ: Mapping[str, str] | None = None) -> ModuleType | None:
    """The ``spaces`` module on a ZeroGPU Space; ``None`` elsewhere, or when it does not import (logged once per
    call: the app then runs its handlers unwrapped, as on any other machine)."""
    if not requested(environ):
        return None
    try:
        return importlib.import_module("spaces")
    except Exception as exc:  # ImportError, or its own start-up checks failing
        LOG.warning("%s is set but the spaces package does not import (%s): GPU handlers run unwrapped", ENV, exc)
        return None


def on_gpu(
    fn: Callable[..., Any],
    duration: int | Callable[..., int],
    outputs: Sequence[Any] | None = None,
    spaces: ModuleType | None = None,
) -> Callable[..., Any]:
    """``fn`` under ``spaces.GPU(duration=duration)`` on a ZeroGPU Space; ``fn`` itself everywhere else.

    Args:
        fn: a Gradio handler that uses the model (and so CUDA on a GPU Space).
        duration: seconds, or a function of ``fn``'s arguments that returns them.
        outputs: the event's outputs when ``fn`` answers with a dict keyed by components (see the module doc).
        spaces: the ``spaces`` module (default: :func:`load_spaces`, which is ``None`` off ZeroGPU).
    """
    spaces = load_spaces() if spaces is None else spaces
    if spaces is None:
        return fn
    task = _as_tuples(fn, list(outputs)) if outputs is not None else fn
    return spaces.GPU(duration=duration)(task)


def _as_tuples(fn: Callable[..., Any], outputs: list[Any]) -> Callable[..., Any]:
    """``fn`` answering with a tuple in ``outputs`` order instead of a dict keyed by components."""

    def ordered(update: Any) -> Any:
        if not isinstance(update, dict):
            return update
        import gradio as gr

        return tuple(update.get(component, gr.skip()) for component in outputs)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            for update in fn(*args, **kwargs):
                yield ordered(update)

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return ordered(fn(*args, **kwargs))

    return call


def audit_seconds(
    dataset: Any = None,
    source: Any = None,
    device: Any = None,
    methods: Any = None,
    threshold: Any = None,
    max_images: Any = 0,
    faithfulness: Any = False,
    faithfulness_images: Any = 0,
    sanity: Any = False,
    sanity_images: Any = 0,
    *rest: Any,
    **kwargs: Any,
) -> int:
    """The GPU duration of one audit, from its own arguments (the audit page's and the ``audit`` endpoint's order):
    :data:`AUDIT_BASE_SECONDS` plus, per CAM method, the images times :data:`AUDIT_IMAGE_SECONDS`, the ROAD images
    times :data:`AUDIT_ROAD_SECONDS` and the sanity images times :data:`AUDIT_SANITY_SECONDS`, capped at
    :data:`AUDIT_MAX_SECONDS`. Counts are read as the server will cap them (0 = all = the public cap); a count that
    is not a number counts as the cap (the audit itself then refuses it in a second)."""
    from .audit_limits import AuditLimits, parse_count

    limits = AuditLimits.from_env()

    def count(value: Any, cap: int | None) -> int:
        try:
            n = parse_count(value, "count")
        except Exception:
            n = 0
        ceiling = cap if cap is not None else AUDIT_ALL_IMAGES
        return ceiling if n == 0 else min(n, ceiling)

    listed = methods.split(",") if isinstance(methods, str) else list(methods or ["gradcam"])
    n_methods = max(1, len([m for m in listed if str(m).strip()]))
    images = count(max_images, limits.images)
    road = min(count(faithfulness_images, limits.faithfulness_images), images) if faithfulness else 0
    cascade = min(count(sanity_images, limits.sanity_images), images) if sanity else 0
    per_method = images * AUDIT_IMAGE_SECONDS + road * AUDIT_ROAD_SECONDS + cascade * AUDIT_SANITY_SECONDS
    return int(min(AUDIT_MAX_SECONDS, math.ceil(AUDIT_BASE_SECONDS + n_methods * per_method)))
