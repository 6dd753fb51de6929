"""Panel (c): every class's probability as a ranked horizontal bar chart, each decision threshold ticked."""

from __future__ import annotations

from PIL import Image, ImageDraw

from ..results import Analysis
from .draw import BACKGROUND, GRID, HALO, MUTED, RGB, TEXT, Scale, line_height, scale_for, text, text_width
from .film import DEFAULT_SIZE, MODEL, pretty

POSITIVE: RGB = MODEL.colour  # a positive finding's bar: the model's colour
NEGATIVE: RGB = (0x70, 0x70, 0x70)


def _chart_header(draw: ImageDraw.ImageDraw, scale: Scale) -> int:
    """Title and key of the chart; returns the y where the bars may start."""
    m, pad, px = scale.margin, scale.pad, scale.small
    text(draw, (m, m), "Findings ranked by probability", scale.font, TEXT, bold=True)
    y = m + line_height(scale.font) + pad
    h = line_height(px)
    x = m
    for string, colour in (("positive (\u2265 threshold)", POSITIVE), ("negative", NEGATIVE)):
        draw.rectangle((x, y + h // 4, x + h // 2, y + 3 * h // 4), fill=colour)
        x += h // 2 + 1 + pad
        text(draw, (x, y), string, px, TEXT)
        x += text_width(string, px) + 3 * pad
    tick_w = max(2, scale.line)
    draw.rectangle((x, y + 1, x + tick_w - 1, y + h - 1), fill=TEXT)
    text(draw, (x + tick_w + pad, y), "decision threshold", px, TEXT)
    return y + h + 2 * pad


def render_probabilities(analysis: Analysis, size: int | None = None) -> Image.Image:
    """A ranked horizontal bar chart of every class's probability, each decision threshold ticked on its bar.

    Positive findings (probability at or above their threshold) have orange bars and bold white names, negatives
    grey bars and grey names; the value is written at the right of each row.

    Args:
        analysis: the analysis (its ``probabilities`` are already ranked).
        size: side of the square chart in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        A ``size`` x ``size`` RGB image.
    """
    side = size or DEFAULT_SIZE
    if side < 16:
        raise ValueError(f"display size {side} is too small; use at least 16 px")
    scale = scale_for(side)
    m, pad = scale.margin, scale.pad
    img = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(img)
    top = _chart_header(draw, scale)
    bottom = side - m - line_height(scale.small) - pad  # room for the axis numbers
    rows = analysis.probabilities
    if not rows:
        text(draw, (m, top), "no probabilities", scale.small, MUTED)
        return img

    row_h = (bottom - top) / len(rows)
    px = max(8, min(scale.font, int(row_h * 0.6)))
    label_w = max(text_width(pretty(r.label), px, True) for r in rows) + 2 * pad
    value_w = text_width("0.00", px, True) + 2 * pad
    x1 = side - m - value_w
    x0 = min(m + label_w, x1 - 10)  # absurdly narrow: the bars win over long names
    span = x1 - x0
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):  # faint grid and axis numbers
        gx = x0 + round(v * span)
        draw.line((gx, top, gx, bottom), fill=GRID, width=1)
        text(draw, (gx, bottom + pad), f"{v:g}", scale.small, MUTED, anchor="ma")
    bar_h = max(2, int(row_h * 0.62))
    tick_w = max(2, scale.line)
    for i, r in enumerate(rows):
        y_mid = round(top + (i + 0.5) * row_h)
        by1 = y_mid - bar_h // 2
        by2 = by1 + bar_h - 1
        value = min(max(float(r.probability), 0.0), 1.0)
        text_colour = TEXT if r.positive else MUTED
        text(draw, (x0 - pad, y_mid), pretty(r.label), px, text_colour, bold=r.positive, anchor="rm")
        if value > 0:
            draw.rectangle((x0, by1, x0 + max(1, round(value * span)) - 1, by2), fill=POSITIVE if r.positive else NEGATIVE)
        shown = "<0.01" if 0 < value < 0.005 else f"{value:.2f}"
        text(draw, (x1 + pad, y_mid), shown, px, text_colour, bold=r.positive, anchor="lm")
        tx = x0 + round(min(max(float(r.threshold), 0.0), 1.0) * span) - tick_w // 2
        draw.rectangle((tx - 1, by1 - pad, tx + tick_w, by2 + pad), fill=HALO)
        draw.rectangle((tx, by1 - pad, tx + tick_w - 1, by2 + pad), fill=TEXT)
    return img
