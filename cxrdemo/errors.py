"""Typed errors. Every message is one line: what was wrong and what to do.

The CLI prints ``error: <message>`` and the app shows the message; neither shows a traceback.
"""

from __future__ import annotations


class CxrDemoError(Exception):
    """Base class of every error cxrdemo raises on purpose; ``str(err)`` is a one-line message for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ImageError(CxrDemoError):
    """The file is not a radiograph cxrdemo can read (corrupt, unsupported, too large, empty...)."""


class ConfigError(CxrDemoError):
    """A model's config.json is missing, malformed or inconsistent with its weights."""


class WeightsError(CxrDemoError):
    """Weights cannot be found, fetched, verified or loaded."""


class BoxError(CxrDemoError):
    """A box is malformed (wrong order, zero area, outside the image, unknown class)."""


class InputError(CxrDemoError):
    """Any other bad argument from a user (unknown class, CAM method, device, threshold...)."""
