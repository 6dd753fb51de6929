"""What one running app owns and reads at start-up: the example gallery (``examples/manifest.csv``, thumbnails),
the export folder, the model cache (:class:`AppResources`), and the settings read from the environment
(``CXRDEMO_EXAMPLES_DIR``, ``CXRDEMO_CONCURRENCY``; ``CXRDEMO_MAX_UPLOAD_MB`` is read by :mod:`.upload`)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from PIL import Image

from ..boxes import Box
from ..errors import CxrDemoError, InputError
from ..imaging import load_image
from ..datasets.nih import canonical_label
from ..provenance import DataSplits, read_splits
from .case_store import CaseStore
from .datasets import DatasetRegistry
from .models import ModelCache
from .state import Settings

if TYPE_CHECKING:
    from ..compare import GroundTruth

MANIFEST_COLUMNS = ("image", "finding_labels", "box_label", "box_x", "box_y", "box_w", "box_h")
_SEEN_WORDS = {"train": "seen in training", "validation": "seen in validation"}


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
        """Caption for a gallery, most telling first (a narrow tile cuts the end): the findings, the classes NIH
        boxed, whether the default model saw the image, then the file name."""
        parts = [self.finding_labels.replace("|", ", ")]
        boxed = ", ".join(sorted({b.label for b in self.boxes}))
        if boxed:
            parts.append(f"box: {boxed}")
        if self.seen:
            parts.append(_SEEN_WORDS.get(self.seen, f"seen in {self.seen}"))
        parts.append(self.image)
        return " | ".join(parts)


def read_manifest(path: str | os.PathLike) -> list[Example]:
    """Read ``examples/manifest.csv`` (columns :data:`MANIFEST_COLUMNS`, one row per NIH box; an image without a
    box has one row with empty box fields). Rows of one image are merged, in file order."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"examples manifest {file} not found; set CXRDEMO_EXAMPLES_DIR or restore examples/manifest.csv")
    with file.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(line for line in handle if not line.lstrip().startswith("#"))]
    missing = [c for c in MANIFEST_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise InputError(f"examples manifest {file} lacks columns {missing}; its header is {', '.join(MANIFEST_COLUMNS)}")
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
                raise InputError(f"examples manifest {file}, line {number}: box values must be numbers; fix that row") from None
            boxes = (Box.from_xywh(x, y, w, h, canonical_label(row["box_label"])),)
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


def concurrency_limit() -> int:
    """Model jobs run at once (``CXRDEMO_CONCURRENCY``, default 1: see docs/app.md, "Concurrency").

    Raises:
        InputError: the variable is not a whole number in 1..64 (one line).
    """
    from ..envnumbers import env_number

    return int(env_number("CXRDEMO_CONCURRENCY", 1, integer=True, minimum=1, maximum=64))


def server_port() -> int:
    """The port ``python app.py`` serves on (``GRADIO_SERVER_PORT``, default 7860)."""
    from ..envnumbers import env_number

    return int(env_number("GRADIO_SERVER_PORT", 7860, integer=True, minimum=1, maximum=65535))


def check_settings() -> None:
    """Read every numeric setting of the app once, at start: a bad value (``CXRDEMO_MAX_UPLOAD_MB=nan``,
    ``CXRDEMO_MAX_DICOM_MB=inf``...) stops the app with one line naming the variable, instead of failing later on
    every upload.

    Raises:
        InputError: the first bad setting.
    """
    from ..dicom_read import pixel_byte_limit
    from .audit_limits import AuditLimits
    from .case_store import state_budget
    from .upload import max_upload_bytes

    max_upload_bytes()
    pixel_byte_limit()
    state_budget()
    concurrency_limit()
    server_port()
    AuditLimits.from_env()


@dataclass
class AppResources:
    """What one running app owns: its model cache, its examples and the folder its exports are written to.

    Attributes:
        cache: the LRU of loaded models.
        examples: examples whose image exists (gallery order).
        examples_folder: where example images are looked up.
        export_root: folder for CSV / report files handed to the browser (one subfolder per export).
        default: the settings the controls start with.
        cases: every session's case within one memory budget (sessions keep only a handle to theirs).
        datasets: the data sets the audit page offers (:class:`~.datasets.DatasetRegistry`, built on first use);
            the single-case page looks an uploaded image's ground truth up there too (:meth:`truth_lookup`).
    """

    cache: ModelCache
    examples: list[Example]
    examples_folder: Path
    export_root: Path
    default: Settings = field(default_factory=Settings)
    cases: CaseStore = field(default_factory=CaseStore)
    datasets: DatasetRegistry | None = None

    def truth_lookup(self, image: str, width: int, height: int) -> "GroundTruth | None":
        """The ground truth of an image that a configured data set lists (:data:`cxrdemo.compare.TruthLookup`)."""
        return self.datasets.truth_of(image, width, height) if self.datasets is not None else None

    @property
    def panel_root(self) -> Path:
        """Folder of the rendered panels handed to the browser."""
        return self.export_root / "panels"

    def default_classes(self) -> list[str]:
        """Classes of the default model, read from its config.json only (the 14 NIH labels when it is missing)."""
        from ..models.config import ModelConfig
        from ..datasets.nih import NIH_CLASSES
        from ..models.weights import resolve_source

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
    exports = exports.resolve()
    registry = DatasetRegistry(root, examples, folder, exports)
    return AppResources(cache or ModelCache(capacity=2), examples, folder, exports, datasets=registry)


def default_splits() -> DataSplits | None:
    """The default model's ``data_splits.json`` when the default source is a local folder (no model load, no
    network); ``None`` otherwise or when it cannot be read (the model load reports real problems)."""
    from ..locations import default_source, parse_hub_id

    source = default_source()
    if parse_hub_id(source) is not None and not Path(source).exists():
        return None
    try:
        return read_splits(source)
    except CxrDemoError:
        return None
