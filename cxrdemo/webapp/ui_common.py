"""What every Gradio handler of the app shares (this module and the ``ui_*`` modules are the only ones of
:mod:`cxrdemo.webapp` that import Gradio; ``app.py`` and they lay out and wire components, the rest is logic).

- :func:`guarded` (:func:`guarded_stream` for generators): every failure of a handler becomes one ``gr.Error``
  line (the page keeps its inputs);
- :func:`progress_reporter`: ``gr.Progress`` as the package's ``progress(fraction, message)``;
- :func:`owner`: the browser (or API client) session a handler serves, for the audit line;
- :func:`source_field`: a model-source field (a text box; on a public server, a list of the server's models that
  also takes a typed Hub id);
- :func:`checked_number`: a number field whose non-numbers (text, ``None``, NaN through the API) reach the handler,
  whose check answers them with the app's one-line error instead of Gradio's generic "upstream Gradio app has
  raised an exception".
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from typing import Any, Callable, Iterator

import gradio as gr

from ..errors import CxrDemoError
from ..publicmode import is_public
from .state import Progress
from .view import describe_error

LOG = logging.getLogger("cxrdemo.app")


def checked_number(*args: Any, **kwargs: Any) -> gr.Number:
    """A ``gr.Number`` (same page control, same API type) that hands anything but a finite number within its range
    to the handler as sent: ``gr.Number.preprocess`` fails on ``"abc"``, NaN or infinity (``round``/``int``) and
    answers a value under its minimum in Gradio's words, before the handler could check it. Every handler that
    takes one checks the value (:func:`cxrdemo.cams.check_threshold`, :func:`cxrdemo.webapp.audit_limits.parse_count`).

    An instance with its ``preprocess`` wrapped, not a subclass: Gradio writes a ``.pyi`` stub beside the module of
    every ``Component`` subclass when the class is defined.
    """
    field = gr.Number(*args, **kwargs)
    numeric = field.preprocess

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
            return payload
        if (field.minimum is not None and payload < field.minimum) or (field.maximum is not None and payload > field.maximum):
            return payload  # out of the field's range: the handler's check says so in the app's words
        return numeric(payload)

    field.preprocess = preprocess  # type: ignore[method-assign]
    return field


@contextlib.contextmanager
def one_line_errors(name: str) -> Iterator[None]:
    """Inside: a :class:`CxrDemoError` becomes a one-line ``gr.Error`` ("Cannot do that"), any other exception is a
    bug whose traceback goes to the log while the visitor reads one line; ``gr.Error`` passes through, and so does
    ``GeneratorExit`` (a cancelled stream), which is no ``Exception``."""
    try:
        yield
    except gr.Error:
        raise
    except CxrDemoError as exc:
        raise gr.Error(describe_error(exc), title="Cannot do that", print_exception=False) from None
    except Exception as exc:  # a bug: log the traceback, show one line
        LOG.exception("handler %s failed", name)
        raise gr.Error(describe_error(exc), title="Unexpected error", print_exception=False) from None


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure of a handler into a one-line ``gr.Error`` (the page keeps its inputs, the server runs on)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_line_errors(fn.__name__):
            return fn(*args, **kwargs)

    return wrapper


def guarded_stream(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`guarded` for a generator handler (it stays a generator function, so Gradio streams it and closes it
    when the client cancels: ``yield from`` hands the close to ``fn``'s generator)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_line_errors(fn.__name__):
            yield from fn(*args, **kwargs)

    return wrapper


def progress_reporter(progress: gr.Progress) -> Progress:
    """Adapt ``gr.Progress`` to the package's ``progress(fraction, message)``."""
    return lambda fraction, message: progress(fraction, desc=message)


def owner(request: gr.Request | None) -> str:
    """The session a request comes from (one audit per session at a time)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return str(session or "anonymous")


#: What a public server's model fields say under their label.
PUBLIC_SOURCE_INFO = "a model of this server, or a Hugging Face Hub id owner/name or owner/name@revision"


def source_field(
    value: str, label: str, elem_id: str, placeholder: str, info: str | None = None, scale: int | None = None, max_lines: int = 1
) -> gr.Textbox | gr.Dropdown:
    """A model-source field: a text box (a folder, a Hub id, empty for the default); on a public server a dropdown of
    the server's named models (``default`` and ``CXRDEMO_MODELS``) that also takes a typed Hub id (anything else
    typed is refused by :func:`cxrdemo.webapp.sources.check_source`)."""
    if not is_public():
        return gr.Textbox(value, label=label, elem_id=elem_id, placeholder=placeholder, info=info, scale=scale, max_lines=max_lines)
    from .sources import DEFAULT_NAME, source_choices

    choices = source_choices()
    start = value if value in choices else DEFAULT_NAME
    return gr.Dropdown(choices, value=start, label=label, elem_id=elem_id, allow_custom_value=True, scale=scale,
                       info=f"{info} Model: {PUBLIC_SOURCE_INFO}." if info else PUBLIC_SOURCE_INFO)
