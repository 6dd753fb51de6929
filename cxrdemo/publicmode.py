"""Public mode: the settings of a server that strangers can reach (a Hugging Face Space).

Public mode is on when ``CXRDEMO_PUBLIC`` is ``1``/``true``/``yes``/``on``, or when it is unset and ``SPACE_ID`` is set
(Hugging Face sets ``SPACE_ID`` on every Space); ``CXRDEMO_PUBLIC=0`` turns it off even on a Space. In public mode the
app accepts only named model sources (``CXRDEMO_MODELS``) and Hub ids, shows no server path, and caps what one
visitor can make the server do (see docs/security.md). This module is torch-free and reads the environment only
when asked (no module-level state), so tests can set the environment per call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The variable that forces public mode on (1) or off (0).
PUBLIC_ENV = "CXRDEMO_PUBLIC"
#: The variable Hugging Face sets on every Space.
SPACE_ENV = "SPACE_ID"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def is_public(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the server runs in public mode (see the module doc).

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    value = env.get(PUBLIC_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return bool(env.get(SPACE_ENV, "").strip())


def clip_text(text: object, limit: int = 80) -> str:
    """``text`` as a string cut to ``limit`` characters (with an ellipsis), for echoing user input in a message.

    Error messages must not send a visitor's megabyte of input back to them, nor grow the server's logs.
    """
    s = str(text)
    s = s.replace("\r", " ").replace("\n", " ")
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"
