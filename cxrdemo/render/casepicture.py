"""One audit case as a picture, and the legend that goes with it: the audit's gallery (``gallery.html`` and the
app's audit tab) draws with the single-case panels' kit, so the two look like one product.

- :func:`render_case_picture`: two panels side by side: the film with the ground-truth box, the model's box and
  the CAM box (as panel (b), the comparison), and the CAM over the film with the ground-truth and CAM boxes (as
  panel (d)); the same box styles (:data:`.view.TRUTH`, :data:`.view.MODEL`, :data:`.view.CAM`: colour and line
  style), line widths, colour map (:data:`.panels.CAM_COLORMAP`) and opacity (:data:`.panels.CAM_ALPHA`).
- :func:`legend_html`: the key of those styles and of the colour map as HTML (used by ``gallery.html`` and by the
  audit tab above its thumbnails), built from the same constants.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
from PIL import Image

from ..boxes import Box
from .draw import BoxStyle, colormap_lut, paint_box, scale_for
from .panels import CAM_COLORMAP, _overlay
from .film import CAM, MODEL, TRUTH, View

#: White gap between the two panels (pixels).
GAP = 4


def _view(film: np.ndarray, width: int, height: int) -> View:
    gray = np.ascontiguousarray(film if film.ndim == 2 else film[..., 0]).astype(np.uint8)
    h, w = gray.shape
    return View(Image.fromarray(gray, "L").convert("RGB"), gray, w / width, h / height, scale_for(max(w, h)))


def _paint(img: Image.Image, view: View, boxes: Sequence[tuple[Box | None, BoxStyle]]) -> None:
    for box, style in boxes:
        rect = view.rect(box) if box is not None else None
        if rect is not None:
            paint_box(img, rect, style, view.scale.line)


def mask_outline(mask: np.ndarray, size: tuple[int, int], line: int) -> np.ndarray:
    """The outline, ``line`` pixels wide, of a ground-truth mask resized (nearest neighbour) to ``size`` = (w, h):
    the mask's pixels that an erosion by ``line`` pixels removes (boolean ``(h, w)``)."""
    from scipy.ndimage import binary_erosion

    small = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, "L").resize(size, Image.Resampling.NEAREST)) > 127
    if not small.any():
        return small
    inner = binary_erosion(small, iterations=max(1, int(line)), border_value=0)
    return small & ~inner


def _paint_masks(img: Image.Image, masks: Sequence[np.ndarray], line: int) -> None:
    pixels = np.asarray(img).copy()
    for m in masks:
        pixels[mask_outline(m, img.size, line)] = TRUTH.colour
    img.paste(Image.fromarray(pixels, "RGB"))


def render_case_picture(
    film: np.ndarray, heatmap: np.ndarray, width: int, height: int, truth: Box, model_box: Box | None, cam_box: Box | None,
    truth_masks: Sequence[np.ndarray] | None = None,
) -> Image.Image:
    """The case's two panels side by side (see the module doc).

    Args:
        film: the whole radiograph, ``(h, w)`` uint8, at any size (e.g. a thumbnail); boxes are scaled to it.
        heatmap: the CAM of the case's class in the model frame, values in [0, 1].
        width, height: the original image's size (the boxes' pixels).
        truth: the ground-truth box; ``model_box``, ``cam_box``: the predicted boxes (``None``: none).
        truth_masks: when the truth is a mask (one per reader), their outlines are drawn in the ground truth's
            colour instead of the ``truth`` box (each mask ``(height, width)`` boolean).
    """
    view = _view(film, width, height)
    left = view.film.copy()
    shown = None if truth_masks else truth
    _paint(left, view, [(cam_box, CAM), (model_box, MODEL), (shown, TRUTH)])
    right = _overlay(view.gray, heatmap)
    _paint(right, view, [(cam_box, CAM), (shown, TRUTH)])
    if truth_masks:
        _paint_masks(left, truth_masks, view.scale.line)
        _paint_masks(right, truth_masks, view.scale.line)
    w, h = left.size
    both = Image.new("RGB", (2 * w + GAP, h), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (w + GAP, 0))
    return both


def render_detection_picture(film: np.ndarray, width: int, height: int, truth: Sequence[Box], predicted: Sequence[Box]) -> Image.Image:
    """A detector's image for the audit's gallery: the film with every ground-truth box (:data:`.film.TRUTH`) and
    the detector's boxes at its operating point (:data:`.film.MODEL`), boxes in the original ``width`` x ``height``
    pixels scaled to ``film`` (any size, e.g. a thumbnail)."""
    view = _view(film, width, height)
    img = view.film.copy()
    _paint(img, view, [*((b, MODEL) for b in predicted), *((b, TRUTH) for b in truth)])
    return img


_CSS_LINE = {"solid": "solid", "dashed": "dashed", "dotted": "dotted"}


def _swatch(style: BoxStyle) -> str:
    r, g, b = style.colour
    return (f"<span class='cxr-key' style='border-top:3px {_CSS_LINE.get(style.line, 'solid')} rgb({r},{g},{b})'></span>"
            f"{html.escape(style.name)} ({html.escape(style.line)})")  # fmt: skip


def colour_gradient(stops: int = 9) -> str:
    """The CAM colour map as a CSS ``linear-gradient`` (low on the left)."""
    lut = colormap_lut(CAM_COLORMAP)[:, 0, :]
    picks = [lut[round(k * 255 / (stops - 1))] for k in range(stops)]
    return "linear-gradient(to right, " + ", ".join(f"rgb({r},{g},{b})" for r, g, b in picks) + ")"


#: The legend's CSS (scoped by its class names; used inline by the gallery page and the app).
LEGEND_CSS = (
    ".cxr-legend{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;font-size:13px;line-height:1.4}"
    ".cxr-legend>span{white-space:nowrap}"
    ".cxr-key{display:inline-block;width:26px;height:0;vertical-align:middle;margin-right:5px;"
    "box-shadow:0 0 0 1px rgba(0,0,0,.15)}"
    ".cxr-bar{display:inline-block;width:90px;height:10px;vertical-align:middle;margin:0 5px;border-radius:2px}"
)


def legend_html(style_tag: bool = True) -> str:
    """The key of the case pictures: the three box styles, the two panels, the colour map (low to high)."""
    parts = [_swatch(TRUTH), _swatch(MODEL), _swatch(CAM)]
    bar = f"<span>CAM: low<span class='cxr-bar' style='background:{colour_gradient()}'></span>high</span>"
    body = (
        "<div class='cxr-legend'>"
        + "".join(f"<span>{p}</span>" for p in parts)
        + bar
        + "<span>left: the film and the boxes; right: the CAM over the film</span></div>"
    )
    return (f"<style>{LEGEND_CSS}</style>" if style_tag else "") + body
