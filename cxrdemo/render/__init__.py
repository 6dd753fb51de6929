"""The four panels a user sees, their composite, and the files they are written to.

- :mod:`.draw`: the generic drawing kit (fonts, cached text, dashed boxes, placement, colour maps);
- :mod:`.film`: box styles, :class:`Hints`, the film resized once for display;
- :mod:`.chart`: panel (c), the probability chart;
- :mod:`.panels`: panels (a) prediction, (b) comparison, (d) CAM, :func:`composite`;
- :mod:`.staged`: all four panels, the film resized for display while the network runs (:class:`PanelDrawing`),
  or from a finished analysis (:func:`render_panels`);
- :mod:`.files`: the one writer of panel image files (:func:`write_panels`, :func:`write_report`);
- :mod:`.grid`: side by side: every CAM method on one case (:func:`render_method_grid`), two models on one radiograph
  (:func:`render_model_rows`).

Importing this package never imports torch or :mod:`cxrdemo.explain`.
"""

from __future__ import annotations

from .chart import NEGATIVE, POSITIVE, render_probabilities
from .draw import BoxStyle, display_size
from .files import PanelWriteError, remove_older_than, write_panels, write_report
from .grid import (
    GRID_COLUMNS,
    TILE_SIZE,
    grid_title,
    model_heading,
    render_method_grid,
    render_method_tile,
    render_method_tiles,
    render_model_rows,
)
from .panels import (
    CAM_ALPHA,
    CAM_COLORMAP,
    CLASS_AGNOSTIC,
    DISCLAIMER,
    MAX_PREDICTION_BOXES,
    PANEL_NAMES,
    PANEL_TITLES,
    STATIC_BOXES,
    Panels,
    composite,
    footer_lines,
    panel_titles,
    render_cam,
    render_comparison,
    render_prediction,
)
from .staged import PanelDrawing, render_panels
from .film import BUTTON_ZONE, CAM, DEFAULT_SIZE, MODEL, TRUTH, Hints

__all__ = [
    "BUTTON_ZONE",
    "CAM",
    "CAM_ALPHA",
    "CAM_COLORMAP",
    "CLASS_AGNOSTIC",
    "DEFAULT_SIZE",
    "DISCLAIMER",
    "GRID_COLUMNS",
    "MAX_PREDICTION_BOXES",
    "MODEL",
    "NEGATIVE",
    "PANEL_NAMES",
    "PANEL_TITLES",
    "POSITIVE",
    "STATIC_BOXES",
    "TILE_SIZE",
    "TRUTH",
    "BoxStyle",
    "Hints",
    "PanelDrawing",
    "PanelWriteError",
    "Panels",
    "composite",
    "display_size",
    "footer_lines",
    "grid_title",
    "model_heading",
    "panel_titles",
    "remove_older_than",
    "render_cam",
    "render_comparison",
    "render_method_grid",
    "render_method_tile",
    "render_method_tiles",
    "render_model_rows",
    "render_panels",
    "render_prediction",
    "render_probabilities",
    "write_panels",
    "write_report",
]
