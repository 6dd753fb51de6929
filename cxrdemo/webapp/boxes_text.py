"""Ground-truth boxes a user draws or types, as text and back.

- Typed: one ``x1, y1, x2, y2, Class`` line per box in the original image's pixels (:func:`parse_boxes_text`,
  :func:`format_boxes_text`). Only the syntax is read here; classes and geometry are checked once, by
  :func:`cxrdemo.compare.ground_truth`.
- Drawn: the box-drawing control (``gradio_image_annotation``) shows the radiograph at most :data:`ANNOTATOR_SIDE`
  px (:func:`annotator_value`); its boxes are scaled back (:func:`boxes_from_annotator`).
- The text field is the whole ground truth the user states (NIH's boxes included, one line each): what the user
  deletes from it is gone, and an empty text means "no ground truth". :func:`merge_drawn` brings into it only what
  changed in the control since the text last saw it (a box drawn, moved or deleted there; never while its class
  dialog is open, :func:`annotator_pending`), keeping every other line as typed; *Apply ground truth* does the same
  with the control's current value, so a class picked just before the click is the one applied.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..boxes import Box, validate_box
from ..errors import BoxError
from ..imaging import Radiograph
from ..datasets.nih import canonical_label, match_class
from ..publicmode import clip_text
from .state import Case

#: Longest side of the image shown in the box-drawing control (boxes are scaled back to original pixels).
ANNOTATOR_SIDE = 1024
#: Most lines of ground-truth text (and most drawn boxes): a radiograph has a handful of boxes (NIH's list has at
#: most a few per film); 100,000 lines once held the model slot for 10 minutes (issue 19).
MAX_TRUTH_LINES = 64
#: Most bytes (UTF-8) of ground-truth text: 64 lines of ``x1, y1, x2, y2, Class`` at most ~60 bytes each, doubled.
MAX_TRUTH_BYTES = 8 * 1024
_SEPARATORS = re.compile(r"[,\s;]+")


def check_truth_text(text: str | None) -> str:
    """``text`` (``""`` for ``None``) when it is at most :data:`MAX_TRUTH_BYTES` bytes and :data:`MAX_TRUTH_LINES`
    lines; else :class:`BoxError` (one line). Checked before any parsing, in time linear in the text."""
    text = text or ""
    # A character is at least one UTF-8 byte: a text longer than the cap in characters is refused unencoded.
    size = len(text) if len(text) > MAX_TRUTH_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TRUTH_BYTES:
        raise BoxError(
            f"the ground-truth text is {size / 1024:.0f} KB; the limit is {MAX_TRUTH_BYTES // 1024} KB "
            f"({MAX_TRUTH_LINES} boxes): keep one 'x1, y1, x2, y2, Class' line per box of this radiograph"
        )
    lines = len(text.splitlines())
    if lines > MAX_TRUTH_LINES:
        raise BoxError(
            f"the ground-truth text has {lines} lines; the limit is {MAX_TRUTH_LINES}: "
            "keep one 'x1, y1, x2, y2, Class' line per box of this radiograph"
        )
    return text


def parse_boxes_text(text: str | None, classes: Sequence[str] | None = None) -> list[Box]:
    """Boxes typed one per line as ``x1, y1, x2, y2, Class`` (pixels of the original image).

    Blank lines and lines starting with ``#`` are skipped. With ``classes``, each class is matched to them by
    :func:`cxrdemo.datasets.nih.match_class` (NIH's "Infiltrate" names "Infiltration"). Raises :class:`BoxError` naming the
    offending line, or when the text is over :func:`check_truth_text`'s caps.
    """
    return [box for _, box in _numbered_boxes(text, classes)]


def _parse_line(number: int, line: str, classes: Sequence[str] | None) -> Box:
    """The box of one non-blank, non-comment ``line`` (number ``number`` of its text)."""
    parts = [p for p in _SEPARATORS.split(line) if p]
    if len(parts) < 5:
        raise BoxError(f"line {number} ({clip_text(line)!r}): give x1, y1, x2, y2 and a class, e.g. '100, 200, 300, 400, Nodule'")
    try:
        x1, y1, x2, y2 = (float(v) for v in parts[:4])
    except ValueError:
        raise BoxError(f"line {number} ({clip_text(line)!r}): the first four values must be numbers (pixels)") from None
    label = canonical_label(" ".join(parts[4:]))
    if classes is not None:
        found = match_class(label, classes)
        if found is None:
            raise BoxError(f"line {number}: class {clip_text(label)!r} is not one of the model's classes; use one of {', '.join(classes)}")
        label = found
    return Box(x1, y1, x2, y2, label)


def check_boxes_text(text: str | None, classes: Sequence[str], width: int, height: int) -> list[Box]:
    """The boxes of ``text`` checked against the model's ``classes`` and a ``width`` x ``height`` image (clipped to
    it): every error names the line of ``text`` it is on ("line 2: box ... lies outside the image"), counted in the
    user's own text. Raises :class:`BoxError`."""
    boxes = []
    for number, box in _numbered_boxes(text, classes):
        try:
            boxes.append(validate_box(box, width, height))
        except BoxError as exc:
            raise BoxError(f"line {number}: {exc}") from None
    return boxes


def _numbered_boxes(text: str | None, classes: Sequence[str] | None) -> list[tuple[int, Box]]:
    """``(line number, box)`` for every box line of ``text`` (see :func:`parse_boxes_text`)."""
    out: list[tuple[int, Box]] = []
    for number, raw in enumerate(check_truth_text(text).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.append((number, _parse_line(number, line, classes)))
    return out


def snap_to_nih(boxes: Sequence[Box], radiograph: Radiograph, listed: Sequence[Box] | None = None) -> tuple[list[Box], bool]:
    """``boxes`` with every box that is one of NIH's boxes of this image, as the text or the drawing control gave it
    back, replaced by NIH's exact box; and whether the result is exactly NIH's list (then it IS NIH's ground truth).
    ``listed``: the radiologists' boxes to snap to instead of NIH's (a configured data set's, for an image NIH's
    list does not know).

    Drawing a box turns the control's whole value into text, NIH's boxes included, and the control holds them in the
    pixels of its display copy (whole pixels, at :func:`display_scale`), the text at 0.1 px: so a box of the same class
    whose four coordinates are within one display pixel (``1 / scale`` original pixels) of an NIH box is that box.
    Without this, NIH's boxes came back as "user" boxes a fraction of a pixel off (IoU 1.00 became 0.99)."""
    nih = truth_nih_boxes(radiograph) if listed is None else list(listed)
    if not nih:
        return list(boxes), False
    tolerance = 1.0 / display_scale(radiograph) + 0.05  # one display pixel, plus the text's 0.1 px rounding
    out: list[Box] = []
    for box in boxes:
        label = match_class(box.label, [b.label for b in nih]) or box.label
        same = [b for b in nih if b.label == label and max(abs(u - v) for u, v in zip(b.xyxy, box.xyxy)) <= tolerance]
        out.append(same[0] if same else box)
    return out, sorted(map(_key, out)) == sorted(map(_key, nih))


def truth_nih_boxes(radiograph: Radiograph) -> list[Box]:
    """NIH's boxes of ``radiograph`` (by its file name) in its pixels; empty when NIH's list does not know it."""
    from ..datasets.truth import nih_boxes

    return nih_boxes(radiograph.name, radiograph.width, radiograph.height)


def _key(box: Box) -> tuple[str, tuple[float, ...]]:
    return box.label, tuple(box.xyxy)


def format_boxes_text(boxes: Iterable[Box]) -> str:
    """The inverse of :func:`parse_boxes_text`: one ``x1, y1, x2, y2, Class`` line per box, rounded to 0.1 px."""
    return "\n".join(", ".join(f"{v:.1f}".rstrip("0").rstrip(".") for v in b.xyxy) + f", {b.label}" for b in boxes)


def display_scale(radiograph: Radiograph, side: int = ANNOTATOR_SIDE) -> float:
    """Factor from original pixels to the pixels of the image shown in the box-drawing control (<= 1)."""
    return min(1.0, side / max(radiograph.width, radiograph.height))


def annotator_value(case: Case, side: int = ANNOTATOR_SIDE) -> dict[str, Any]:
    """The box-drawing control's value: the radiograph (at most ``side`` px) with the current ground truth drawn."""
    scale = display_scale(case.radiograph, side)
    img = Image.fromarray(case.radiograph.pixels)
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    boxes = [
        {
            "xmin": int(round(b.x1 * scale)),
            "ymin": int(round(b.y1 * scale)),
            "xmax": int(round(b.x2 * scale)),
            "ymax": int(round(b.y2 * scale)),
            "label": b.label,
        }
        for b in case.analysis.ground_truth
    ]
    return {"image": np.asarray(img.convert("RGB")), "boxes": boxes}


def annotator_pending(value: Mapping[str, Any] | None) -> bool:
    """Whether a box of the control has no class yet: it is being drawn, or its class dialog is still open (the
    control reports the box before the dialog and again after OK)."""
    return bool(value) and any(not str(item.get("label") or "").strip() for item in _drawn_items(value))


def _drawn_items(value: Mapping[str, Any]) -> list[Any]:
    """The control's boxes; :class:`BoxError` past :data:`MAX_TRUTH_LINES` (the value comes from the browser)."""
    items = value.get("boxes") or []
    if not isinstance(items, list):
        raise BoxError("the box-drawing control sent no list of boxes; draw the boxes again")
    if len(items) > MAX_TRUTH_LINES:
        raise BoxError(f"{len(items)} boxes were drawn; the limit is {MAX_TRUTH_LINES}: remove some and apply again")
    return items


def boxes_from_annotator(value: Mapping[str, Any] | None, case: Case | None, side: int = ANNOTATOR_SIDE) -> list[Box]:
    """Boxes drawn in the box-drawing control, in original pixels (``xmin``... of the shown image, scaled back).

    A box with no class gets the case's CAM target class (the class being inspected).
    """
    if not value or case is None:
        return []
    scale = display_scale(case.radiograph, side)
    default = case.analysis.cam.target if case.analysis.cam is not None else case.analysis.top.label
    out = []
    for item in _drawn_items(value):
        try:
            coords = [float(item[k]) / scale for k in ("xmin", "ymin", "xmax", "ymax")]
        except (KeyError, TypeError, ValueError):
            raise BoxError(f"cannot read the drawn box {clip_text(item)!r}; draw it again") from None
        out.append(Box(*coords, canonical_label(str(item.get("label") or default))))
    return out


def _normal(line: str) -> str:
    """A text line in :func:`format_boxes_text`'s form, so that lines naming the same box compare equal."""
    try:
        boxes = parse_boxes_text(line)
    except BoxError:
        return line.strip()
    return format_boxes_text(boxes) if boxes else ""


def text_lines(text: str | None) -> tuple[str, ...]:
    """The box lines of ``text`` in normal form (blank lines and ``#`` comments dropped); :class:`BoxError` past
    :func:`check_truth_text`'s caps."""
    lines = (_normal(raw) for raw in check_truth_text(text).splitlines() if raw.strip() and not raw.strip().startswith("#"))
    return tuple(line for line in lines if line)


def drawn_lines(value: Mapping[str, Any] | None, case: Case | None) -> tuple[str, ...]:
    """The control's boxes as text lines (original pixels)."""
    return text_lines(format_boxes_text(boxes_from_annotator(value, case)))


def control_changed(value: Mapping[str, Any] | None, case: Case | None, synced: Sequence[str] = ()) -> bool:
    """Whether the box-drawing control holds other boxes than the text last took in (``synced``).

    The control's change event also fires when the page itself redraws it (*Apply*, a new case); that event carries
    the text as it was when it fired, and its answer can arrive after the user has typed again. When the control
    holds exactly the boxes already taken in, there is nothing to merge, and the text must not be answered at all
    (nothing the user typed meanwhile may be overwritten).
    """
    if not value or case is None:
        return False
    if annotator_pending(value):
        return True  # merge_drawn says what to do
    return tuple(drawn_lines(value, case)) != tuple(synced)


def merge_drawn(
    text: str | None, value: Mapping[str, Any] | None, case: Case | None, synced: Sequence[str] = ()
) -> tuple[str, tuple[str, ...]]:
    """The text field with what changed in the box-drawing control since the text last saw it, and the control's
    lines now (the next ``synced``).

    ``synced`` are the control's boxes (as :func:`drawn_lines`) when the text last took them in: a box of the control
    not among them was drawn (or moved) since and is added at the end of the text, unless a line of the text is that
    box already; one of them no longer in the control was deleted (or moved) there, and the text's line of that box
    goes. Every other line stays as the user left it, in place: a line the user deleted stays deleted even though the
    control still shows its box (the text is the ground truth the user states; *Apply* redraws the control from it).
    A text line "is" a control box when it has the same class and its corners are within one display pixel
    (:func:`display_scale`), as the control holds boxes in whole pixels of its display copy.
    Raises :class:`BoxError` while a drawn box has no class (its dialog is open).
    """
    if annotator_pending(value):
        raise BoxError("the drawn box has no class yet: pick one in its dialog (OK), then Apply ground truth")
    check_truth_text(text)
    if not value or case is None:
        return text or "", tuple(synced)
    drawn = drawn_lines(value, case)
    before, now = set(synced), set(drawn)  # sets: linear in the lines (a list here made it quadratic)
    tolerance = 1.0 / display_scale(case.radiograph) + 0.05  # one display pixel, plus the text's 0.1 px rounding
    removed = [_line_box(line) for line in synced if line not in now]
    added = [line for line in drawn if line not in before]
    kept = [raw for raw in (text or "").splitlines() if not _matches_any(_line_box(raw), removed, tolerance)]
    present = [_line_box(raw) for raw in kept]
    new = [line for line in added if not _matches_any(_line_box(line), present, tolerance)]
    while kept and not kept[-1].strip():  # no blank gap before the added lines
        kept.pop()
    return "\n".join((*kept, *new)), drawn


def _line_box(line: str) -> Box | None:
    """The box of one text line, or ``None`` (blank, comment, or not a box line)."""
    try:
        boxes = parse_boxes_text(line)
    except BoxError:
        return None
    return boxes[0] if boxes else None


def _matches_any(box: Box | None, others: Sequence[Box | None], tolerance: float) -> bool:
    """Whether ``box`` is one of ``others``: the same class and every corner within ``tolerance`` pixels."""
    if box is None:
        return False
    return any(
        o is not None and o.label == box.label and max(abs(u - v) for u, v in zip(o.xyxy, box.xyxy)) <= tolerance
        for o in others
    )
