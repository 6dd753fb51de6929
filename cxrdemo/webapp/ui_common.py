"""What every Gradio handler of the app shares (this module and the ``ui_*`` modules are the only ones of
:mod:`cxrdemo.webapp` that import Gradio; ``app.py`` and they lay out and wire components, the rest is logic).

- :func:`guarded` (:func:`guarded_stream` for generators): every failure of a handler becomes one ``gr.Error``
  line (the page keeps its inputs);
- :func:`progress_reporter`: ``gr.Progress`` as the package's ``report(fraction, message)``;
- :func:`owner`: the browser (or API client) session a handler serves, for the audit line.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import gradio as gr

from ..errors import CxrDemoError
from .state import Progress
from .view import describe_error

LOG = logging.getLogger("cxrdemo.app")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure of a handler into a one-line ``gr.Error`` (the page keeps its inputs, the server runs on)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CxrDemoError as exc:
            raise gr.Error(describe_error(exc), title="Cannot do that", print_exception=False) from None
        except Exception as exc:  # a bug: log the traceback, show one line
            LOG.exception("handler %s failed", fn.__name__)
            raise gr.Error(describe_error(exc), title="Unexpected error", print_exception=False) from None

    return wrapper


def guarded_stream(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`guarded` for a generator handler (it stays a generator function, so Gradio streams it and closes it
    when the client cancels: ``yield from`` hands the close to ``fn``'s generator)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except gr.Error:
            raise
        except CxrDemoError as exc:
            raise gr.Error(describe_error(exc), title="Cannot do that", print_exception=False) from None
        except Exception as exc:  # a bug: log the traceback, show one line
            LOG.exception("handler %s failed", fn.__name__)
            raise gr.Error(describe_error(exc), title="Unexpected error", print_exception=False) from None

    return wrapper


def progress_reporter(progress: gr.Progress) -> Progress:
    """Adapt ``gr.Progress`` to the package's ``report(fraction, message)``."""
    return lambda fraction, message: progress(fraction, desc=message)


def owner(request: gr.Request | None) -> str:
    """The session a request comes from (one audit per session at a time)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return str(session or "anonymous")
