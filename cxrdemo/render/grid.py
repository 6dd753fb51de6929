"""Side by side: every CAM method on one case (a tile per method, and the grid of them), and two models on one
radiograph (a row of the four panels per model).

- :func:`render_method_tile`: one method's CAM over the film, the ground-truth boxes and the method's CAM box, its
  name above and, below, the IoU of its CAM box with each ground-truth box;
- :func:`render_method_grid`: the tiles in a grid under a title line (image, target, threshold, model), above the
  disclaimer;
- :func:`model_heading` and :func:`render_model_rows`: the four panels of model A, then those of model B, each row
  under its heading (model, source, top class).

Drawn with the kit of :mod:`.draw`, :mod:`.film` and :mod:`.panels` (same colours, line styles, fonts, colour map);
nothing here computes a CAM or an IoU: the tiles show what :func:`cxrdemo.sidebyside.compare_methods` computed.
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence

from PIL import Image, ImageDraw

from ..boxes import Box, iou
from ..cams import method_name
from ..imaging import Radiograph
from ..results import Analysis, CamResult
from .draw import BACKGROUND, MUTED, TEXT, Row, block_size, canvas, draw_block, line_height, paint_box, scale_for, text, with_text_strip
from .panels import CLASS_AGNOSTIC, DISCLAIMER, PANEL_NAMES, _overlay
from .staged import render_panels
from .film import CAM, NO_HINTS, TRUTH, Hints, film_view, numbered_labels, pretty, probability_of

#: Longest side of a method tile's film (and of each panel in a model row) by default.
TILE_SIZE = 384
#: Tiles per row of the method grid.
GRID_COLUMNS = 4


class MethodLike(Protocol):
    """What a tile needs of :class:`cxrdemo.sidebyside.MethodCell` (duck-typed: this package never imports it)."""

    method: str
    name: str
    class_agnostic: bool
    cam: CamResult
    ious: tuple[tuple[str, float], ...]


def _strip(width: int, rows: Sequence[Row], side: int, n_rows: int | None = None) -> Image.Image:
    """A dark strip ``width`` wide holding ``rows`` (padded to ``n_rows`` lines so that tiles line up)."""
    scale = scale_for(side)
    px = scale.small
    w, h, key_len = block_size(rows, px, scale)
    lines = max(len(rows), n_rows or 0)
    strip = Image.new("RGB", (width, lines * line_height(px) + 2 * scale.pad), BACKGROUND)
    if rows:
        draw_block(ImageDraw.Draw(strip, "RGBA"), (0, 0, width - 1, h - 1), rows, px, scale, key_len)
    return strip



def tile_heading(cell: MethodLike, analysis: Analysis) -> list[Row]:
    """The rows above a tile: the method, then what its map explains (class and probability, or class-agnostic)."""
    if cell.class_agnostic:
        what = CLASS_AGNOSTIC
    else:
        p = probability_of(analysis, cell.cam.target)
        what = f"of {pretty(cell.cam.target)}" + (f" (p {p.probability:.2f})" if p is not None else "")
    return [Row(cell.name or method_name(cell.method), TEXT, bold=True), Row(what, MUTED)]


def tile_rows(cell: MethodLike, truth: Sequence[Box]) -> list[Row]:
    """The rows below a tile: the CAM box (or that no region reached the threshold), the ground-truth key, and one
    IoU line per ground-truth box (or that there is none)."""
    t = cell.cam.threshold
    rows = [Row(f"{CAM.name}: map \u2265 {t}/255" if cell.cam.box is not None else f"no region \u2265 {t}/255: no CAM box", CAM.colour, CAM)]
    if not truth:
        return rows + [Row("no ground truth for this image", MUTED)]
    rows.append(Row(TRUTH.name, TRUTH.colour, TRUTH))
    names = numbered_labels([label for label, _ in cell.ious])
    for name, box, (label, value) in zip(names, truth, cell.ious):
        if cell.class_agnostic or label == cell.cam.target:
            rows.append(Row(f"{name}: CAM IoU {value:.2f}", TEXT, bold=True))
            continue
        # The box drawn is cut from the target's map; CLN scores this ground-truth box with the box cut from its own
        # class's map. Print the IoU of what is drawn first, then CLN's figure, each saying which box it is.
        drawn = 0.0 if cell.cam.box is None else iou(cell.cam.box, box)
        rows.append(Row(f"{name}: CAM IoU {drawn:.2f} (the box drawn)", TEXT, bold=True))
        rows.append(Row(f"{value:.2f} with the box of the {pretty(label)} map (CLN)", MUTED, indent=True))
    return rows


def render_method_tile(
    radiograph: Radiograph,
    analysis: Analysis,
    cell: MethodLike,
    truth: Sequence[Box] = (),
    size: int = TILE_SIZE,
    *,
    lines: tuple[int, int] | None = None,
) -> Image.Image:
    """One method: its CAM of the case's target over the film, the ground-truth boxes (solid) and its CAM box
    (dotted), under a heading (:func:`tile_heading`) and above its IoUs (:func:`tile_rows`).

    Args:
        radiograph: the film; ``analysis``: the case's analysis (size, probabilities).
        cell: the method's CAM and IoUs (``cell.ious`` in the order of ``truth``).
        truth: the ground-truth boxes (original pixels).
        size: longest side of the film in the tile.
        lines: ``(heading, rows)`` line counts to pad the strips to (tiles of a grid line up).
    """
    view = film_view(radiograph, analysis, size)
    img, draw = canvas(_overlay(view.gray, cell.cam.heatmap))
    rects = [r for b in truth if (r := view.rect(b)) is not None]
    for rect in rects:
        paint_box(img, rect, TRUTH, view.scale.line)
    cam_rect = view.rect(cell.cam.box) if cell.cam.box is not None else None
    if cam_rect is not None:
        paint_box(img, cam_rect, CAM, view.scale.line)
    if len({b.label for b in truth}) > 1:  # several classes: name each ground-truth box
        taken = [view.keep_clear]
        for box, rect in zip(truth, rects):
            view.label(draw, rect, pretty(box.label), TRUTH.colour, taken)
    head, foot = lines or (None, None)
    top = _strip(img.width, tile_heading(cell, analysis), size, head)
    bottom = _strip(img.width, tile_rows(cell, truth), size, foot)
    out = Image.new("RGB", (img.width, top.height + img.height + bottom.height), BACKGROUND)
    out.paste(top, (0, 0))
    out.paste(img, (0, top.height))
    out.paste(bottom, (0, top.height + img.height))
    return out


def tile_lines(cells: Sequence[MethodLike], analysis: Analysis, truth: Sequence[Box]) -> tuple[int, int]:
    """The most heading and IoU lines among ``cells`` (pass as ``lines`` so that every tile has the same height)."""
    return (
        max((len(tile_heading(c, analysis)) for c in cells), default=0),
        max((len(tile_rows(c, truth)) for c in cells), default=0),
    )


def render_method_tiles(
    radiograph: Radiograph, analysis: Analysis, cells: Sequence[MethodLike], truth: Sequence[Box] = (), size: int = TILE_SIZE
) -> list[Image.Image]:
    """A tile per method, all of the same size."""
    lines = tile_lines(cells, analysis, truth)
    return [render_method_tile(radiograph, analysis, c, truth, size, lines=lines) for c in cells]


def _grid(images: Sequence[Image.Image], columns: int, gap: int) -> Image.Image:
    cols = max(1, min(columns, len(images)))
    rows = -(-len(images) // cols)
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    out = Image.new("RGB", (cols * w + (cols + 1) * gap, rows * h + (rows + 1) * gap), BACKGROUND)
    for i, im in enumerate(images):
        out.paste(im, (gap + (i % cols) * (w + gap), gap + (i // cols) * (h + gap)))
    return out


def _titled(img: Image.Image, title: str, side: int) -> Image.Image:
    scale = scale_for(side)
    h = line_height(scale.font) + 2 * scale.pad
    out = Image.new("RGB", (img.width, img.height + h), BACKGROUND)
    text(ImageDraw.Draw(out), (scale.margin, scale.pad), title, scale.font, TEXT, bold=True, cache=False)
    out.paste(img, (0, h))
    return out


def grid_title(analysis: Analysis, cells: Sequence[MethodLike]) -> str:
    """``image · target · threshold · model``."""
    targets = sorted({c.cam.target for c in cells if not c.class_agnostic})
    target = ", ".join(pretty(t) for t in targets) or "class-agnostic"
    threshold = cells[0].cam.threshold if cells else ""
    arch = analysis.model.get("architecture") or "model"
    return f"{analysis.image} \u00b7 every CAM method of {target} \u00b7 box threshold {threshold} \u00b7 {arch}"


def render_method_grid(
    radiograph: Radiograph,
    analysis: Analysis,
    cells: Sequence[MethodLike],
    truth: Sequence[Box] = (),
    size: int = TILE_SIZE,
    columns: int = GRID_COLUMNS,
) -> Image.Image:
    """Every method's tile (:func:`render_method_tiles`) in a grid of ``columns``, under :func:`grid_title`, above
    :data:`~cxrdemo.render.panels.DISCLAIMER`."""
    if not cells:
        raise ValueError("no CAM method to draw")
    tiles = render_method_tiles(radiograph, analysis, cells, truth, size)
    grid = _grid(tiles, columns, max(2, scale_for(size).pad))
    return with_text_strip(_titled(grid, grid_title(analysis, cells), size), [DISCLAIMER], side=size)


# ------------------------------------------------------------------------------------------------ two models
def model_name(source: str) -> str:
    """What a heading calls the model of ``source``: a folder (an absolute path: ``/``, ``~``, ``C:\\``) by its own
    name, anything else (a named model, a Hub id ``owner/name``, a format prefix before one) as it is."""
    text = source.strip()
    if re.match(r"^(?:[/\\~]|[A-Za-z]:[/\\])", text):
        return re.split(r"[/\\]", text.rstrip("/\\"))[-1] or text
    return text


def model_heading(analysis: Analysis, tag: str) -> str:
    """``A: efficientnet_lite0 from weights (revision 4c08eb72) · top Atelectasis 0.62``: the model's name (a named
    model's, a Hub id, or its folder's name: never a fragment of a path)."""
    m = analysis.model
    source = model_name(str(m.get("source") or ""))
    top = f" \u00b7 top {pretty(analysis.top.label)} {analysis.top.probability:.2f}" if analysis.probabilities else ""
    return f"{tag}: {m.get('architecture') or 'model'} from {source} (revision {m.get('revision')}){top}"


def render_model_rows(
    radiograph: Radiograph,
    analyses: Sequence[Analysis],
    tags: Sequence[str] = ("A", "B"),
    size: int = TILE_SIZE,
    *,
    hints: Hints = NO_HINTS,
) -> Image.Image:
    """The four panels of each analysis in a row (prediction, comparison, probabilities, CAM), each row under
    :func:`model_heading`, above the disclaimer."""
    if not analyses:
        raise ValueError("no model to draw")
    gap = max(2, scale_for(size).pad)
    rows = []
    for analysis, tag in zip(analyses, tags):
        panels = render_panels(radiograph, analysis, size=size, hints=hints).as_dict()
        row = _grid([panels[name] for name in PANEL_NAMES], len(PANEL_NAMES), gap)
        rows.append(_titled(row, model_heading(analysis, tag), size))
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows)), BACKGROUND)
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return with_text_strip(out, [DISCLAIMER], side=size)
