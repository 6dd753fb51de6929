"""One vocabulary for findings, shared by models and data sets: each name a model or a data set uses, mapped to
the canonical finding(s) it means.

The canonical names are NIH ChestX-ray14's 14 findings where NIH has the finding (so NIH-trained models keep their
names), else the name CheXpert, VinDr-CXR or torchxrayvision use. The table covers the vocabularies of NIH
ChestX-ray14, CheXpert / MIMIC-CXR (14 labels), CheXlocalize (10 tasks), VinDr-CXR (22 local + 6 global labels),
ChestX-Det (13 classes) / ChestX-Det10, RSNA Pneumonia (its classes) and torchxrayvision's 18 outputs. Matching
ignores case and treats ``_``, ``-``, ``/`` padding and repeated spaces alike (:func:`label_key`).

A name may mean **two** findings (VinDr's ``Nodule/Mass``): it maps to both, and :func:`map_names` reports it
instead of scoring it under one of them. A name that means none of the model's labels is reported too. Nothing is
ever scored silently under another name; an explicit ``extra`` alias (``{"Lung Opacity": "Pneumonia"}``) is the
only way to do so, and it is reported as such.

CheXpert-style uncertain labels (``-1``) follow a stated policy (:func:`policy_target`; default ``"ignore"``: left
out of the AUC of that class only, and counted). Torch-free, standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping as MappingType, Sequence

from ..errors import InputError
from .nih import NIH_CLASSES

#: Canonical findings that NIH lacks, in the spelling of CheXpert / VinDr / torchxrayvision.
EXTRA_FINDINGS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Lung Opacity",
    "Lung Lesion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
    "Aortic Enlargement",
    "Calcification",
    "ILD",
    "Other Lesion",
    "Lung Cavity",
    "Lung Cyst",
    "Mediastinal Shift",
    "Enlarged PA",
    "Lung Tumor",
    "Tuberculosis",
    "COPD",
    "Other Disease",
    "Diffuse Nodule",
)
#: Every canonical finding.
FINDINGS: tuple[str, ...] = NIH_CLASSES + EXTRA_FINDINGS


def label_key(label: object) -> str:
    """Case, ``_``, ``-`` and repeated spaces folded: ``Pleural_Thickening`` -> ``pleural thickening``."""
    return " ".join(str(label).strip().lower().replace("_", " ").replace("-", " ").split())


#: Names (normalised by :func:`label_key`) -> the canonical finding(s) they mean. Canonical names map to themselves
#: implicitly. Sources: NIH (label and box files), CheXpert / MIMIC-CXR-JPG, CheXlocalize, VinDr-CXR (PhysioNet and
#: Kaggle), ChestX-Det, RSNA, torchxrayvision's pathology names, and plural forms models use.
SYNONYMS: dict[str, tuple[str, ...]] = {
    # NIH spellings and plurals
    "infiltrate": ("Infiltration",),
    "infiltrates": ("Infiltration",),
    "effusions": ("Effusion",),
    "nodules": ("Nodule",),
    "masses": ("Mass",),
    "lung nodule": ("Nodule",),
    "lung mass": ("Mass",),
    "pleural thickenings": ("Pleural_Thickening",),
    # CheXpert / MIMIC / CheXlocalize / torchxrayvision
    "pleural effusion": ("Effusion",),
    "pleural thickening": ("Pleural_Thickening",),
    "airspace opacity": ("Lung Opacity",),  # CheXlocalize's name for CheXpert's Lung Opacity
    "support device": ("Support Devices",),
    "no findings": ("No Finding",),
    "normal": ("No Finding",),
    # VinDr-CXR (PhysioNet and Kaggle spellings)
    "aortic enlargement": ("Aortic Enlargement",),
    "nodule/mass": ("Nodule", "Mass"),
    "nodule mass": ("Nodule", "Mass"),
    "pulmonary fibrosis": ("Fibrosis",),
    "other lesion": ("Other Lesion",),
    "other diseases": ("Other Disease",),
    "clavicle fracture": ("Fracture",),
    "rib fracture": ("Fracture",),
    "lung tumor": ("Lung Tumor",),
    # ChestX-Det
    "diffuse nodule": ("Diffuse Nodule",),
}


def _table() -> dict[str, tuple[str, ...]]:
    table = {label_key(name): (name,) for name in FINDINGS}
    table.update(SYNONYMS)
    return table


def canonical(name: object) -> tuple[str, ...]:
    """The canonical finding(s) ``name`` means: one, two (``Nodule/Mass``) or none (``()``)."""
    key = label_key(name)
    if not key:
        return ()
    return _table().get(key, ())


def nih_name(label: object) -> str | None:
    """The one NIH class that ``label`` names, or ``None`` (no NIH class, or two)."""
    found = canonical(label)
    return found[0] if len(found) == 1 and found[0] in NIH_CLASSES else None


@dataclass
class Mapping:
    """A data set's class names mapped onto a model's labels.

    Attributes:
        pairs: data-set name -> the model label it is scored as.
        ambiguous: data-set name -> the model labels it could mean (not scored).
        unmapped: data-set names that mean none of the model's labels (not scored).
        aliased: data-set name -> model label, for pairs that came from the caller's ``extra`` aliases.
        notes: one sentence per name not scored as itself, for the report.
    """

    pairs: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    aliased: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def label_of(self, name: str) -> str | None:
        """The model label a data-set name is scored as, or ``None`` (reported, not scored)."""
        return self.pairs.get(name)

    def names_of(self, label: str) -> list[str]:
        """The data-set names scored as the model label ``label``."""
        return [n for n, lab in self.pairs.items() if lab == label]


def map_names(names: Iterable[str], model_labels: Sequence[str], extra: MappingType[str, str] | None = None) -> Mapping:
    """Map a data set's class names onto a model's labels, through the shared vocabulary.

    A name is scored as the model label that means the same canonical finding; a name meaning two findings the
    model both has (``Nodule/Mass`` for an NIH model) is ``ambiguous``; one meaning none is ``unmapped``; one whose
    two findings the model has only one of is scored as that one (and said so in ``notes``). ``extra`` (data-set
    name -> model label) is an explicit alias the caller asks for, reported in ``notes`` and ``aliased``.
    """
    out = Mapping()
    by_canon: dict[str, list[str]] = {}
    for lab in model_labels:
        for c in canonical(lab) or ((str(lab),) if str(lab).strip() else ()):
            by_canon.setdefault(c, []).append(str(lab))
    extra_keys = {label_key(k): v for k, v in (extra or {}).items()}
    for name in dict.fromkeys(str(n) for n in names):
        alias = extra_keys.get(label_key(name))
        if alias is not None:
            if alias not in model_labels:
                out.unmapped.append(name)
                out.notes.append(f"{name!r}: the alias {alias!r} is not one of the model's labels; not scored")
                continue
            out.pairs[name] = alias
            out.aliased[name] = alias
            out.notes.append(f"{name!r} scored as {alias!r} because an alias asked for it")
            continue
        hits: list[str] = []
        for c in canonical(name) or (name,):
            for lab in by_canon.get(c, []):
                if lab not in hits:
                    hits.append(lab)
        if not hits:
            out.unmapped.append(name)
            out.notes.append(f"{name!r} means none of the model's labels; not scored")
        elif len(hits) > 1:
            out.ambiguous[name] = tuple(hits)
            out.notes.append(f"{name!r} means {' or '.join(map(repr, hits))}; not scored (ambiguous)")
        else:
            out.pairs[name] = hits[0]
            if len(canonical(name)) > 1:
                out.notes.append(f"{name!r} scored as {hits[0]!r}, the only one of {', '.join(canonical(name))} the model has")
    return out


# --------------------------------------------------------------------------------------------- uncertain labels
#: The policies for CheXpert's uncertain label (-1): left out of that class (default), counted as positive, counted as
#: negative.
POLICIES = ("ignore", "positive", "negative")


def check_policy(policy: str) -> str:
    """``policy`` when it is one of :data:`POLICIES`.

    Raises:
        InputError: any other value (one line, in the words of ``evaluate --uncertain``).
    """
    if policy not in POLICIES:
        raise InputError(f"--uncertain {policy!r}: one of {', '.join(POLICIES)}")
    return policy


def policy_target(value: int, policy: str) -> int | None:
    """The 0/1 target of one image's stated label ``value`` for one class (1, 0, or -1: uncertain) under a
    :func:`checked <check_policy>` ``policy``: an uncertain label is 1 under ``"positive"``, 0 under ``"negative"``
    and ``None`` under ``"ignore"``: that image is left out of that class's AUC only (it still counts for every
    other class, and keeps its regions)."""
    if value != -1:
        return 1 if value == 1 else 0
    return None if policy == "ignore" else int(policy == "positive")


__all__ = [
    "EXTRA_FINDINGS", "FINDINGS", "SYNONYMS", "label_key", "canonical", "nih_name", "Mapping", "map_names",
    "POLICIES", "check_policy", "policy_target",
]
