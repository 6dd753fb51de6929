"""Model adapters: cxrdemo's own network and the classifiers people bring (timm, transformers, torchxrayvision).

See :mod:`cxrdemo.models.base` for the interface, :mod:`cxrdemo.models.loader` for how a source picks a format and
``docs/models.md`` for the user's view.
"""

from .base import AdapterBase, DeclaredPreprocessing
from .geometry import FilmView
from .labels import LabelMap, map_labels
from .loader import FORMATS, SourceSpec, build_adapter, detect_format, parse_source

__all__ = [
    "AdapterBase", "DeclaredPreprocessing", "FilmView", "LabelMap", "map_labels", "FORMATS", "SourceSpec",
    "build_adapter", "detect_format", "parse_source",
]
