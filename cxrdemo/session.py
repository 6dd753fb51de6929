"""The app's logic as plain functions on typed values (no Gradio import): ``app.py`` only wires components to them.

What a browser session does, step by step:

1. :func:`read_upload` turns the path of an uploaded file into a :class:`~cxrdemo.imaging.Radiograph` (size limit,
   accepted suffixes, one-line :class:`~cxrdemo.errors.CxrDemoError` otherwise).
2. :func:`analyse_case` gets the predictor for ``(source, device)`` from a :class:`ModelCache` (a small LRU owned by
   the app), runs ONE forward pass, the CAM and the comparison, and returns a :class:`Case` (kept by the app in
   ``gr.State``) plus a :class:`CaseView` (what the page shows: panels, ranked probabilities, IoU text, JSON).
3. :func:`update_case` redoes the CAM (method, class, threshold) and/or the ground truth from the cached
   :class:`~cxrdemo.predict.Inference`: no new forward pass unless the model source or device changed.
4. Ground truth a user draws or types: :func:`boxes_from_annotator`, :func:`parse_boxes_text`,
   :func:`format_boxes_text`.
5. Review: :func:`record_review` adds the case with its note to a :class:`ReviewLog`; :func:`export_csv` writes the
   dataset-curation CSV (:data:`CSV_COLUMNS`), :func:`export_report` the composite PNG and the prediction JSON.
6. Examples: :func:`read_manifest` and :func:`available_examples` read ``examples/manifest.csv``.

Every function raises :class:`~cxrdemo.errors.CxrDemoError` (one-line message) for anything a user can get wrong.
Research demo, not a diagnostic device.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from .boxes import Box
from .errors import BoxError, CxrDemoError, ImageError, InputError
from .cams import CamRequest, CAM_METHOD_KEYS as CAM_METHODS, CAM_METHOD_NAMES, CAM_THRESHOLDS, DEFAULT_CAM_THRESHOLD, check_method, check_threshold
from .imaging import IMAGE_SUFFIXES, Radiograph, load_image
from .provenance import DataSplits, read_splits
from .results import Analysis, CamResult
from .nih import NIH_BOX_ALIASES

if TYPE_CHECKING:  # imported lazily at run time: torch and the model stack load on first use
    from .predict import Inference, Predictor
    from .render import Panels

#: Largest upload the app accepts (bytes); ``CXRDEMO_MAX_UPLOAD_MB`` overrides. A 4280x3520 16-bit CR DICOM is ~30 MB.
DEFAULT_MAX_UPLOAD_MB = 50
#: Suffixes the upload control offers; files without a suffix are tried too (DICOM files often have none).
UPLOAD_SUFFIXES = IMAGE_SUFFIXES
#: Value of the target-class control that means "the top-1 class".
TOP1 = "top-1"
#: Side of the panels shown on the page, and of the panels in an exported report.
VIEW_PANEL_SIZE = 640
REPORT_PANEL_SIZE = 1024
#: Longest side of the image shown in the box-drawing control (boxes are scaled back to original pixels).
ANNOTATOR_SIDE = 1024
#: How many classes the CSV's ``top_probabilities`` column lists.
CSV_TOP_K = 3
#: Columns of the reviewed-cases CSV, in order (documented in README.md, "Reviewed-cases CSV").
CSV_COLUMNS: tuple[str, ...] = (
    "image",
    "class",
    "ground_truth_box",
    "ground_truth_source",
    "predicted_box",
    "predicted_score",
    "cam_box",
    "box_iou",
    "cam_iou",
    "top_probabilities",
    "cam_method",
    "cam_target",
    "cam_threshold",
    "note",
    "model_source",
    "model_revision",
    "model_architecture",
    "reviewed_at",
)

Progress = Callable[[float, str], None]
"""``report(fraction, message)``: how a long step tells the page where it is (the app passes ``gr.Progress``)."""


def _no_progress(fraction: float, message: str) -> None:
    return None


def max_upload_bytes() -> int:
    """The upload size limit in bytes (``CXRDEMO_MAX_UPLOAD_MB``, default :data:`DEFAULT_MAX_UPLOAD_MB`)."""
    text = os.environ.get("CXRDEMO_MAX_UPLOAD_MB", "").strip()
    try:
        mb = float(text) if text else float(DEFAULT_MAX_UPLOAD_MB)
    except ValueError:
        mb = float(DEFAULT_MAX_UPLOAD_MB)
    return int(max(mb, 1.0) * 1024 * 1024)


# ================================================================================================ settings, models
@dataclass(frozen=True)
class Settings:
    """What the user chose in the controls.

    Attributes:
        source: model source: ``""``/``"default"`` (embedded weights or ``$CXRDEMO_WEIGHTS``), a folder, or a Hub
            id ``owner/name[@revision]``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        method: CAM method (a key of :data:`cxrdemo.explain.CAM_METHODS`).
        target: class the CAM explains; ``None`` or :data:`TOP1` means the top-1 class.
        threshold: CAM box threshold on the map scaled to 0..255 (CLN: 127 or 180).
    """

    source: str = ""
    device: str = "auto"
    method: str = "gradcam"
    target: str | None = None
    threshold: int = DEFAULT_CAM_THRESHOLD

    @classmethod
    def from_controls(
        cls,
        source: str | None,
        device: str | None,
        method: str | None,
        target: str | None,
        threshold: int | float | str | None,
    ) -> "Settings":
        """Settings from raw control values, checked (unknown method or threshold: :class:`InputError`)."""
        target_text = (target or "").strip()
        return cls(
            source=(source or "").strip(),
            device=(device or "auto").strip() or "auto",
            method=check_method(method or "gradcam"),
            target=None if target_text.lower() in ("", TOP1, "top1", "auto") else target_text,
            threshold=check_threshold(DEFAULT_CAM_THRESHOLD if threshold in (None, "") else threshold),
        )


@dataclass(frozen=True)
class ModelKey:
    """Identity of a loaded model: the normalised source and the resolved device (``auto`` -> ``cpu``...)."""

    source: str
    device: str


def model_key(source: str | None, device: str | None) -> ModelKey:
    """Normalise what the user typed: default -> the default source, folders -> absolute paths, auto -> a device.

    Raises :class:`InputError` for an unknown or unavailable device.
    """
    from .device import pick_device
    from .weights import default_source, path_exists

    text = (source or "").strip()
    if text in ("", "default"):
        text = default_source()
    path = Path(text).expanduser()
    if path_exists(path):
        text = str(path.resolve())
    return ModelKey(text, str(pick_device(device or "auto")))


class ModelCache:
    """A small thread-safe LRU of loaded predictors keyed by :class:`ModelKey`, owned by the app (not a global).

    Loading is serialised by one lock so that two requests for the same new model load it once; the predictors
    themselves are safe to share between threads (see :mod:`cxrdemo.predict`).
    """

    def __init__(self, capacity: int = 2, loader: Callable[[str, str], "Predictor"] | None = None) -> None:
        """``capacity``: models kept in memory; ``loader(source, device)`` defaults to ``Predictor.from_source``."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._loader = loader or _load_predictor
        self._items: OrderedDict[ModelKey, "Predictor"] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.loads = 0

    def get(self, key: ModelKey, report: Progress = _no_progress) -> "Predictor":
        """The predictor for ``key``, loading it (and evicting the least recently used) when needed."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._load_lock:
            with self._lock:  # another request may have loaded it while this one waited
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            report(0.05, f"loading model {_short_source(key.source)} on {key.device}")
            predictor = self._loader(key.source, key.device)
            self.loads += 1
            with self._lock:
                self._items[key] = predictor
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return predictor

    def keys(self) -> list[ModelKey]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _load_predictor(source: str, device: str) -> "Predictor":
    from .predict import Predictor

    return Predictor.from_source(source, device=device)


def _short_source(source: str) -> str:
    path = Path(source)
    return f"{path.parent.name}/{path.name}" if path.is_absolute() else source


def warm_up(cache: ModelCache, settings: Settings = Settings()) -> float:
    """Load the model of ``settings``, run one forward pass and CAM on a blank image and draw its panels; returns
    the seconds taken.

    The first forward of a PyTorch model allocates its buffers and the first drawing loads fonts and the colour
    map; doing both at start-up makes the first user's answer as fast as the later ones.
    """
    start = time.perf_counter()
    predictor = cache.get(model_key(settings.source, settings.device))
    blank = Radiograph(np.full((1024, 1024), 128, dtype=np.uint8), "warm-up.png", "png")
    inference = predictor.forward(blank)
    cam = predictor.cam(inference, CamRequest(settings.method, None, settings.threshold))
    render_view(blank, predictor.assemble(inference, cam))
    return time.perf_counter() - start


# ============================================================================================================ upload
def read_upload(path: str | os.PathLike | None, max_bytes: int | None = None) -> Radiograph:
    """Decode the file an upload control handed over (its path) into a radiograph.

    Raises :class:`ImageError` for no file, a file over ``max_bytes`` (default :func:`max_upload_bytes`), a suffix
    the app does not take, or anything :func:`cxrdemo.imaging.load_image` refuses.
    """
    if path is None or str(path).strip() == "":
        raise ImageError("no radiograph yet: upload a PNG, JPEG or DICOM file, or click an example")
    file = Path(path)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    _wait_for_upload(file)
    if file.is_file():
        size = file.stat().st_size
        if size > limit:
            raise ImageError(f"{file.name} is {size / 2**20:.1f} MB; the upload limit is {limit / 2**20:.0f} MB")
    suffix = file.suffix.lower()
    if suffix and suffix not in UPLOAD_SUFFIXES:
        raise ImageError(f"{file.name}: {suffix} files are not accepted; upload a PNG, JPEG or DICOM (.dcm) radiograph")
    return load_image(file)


def _wait_for_upload(file: Path, timeout_s: float = 3.0) -> None:
    """Wait briefly for an upload that is still being moved into place.

    Gradio's upload route answers with the final path and moves the file there in a background task, so a request
    sent right after the upload can arrive first; a missing file is refused only after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not file.exists():
        raise ImageError(f"{file.name} did not arrive on the server; upload it again")


PANEL_NAMES = ("prediction", "comparison", "probabilities", "cam")
#: How each panel is encoded for the browser. The three film panels are JPEG at quality 95 without chroma
#: subsampling (visually lossless, 3-6 ms and ~110 KB each at 768 px); lossless PNG cost 35-60 ms each even at
#: zlib level 1, the largest single cost of an answer on 2 cores (issue 6), and 3x the bytes to download. The
#: chart (flat colours and text) stays PNG. The exported report (:func:`composite`) is always PNG.
PANEL_FORMATS = {"prediction": "JPEG", "comparison": "JPEG", "probabilities": "PNG", "cam": "JPEG"}


def write_panels(
    panels: "Panels", folder: str | os.PathLike, max_age_s: float = 7200.0, names: Sequence[str] = PANEL_NAMES
) -> dict[str, str]:
    """Write the panels ``names`` as uniquely named image files in ``folder``; ``{name: path}``.

    Handing Gradio file paths (not PIL images) lets it copy each file into its cache atomically; PIL images are
    re-encoded into a content-addressed cache file in place, which a concurrent request for an identical panel can
    truncate mid-download. Formats: :data:`PANEL_FORMATS`. Files older than ``max_age_s`` in ``folder`` are removed
    on the way.
    """
    import uuid

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - max_age_s
    for old in out.glob("panel-*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # removed by a concurrent call
    stem = uuid.uuid4().hex
    paths = {}
    for name in names:
        fmt = PANEL_FORMATS[name]
        path = out / f"panel-{stem}-{name}.{'jpg' if fmt == 'JPEG' else 'png'}"
        options = dict(quality=95, subsampling=0) if fmt == "JPEG" else dict(compress_level=1)
        getattr(panels, name).save(path, format=fmt, **options)
        paths[name] = str(path)
    return paths


# ======================================================================================================= the case
@dataclass
class Case:
    """One radiograph under review: everything needed to redo the CAM or the comparison without the network.

    Attributes:
        radiograph: the decoded image (original size).
        key: the model that made :attr:`inference`.
        inference: the forward pass (probabilities, boxes, feature map).
        settings: the settings of :attr:`analysis`.
        truth: ground-truth boxes the user supplied (original pixels); ``None`` means "look the image up in NIH's
            list".
        analysis: the current result.
    """

    radiograph: Radiograph
    key: ModelKey
    inference: "Inference"
    settings: Settings
    truth: tuple[Box, ...] | None
    analysis: Analysis

    @property
    def truth_source(self) -> str:
        """``"user"``, ``"NIH"`` or ``""`` (no ground truth)."""
        if self.truth:
            return "user"
        return "NIH" if self.analysis.ground_truth else ""


@dataclass
class CaseView:
    """What the page shows for a case.

    Attributes:
        case: the case (the app keeps it in ``gr.State``).
        panels: the four rendered panels (prediction, comparison, probabilities, CAM).
        label: ``{"Class (threshold 0.50)": probability}`` for a ranked ``gr.Label``, highest first.
        summary: Markdown: top class, the IoU table (or how to add ground truth), timings.
        json: the CLI / API JSON of the analysis.
        target_choices: ``(label, value)`` pairs for the target-class control: top-1 first, then every class.
        messages: remarks for the user shown as warnings after a forward pass (the summary always lists them),
            e.g. "NIH boxes scaled from 1024x1024" or that the model was trained on this image.
        forward_ran: whether this view needed a forward pass (``False`` when the cached one was reused).
    """

    case: Case
    panels: "Panels"
    label: dict[str, float]
    summary: str
    json: dict[str, Any]
    target_choices: list[tuple[str, str]]
    messages: list[str] = field(default_factory=list)
    forward_ran: bool = True

    @property
    def status(self) -> str:
        """One line for the page's status bar: what ran and how long it took."""
        a = self.case.analysis
        total = sum(a.timings_ms.values())
        how = "model run" if self.forward_ran else "CAM and comparison redone from the cached forward pass"
        return f"{a.image}: {how}, {total:.0f} ms of computation."


def analyse_case(
    cache: ModelCache,
    radiograph: Radiograph,
    settings: Settings,
    truth: Sequence[Box] | None = None,
    report: Progress = _no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
) -> CaseView:
    """Run the model on ``radiograph`` (one forward pass), the CAM, the comparison, and render the panels."""
    key = model_key(settings.source, settings.device)
    predictor = cache.get(key, report)
    report(0.35, "running the model")
    inference = predictor.forward(radiograph)
    return _finish(predictor, radiograph, key, inference, settings, truth, report, panel_size, forward_ran=True)


def update_case(
    cache: ModelCache,
    case: Case,
    settings: Settings,
    truth: Sequence[Box] | None | str = "keep",
    report: Progress = _no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
) -> CaseView:
    """Redo the CAM and the comparison of ``case`` with new settings and/or ground truth.

    The cached forward pass is reused when the model source and device are unchanged (changing the CAM method,
    target class or threshold never runs the network); otherwise the image is run through the new model.
    ``truth="keep"`` keeps the case's ground truth; ``None`` goes back to NIH's list; boxes replace it.
    """
    boxes = case.truth if isinstance(truth, str) else (tuple(truth) if truth else None)
    key = model_key(settings.source, settings.device)
    predictor = cache.get(key, report)
    if key == case.key:
        inference, ran = case.inference, False
    else:
        report(0.35, "running the new model")
        inference, ran = predictor.forward(case.radiograph), True
    return _finish(predictor, case.radiograph, key, inference, settings, boxes, report, panel_size, forward_ran=ran)


def _finish(
    predictor: "Predictor",
    radiograph: Radiograph,
    key: ModelKey,
    inference: "Inference",
    settings: Settings,
    truth: Sequence[Box] | None,
    report: Progress,
    panel_size: int,
    *,
    forward_ran: bool,
) -> CaseView:
    report(0.6, f"{CAM_METHOD_NAMES.get(settings.method, settings.method)} and comparison")
    start = time.perf_counter()
    cam = predictor.cam(inference, CamRequest(settings.method, settings.target, settings.threshold))
    cam_ms = (time.perf_counter() - start) * 1000.0
    analysis = predictor.assemble(inference, cam, predictor.ground_truth(inference, list(truth) if truth else None))
    analysis.timings_ms["cam"] = cam_ms
    report(0.8, "drawing the panels")
    panels = render_view(radiograph, analysis, panel_size)
    case = Case(radiograph, key, inference, settings, tuple(truth) if truth else None, analysis)
    # Toasts once per radiograph (the summary keeps the notes): not again on every CAM or ground-truth change.
    messages = list(analysis.notes) if forward_ran else []
    return CaseView(
        case=case,
        panels=panels,
        label=label_scores(analysis),
        summary=summarise(case),
        json=analysis.to_json(),
        target_choices=target_choices(predictor.config.classes, analysis),
        messages=messages,
        forward_ran=forward_ran,
    )


def render_view(radiograph: Radiograph, analysis: Analysis, size: int = VIEW_PANEL_SIZE) -> "Panels":
    """The four panels of :mod:`cxrdemo.render` at ``size`` px; the time taken is added to the analysis' timings."""
    from .render import render_panels

    start = time.perf_counter()
    panels = render_panels(radiograph, analysis, size=size)
    analysis.timings_ms["render"] = (time.perf_counter() - start) * 1000.0
    return panels


def label_scores(analysis: Analysis) -> dict[str, float]:
    """Ranked probabilities for a ``gr.Label``: each key names the model's decision threshold, with a check mark
    when the probability reaches it."""
    out: dict[str, float] = {}
    for p in analysis.probabilities:
        mark = " \u2713" if p.positive else ""
        out[f"{p.label} (threshold {p.threshold:.2f}){mark}"] = float(p.probability)
    return out


def target_choices(classes: Sequence[str], analysis: Analysis | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the target-class control: ``top-1 (Class)`` first, then every class."""
    top = f"{TOP1} ({analysis.top.label})" if analysis is not None and analysis.probabilities else TOP1
    return [(top, TOP1)] + [(c, c) for c in classes]


def _fmt_iou(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def summarise(case: Case) -> str:
    """Markdown for the page: top class, one IoU line per ground-truth box (or how to add one), CAM, timings."""
    a = case.analysis
    top = a.top
    verdict = "at or above" if top.positive else "below"
    lines = [
        f"**{a.image}** ({a.width}x{a.height}): top class **{top.label} {top.probability:.1%}** "
        f"({verdict} its threshold {top.threshold:.2f}).",
    ]
    for note in a.notes:  # e.g. that the model was trained on this very image
        lines += ["", f"> **Note:** {note}."]
    if a.ious:
        src = "your boxes" if case.truth else "NIH's radiologist boxes"
        lines.append("")
        lines.append(f"| ground truth ({src}) | box IoU | CAM IoU |")
        lines.append("|---|---|---|")
        for row in a.ious:
            lines.append(f"| {row.label} | {_fmt_iou(row.box_iou)} | {_fmt_iou(row.cam_iou)} |")
    else:
        lines.append("")
        lines.append("IoU: no ground truth for this image. Draw a box on it below (or type one), then *Apply ground truth*.")
    cam = a.cam
    if cam is not None:
        box = "no region reached the threshold" if cam.box is None else "box " + ", ".join(f"{v:.0f}" for v in cam.box.xyxy)
        lines.append("")
        lines.append(
            f"CAM: {CAM_METHOD_NAMES.get(cam.method, cam.method)} of {cam.target}, threshold {cam.threshold}: {box}."
        )
    t = a.timings_ms
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in t.items())
    lines.append("")
    lines.append(f"<small>Model: {a.model.get('architecture')} from {a.model.get('source')} "
                 f"(revision {a.model.get('revision')}). Timings: {stages}.</small>")
    return "\n".join(lines)


# ========================================================================================= user ground-truth boxes
_SEPARATORS = re.compile(r"[,\s;]+")
_ALIASES = {k.lower(): v for k, v in NIH_BOX_ALIASES.items()}


def parse_boxes_text(text: str | None, classes: Sequence[str] | None = None) -> list[Box]:
    """Boxes typed one per line as ``x1, y1, x2, y2, Class`` (pixels of the original image).

    Blank lines and lines starting with ``#`` are skipped. The class is checked against ``classes`` when given
    (NIH's "Infiltrate" is read as "Infiltration"). Raises :class:`BoxError` with the offending line.
    """
    boxes: list[Box] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in _SEPARATORS.split(line) if p]
        if len(parts) < 5:
            raise BoxError(f"line {number} ({line!r}): give x1, y1, x2, y2 and a class, e.g. '100, 200, 300, 400, Nodule'")
        try:
            x1, y1, x2, y2 = (float(v) for v in parts[:4])
        except ValueError:
            raise BoxError(f"line {number} ({line!r}): the first four values must be numbers (pixels)") from None
        label = " ".join(parts[4:])
        label = _ALIASES.get(label.lower(), label)
        if classes is not None:
            label = _match_class(label, classes, number)
        boxes.append(Box(x1, y1, x2, y2, label))
    return boxes


def _match_class(label: str, classes: Sequence[str], number: int) -> str:
    lowered = {c.lower().replace("_", " "): c for c in classes}
    key = label.lower().replace("_", " ")
    if key in lowered:
        return lowered[key]
    raise BoxError(f"line {number}: class {label!r} is not one of the model's classes ({', '.join(classes)})")


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


def boxes_from_annotator(value: Mapping[str, Any] | None, case: Case | None, side: int = ANNOTATOR_SIDE) -> list[Box]:
    """Boxes drawn in the box-drawing control, in original pixels (``xmin``... of the shown image, scaled back).

    A box with no class gets the case's CAM target class (the class being inspected).
    """
    if not value or case is None:
        return []
    scale = display_scale(case.radiograph, side)
    default = case.analysis.cam.target if case.analysis.cam is not None else case.analysis.top.label
    out = []
    for item in value.get("boxes") or []:
        try:
            coords = [float(item[k]) / scale for k in ("xmin", "ymin", "xmax", "ymax")]
        except (KeyError, TypeError, ValueError):
            raise BoxError(f"cannot read the drawn box {item!r}; draw it again") from None
        label = str(item.get("label") or default)
        out.append(Box(*coords, NIH_BOX_ALIASES.get(label, label)))
    return out


def check_truth(case: Case, boxes: Sequence[Box], classes: Sequence[str]) -> list[Box]:
    """Validate user boxes against the case's image (clipped; wrong order, zero area, outside: :class:`BoxError`)."""
    from .truth import user_boxes

    return user_boxes(boxes, case.radiograph.width, case.radiograph.height, classes)


def apply_truth(
    cache: ModelCache,
    case: Case | None,
    text: str | None,
    report: Progress = _no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
) -> CaseView:
    """Use the typed/drawn boxes ``text`` as the case's ground truth (empty: back to NIH's list); no forward pass."""
    if case is None:
        raise InputError("analyse a radiograph first, then add its ground truth")
    predictor = cache.get(case.key, report)
    classes = predictor.config.classes
    boxes = check_truth(case, parse_boxes_text(text, classes), classes)
    return update_case(cache, case, case.settings, boxes or None, report, panel_size)


# ================================================================================================== review, export
@dataclass(frozen=True)
class ReviewRow:
    """One row of the reviewed-cases CSV (see :data:`CSV_COLUMNS`)."""

    image: str
    label: str
    ground_truth_box: str
    ground_truth_source: str
    predicted_box: str
    predicted_score: str
    cam_box: str
    box_iou: str
    cam_iou: str
    top_probabilities: str
    cam_method: str
    cam_target: str
    cam_threshold: str
    note: str
    model_source: str
    model_revision: str
    model_architecture: str
    reviewed_at: str

    def as_csv(self) -> dict[str, str]:
        """The row keyed by :data:`CSV_COLUMNS`."""
        values = (
            self.image, self.label, self.ground_truth_box, self.ground_truth_source, self.predicted_box,
            self.predicted_score, self.cam_box, self.box_iou, self.cam_iou, self.top_probabilities, self.cam_method,
            self.cam_target, self.cam_threshold, self.note, self.model_source, self.model_revision,
            self.model_architecture, self.reviewed_at,
        )  # fmt: skip
        return dict(zip(CSV_COLUMNS, values))


@dataclass(frozen=True)
class ReviewLog:
    """The cases a user reviewed in this browser session, one entry per (image, model), latest review kept."""

    cases: tuple[tuple[str, tuple[ReviewRow, ...]], ...] = ()

    @property
    def rows(self) -> list[ReviewRow]:
        """Every row, in the order the cases were first reviewed."""
        return [row for _, rows in self.cases for row in rows]

    def __len__(self) -> int:
        return len(self.cases)


def _box_text(box: Box | None) -> str:
    return "" if box is None else json.dumps(box.rounded())


def review_rows(case: Case, note: str, when: datetime | None = None) -> tuple[ReviewRow, ...]:
    """CSV rows for ``case``: one per ground-truth box; one row for the CAM target when there is no ground truth."""
    a = case.analysis
    stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    top = "; ".join(f"{p.label}={p.probability:.4f}" for p in a.probabilities[:CSV_TOP_K])
    cam: CamResult | None = a.cam
    common = dict(
        image=a.image,
        top_probabilities=top,
        cam_method=cam.method if cam else "",
        cam_target=cam.target if cam else "",
        cam_threshold=str(cam.threshold) if cam else "",
        note=" ".join((note or "").split()),
        model_source=str(a.model.get("source") or ""),
        model_revision=str(a.model.get("revision") or ""),
        model_architecture=str(a.model.get("architecture") or ""),
        reviewed_at=stamp,
    )
    if a.ious:
        return tuple(
            ReviewRow(
                label=r.label,
                ground_truth_box=_box_text(r.truth),
                ground_truth_source=case.truth_source,
                predicted_box=_box_text(r.box),
                predicted_score="" if r.box is None or r.box.score is None else f"{r.box.score:.4f}",
                cam_box=_box_text(r.cam_box),
                box_iou="" if r.box_iou is None else f"{r.box_iou:.4f}",
                cam_iou="" if r.cam_iou is None else f"{r.cam_iou:.4f}",
                **common,
            )
            for r in a.ious
        )
    label = cam.target if cam else a.top.label
    box = a.box_for(label)
    return (
        ReviewRow(
            label=label,
            ground_truth_box="",
            ground_truth_source="",
            predicted_box=_box_text(box),
            predicted_score="" if box is None or box.score is None else f"{box.score:.4f}",
            cam_box=_box_text(cam.box if cam else None),
            box_iou="",
            cam_iou="",
            **common,
        ),
    )


def _review_key(case: Case) -> str:
    return f"{case.analysis.image}\x00{case.key.source}"


def record_review(log: ReviewLog | None, case: Case | None, note: str | None, when: datetime | None = None) -> ReviewLog:
    """A new log with ``case`` (and its ``note``) added, replacing an earlier review of the same image and model."""
    if case is None:
        raise InputError("nothing to save yet: analyse a radiograph first")
    log = log or ReviewLog()
    key = _review_key(case)
    rows = review_rows(case, note or "", when)
    cases = [(k, r) for k, r in log.cases if k != key]
    position = next((i for i, (k, _) in enumerate(log.cases) if k == key), len(cases))
    cases.insert(position, (key, rows))
    return ReviewLog(tuple(cases))


def note_for(log: ReviewLog | None, case: Case | None) -> str:
    """The note saved earlier for ``case`` (same image and model), or ``""``."""
    if not log or case is None:
        return ""
    key = _review_key(case)
    for k, rows in log.cases:
        if k == key and rows:
            return rows[0].note
    return ""


def review_table(log: ReviewLog | None) -> list[list[str]]:
    """Rows for a small on-page table: image, class, box IoU, CAM IoU, note."""
    return [[r.image, r.label, r.box_iou, r.cam_iou, r.note] for r in (log.rows if log else [])]


def csv_text(log: ReviewLog) -> str:
    """The reviewed-cases CSV as text (header :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in log.rows:
        writer.writerow(row.as_csv())
    return buffer.getvalue()


def _unique_dir(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for i in range(1000):
        out = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise InputError(f"cannot create an export folder in {root}")


def export_csv(log: ReviewLog | None, folder: str | os.PathLike) -> Path:
    """Write ``reviewed_cases.csv`` into a new subfolder of ``folder`` and return its path."""
    if not log or not log.cases:
        raise InputError("no reviewed cases yet: analyse a radiograph and click 'Save review' first")
    path = _unique_dir(folder) / "reviewed_cases.csv"
    path.write_text(csv_text(log), encoding="utf-8")
    return path


def export_report(case: Case | None, folder: str | os.PathLike, size: int = REPORT_PANEL_SIZE) -> list[Path]:
    """Write the report of ``case``: the four panels as one PNG (``<image>_report.png``) and the prediction JSON
    (``<image>_prediction.json``, the CLI schema), in a new subfolder of ``folder``; returns both paths."""
    from .render import composite, render_panels

    if case is None:
        raise InputError("nothing to export yet: analyse a radiograph first")
    out = _unique_dir(folder)
    stem = Path(case.analysis.image).stem or "radiograph"
    png = out / f"{stem}_report.png"
    composite(render_panels(case.radiograph, case.analysis, size=size)).save(png)
    doc = out / f"{stem}_prediction.json"
    doc.write_text(json.dumps(case.analysis.to_json(), indent=2) + "\n", encoding="utf-8")
    return [png, doc]


# ========================================================================================================= examples
@dataclass(frozen=True)
class Example:
    """One row of ``examples/manifest.csv``.

    Attributes:
        image: NIH file name (``00000468_017.png``).
        finding_labels: NIH's labels for the image (``"Atelectasis|Pneumothorax"`` or ``"No Finding"``).
        boxes: NIH's boxes, in the 1024 px original's pixels (xyxy).
        path: the image file when it exists in the examples folder, else ``None``.
        seen: ``"train"`` or ``"validation"`` when the default model was trained or validated on the image.
    """

    image: str
    finding_labels: str
    boxes: tuple[Box, ...] = ()
    path: Path | None = None
    seen: str | None = None

    @property
    def caption(self) -> str:
        """Short caption for a gallery: file name, labels and whether NIH boxed it."""
        boxed = ", ".join(sorted({b.label for b in self.boxes}))
        tail = f" | box: {boxed}" if boxed else ""
        if self.seen:
            tail += f" | in the default model's {'training' if self.seen == 'train' else 'validation'} data"
        return f"{self.image}: {self.finding_labels.replace('|', ', ')}{tail}"


MANIFEST_COLUMNS = ("image", "finding_labels", "box_label", "box_x", "box_y", "box_w", "box_h")


def read_manifest(path: str | os.PathLike) -> list[Example]:
    """Read ``examples/manifest.csv`` (columns :data:`MANIFEST_COLUMNS`, one row per NIH box; an image without a
    box has one row with empty box fields). Rows of one image are merged, in file order."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"examples manifest {file} not found")
    with file.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(line for line in handle if not line.lstrip().startswith("#"))]
    missing = [c for c in MANIFEST_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise InputError(f"examples manifest {file} lacks columns {missing}")
    merged: dict[str, Example] = {}
    for number, row in enumerate(rows, start=2):
        name = (row.get("image") or "").strip()
        if not name:
            continue
        boxes: tuple[Box, ...] = ()
        if (row.get("box_label") or "").strip():
            try:
                x, y, w, h = (float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
            except (TypeError, ValueError):
                raise InputError(f"examples manifest {file}, line {number}: box values must be numbers") from None
            label = row["box_label"].strip()
            boxes = (Box.from_xywh(x, y, w, h, NIH_BOX_ALIASES.get(label, label)),)
        previous = merged.get(name)
        if previous is None:
            merged[name] = Example(name, (row.get("finding_labels") or "").strip(), boxes)
        else:
            merged[name] = replace(previous, boxes=previous.boxes + boxes)
    return list(merged.values())


def examples_dir(repo_root: str | os.PathLike) -> Path:
    """The folder holding example images: ``$CXRDEMO_EXAMPLES_DIR`` (relative to ``repo_root``) or
    ``examples/images``."""
    root = Path(repo_root)
    text = os.environ.get("CXRDEMO_EXAMPLES_DIR", "").strip()
    folder = Path(text).expanduser() if text else Path("examples") / "images"
    return (folder if folder.is_absolute() else root / folder).resolve()


def available_examples(examples: Iterable[Example], folder: str | os.PathLike) -> list[Example]:
    """The examples whose image file exists in ``folder``, with :attr:`Example.path` set."""
    root = Path(folder)
    out = []
    for ex in examples:
        path = root / ex.image
        if path.is_file():
            out.append(replace(ex, path=path))
    return out


def thumbnail(path: str | os.PathLike, side: int = 256) -> Image.Image:
    """A small grayscale preview of an example image (for the gallery)."""
    try:
        radiograph = load_image(path)
    except CxrDemoError:
        return Image.new("L", (side, side), 0)
    img = Image.fromarray(radiograph.pixels)
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return img


@dataclass
class AppResources:
    """What one running app owns: its model cache, its examples and the folder its exports are written to.

    Attributes:
        cache: the LRU of loaded models.
        examples: examples whose image exists (gallery order).
        examples_folder: where example images are looked up.
        export_root: folder for CSV / report files handed to the browser (one subfolder per export).
        default: the settings the controls start with.
    """

    cache: ModelCache
    examples: list[Example]
    examples_folder: Path
    export_root: Path
    default: Settings = field(default_factory=Settings)

    @property
    def panel_root(self) -> Path:
        """Folder of the rendered panels handed to the browser (see :func:`write_panels`)."""
        return self.export_root / "panels"

    def default_classes(self) -> list[str]:
        """Classes of the default model, read from its config.json only (the 14 NIH labels when it is missing)."""
        from .config import ModelConfig
        from .nih import NIH_CLASSES
        from .weights import resolve_source

        try:
            return list(ModelConfig.load(resolve_source(self.default.source or None).folder).classes)
        except CxrDemoError:
            return list(NIH_CLASSES)


def make_resources(
    repo_root: str | os.PathLike,
    *,
    cache: ModelCache | None = None,
    examples_folder: str | os.PathLike | None = None,
    export_root: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
) -> AppResources:
    """Resources for an app rooted at ``repo_root``: examples from ``examples/manifest.csv`` found in
    :func:`examples_dir` (or ``examples_folder``), a 2-model cache, and a fresh temporary export folder."""
    import tempfile

    root = Path(repo_root)
    folder = Path(examples_folder).resolve() if examples_folder else examples_dir(root)
    manifest_path = Path(manifest) if manifest else root / "examples" / "manifest.csv"
    examples = available_examples(read_manifest(manifest_path), folder) if manifest_path.is_file() else []
    splits = default_splits()
    if splits is not None:
        examples = [replace(ex, seen=splits.role(ex.image)) for ex in examples]
    exports = Path(export_root) if export_root else Path(tempfile.mkdtemp(prefix="cxrdemo-exports-"))
    exports.mkdir(parents=True, exist_ok=True)
    return AppResources(cache or ModelCache(capacity=2), examples, folder, exports.resolve())


def default_splits() -> DataSplits | None:
    """The default model's ``data_splits.json`` when the default source is a local folder (no model load, no
    network); ``None`` otherwise or when it cannot be read (the model load reports real problems)."""
    from .weights import default_source, parse_hub_id

    source = default_source()
    if parse_hub_id(source) is not None and not Path(source).exists():
        return None
    try:
        return read_splits(source)
    except CxrDemoError:
        return None


def describe_error(exc: BaseException) -> str:
    """One line for the page: a :class:`CxrDemoError`'s own message, or a short note for an unexpected failure."""
    if isinstance(exc, CxrDemoError):
        return str(exc)
    text = " ".join(str(exc).split())[:200]
    return f"unexpected {exc.__class__.__name__}: {text} (this is a bug: please report it with the server log)"


__all__ = [
    "AppResources",
    "make_resources",
    "CAM_METHODS",
    "CAM_THRESHOLDS",
    "CSV_COLUMNS",
    "Case",
    "CaseView",
    "Example",
    "ModelCache",
    "ModelKey",
    "ReviewLog",
    "ReviewRow",
    "Settings",
    "TOP1",
    "analyse_case",
    "annotator_value",
    "apply_truth",
    "available_examples",
    "boxes_from_annotator",
    "describe_error",
    "examples_dir",
    "export_csv",
    "export_report",
    "format_boxes_text",
    "label_scores",
    "max_upload_bytes",
    "model_key",
    "note_for",
    "parse_boxes_text",
    "read_manifest",
    "read_upload",
    "record_review",
    "review_table",
    "summarise",
    "target_choices",
    "update_case",
    "warm_up",
]
