"""A foreign model's output labels mapped onto the NIH ChestX-ray14 names, through the shared vocabulary.

The table of names is :mod:`cxrdemo.datasets.vocabulary`, shared with the data-set readers: matching ignores case
and treats ``_``, ``-`` and spaces alike, and the synonyms of NIH, CheXpert, VinDr, ChestX-Det, RSNA and
torchxrayvision are mapped (``Pleural Effusion`` -> ``Effusion``, ``Infiltrate`` -> ``Infiltration``, ``Pleural
Thickening`` -> ``Pleural_Thickening``). A label with no NIH match (``No Finding``, ``Lung Opacity``,
torchxrayvision's untrained ``''`` outputs) or meaning two NIH classes (``Nodule/Mass``) keeps its own name, is
shown, and is never scored against NIH's labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..datasets.nih import NIH_CLASSES
from ..datasets.vocabulary import SYNONYMS as _VOCABULARY
from ..datasets.vocabulary import label_key, nih_name

#: The shared vocabulary's synonyms that name one NIH class (normalised key -> NIH name); kept for importers.
SYNONYMS: dict[str, str] = {k: v[0] for k, v in _VOCABULARY.items() if len(v) == 1 and v[0] in NIH_CLASSES}


@dataclass(frozen=True)
class LabelMap:
    """Output index -> the model's own label, the NIH name it maps to, and the name shown.

    Attributes:
        model_labels: the model's own labels in output order (``''`` for torchxrayvision's untrained outputs).
        nih: per output, the NIH class it maps to, or ``None`` (shown, never scored).
        shown: per output, the name used everywhere downstream: the NIH name when mapped, else the model's own
            (``output 3`` for an empty one); distinct.
    """

    model_labels: tuple[str, ...]
    nih: tuple[str | None, ...]
    shown: tuple[str, ...]

    @property
    def scored(self) -> list[str]:
        """The shown names that are NIH classes (scored against NIH labels)."""
        return [s for s, n in zip(self.shown, self.nih) if n is not None]

    @property
    def unscored(self) -> list[str]:
        """The shown names with no NIH match."""
        return [s for s, n in zip(self.shown, self.nih) if n is None]

    def model_label(self, shown: str) -> str:
        """The model's own label of a shown name (itself when unknown)."""
        return dict(zip(self.shown, self.model_labels)).get(shown, shown)


def map_labels(labels: Sequence[str]) -> LabelMap:
    """Map ``labels`` (model output order) onto NIH names; the first output claiming an NIH name gets it."""
    own = tuple("" if label is None else str(label) for label in labels)
    nih: list[str | None] = []
    shown: list[str] = []
    for i, label in enumerate(own):
        name = nih_name(label) if label.strip() else None
        if name is not None and name in nih:
            name = None  # two outputs for one NIH class: only the first is scored
        nih.append(name)
        text = name or (label.strip() or f"output {i}")
        while text in shown:
            text = f"{text} ({i})"
        shown.append(text)
    return LabelMap(own, tuple(nih), tuple(shown))
