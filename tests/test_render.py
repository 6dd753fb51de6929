"""Rendering: panel sizes and modes, boxes drawn where and how they should be, the edge cases, the composite.

Synthetic radiographs (black or white films) with a hand-made :class:`Analysis` make every expected pixel known;
one test runs a real NIH radiograph through a :class:`Predictor` with random weights built in a temporary folder
(conftest's ``predictor``; the data root is ``$CXRDEMO_DATA``, default ``../shared/data/nih``; skipped if absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from cxrdemo import render
from cxrdemo.render import draw, panels as panel_mod
from cxrdemo.boxes import Box
from cxrdemo.imaging import Radiograph
from cxrdemo.render import CAM, MODEL, TRUTH
from cxrdemo.results import Analysis, CamResult, ClassProbability, IouRow

BOXED_IMAGE = "00013125_000.png"  # NIH box: Cardiomegaly

W, H = 600, 400  # synthetic film; rendered at size=600 it is drawn 1:1
CARDIO = Box(100, 120, 300, 300, "Cardiomegaly", 0.9)
NODULE = Box(400, 60, 500, 160, "Nodule", 0.6)  # below its 0.7 threshold: not drawn on the prediction panel
EFFUSION = Box(420, 250, 560, 360, "Effusion", 0.2)
TRUTH_BOX = Box(150, 150, 350, 330, "Cardiomegaly")
CAM_BOX = Box(300, 100, 450, 200, "Cardiomegaly")


def film(width: int = W, height: int = H, value: int = 0) -> Radiograph:
    return Radiograph(np.full((height, width), value, dtype=np.uint8), "synthetic.png", "png")


def heatmap() -> np.ndarray:
    """32x32 model-frame map, hot exactly over CAM_BOX on a 600x400 film (x 300..450, y 100..200)."""
    m = np.zeros((32, 32), dtype=np.float32)
    m[8:16, 16:24] = 1.0
    return m


def analysis(
    *,
    width: int = W,
    height: int = H,
    boxes: list[Box] | None = None,
    probabilities: list[ClassProbability] | None = None,
    truth: bool = True,
    cam: bool = True,
) -> Analysis:
    probs = probabilities or [
        ClassProbability("Cardiomegaly", 0.9, 0.5),
        ClassProbability("Nodule", 0.6, 0.7),
        ClassProbability("Effusion", 0.2, 0.3),
    ]
    cam_result = CamResult("gradcam", "Cardiomegaly", 127, heatmap(), CAM_BOX) if cam else None
    rows = [IouRow(TRUTH_BOX, CARDIO, CAM_BOX if cam else None, 0.42, 0.31 if cam else None)] if truth else []
    return Analysis(
        image="synthetic.png",
        width=width,
        height=height,
        model={"source": "test", "revision": "0", "architecture": "mobilenet_v3_small"},
        probabilities=probs,
        boxes=[CARDIO, NODULE, EFFUSION] if boxes is None else boxes,
        cam=cam_result,
        ground_truth=[TRUTH_BOX] if truth else [],
        ious=rows,
    )


def px(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in img.getpixel((x, y)))[:3]  # type: ignore[return-value]


def count_colour(img: Image.Image, colour: tuple[int, int, int]) -> int:
    return int(np.all(np.asarray(img) == colour, axis=-1).sum())


# ---------------------------------------------------------------------------------------------- geometry
def test_display_size_keeps_aspect_and_never_exceeds_size() -> None:
    assert render.display_size(1024, 1024, 768) == (768, 768)
    assert render.display_size(2000, 1000, 768) == (768, 384)
    assert render.display_size(256, 256, 512) == (512, 512)  # small films are enlarged to size, not beyond
    with pytest.raises(ValueError):
        render.display_size(100, 100, 4)


def test_label_flips_below_at_top_edge_and_stays_inside() -> None:
    # A box touching the top: the label cannot go above, so it goes just below the box.
    spot = draw.place_label((10, 0, 100, 50), 80, 20, (200, 200), [], 2)
    assert spot[1] == 52 and spot[3] < 200
    # A box at the right edge: the label slides left to stay inside.
    spot = draw.place_label((180, 100, 199, 150), 80, 20, (200, 200), [], 2)
    assert spot[0] >= 0 and spot[2] <= 199 and spot[3] < 100
    # A full-height box: the label goes inside its top.
    spot = draw.place_label((0, 0, 199, 199), 80, 20, (200, 200), [], 2)
    assert spot[1] >= 0 and spot[3] <= 199
    # A second label avoids the first.
    first = draw.place_label((50, 100, 150, 150), 80, 20, (200, 200), [], 2)
    second = draw.place_label((50, 100, 150, 150), 80, 20, (200, 200), [first], 2)
    assert draw.overlap(first, second) == 0


def test_fonts_are_truetype_and_scale_with_size() -> None:
    assert isinstance(draw.font(14), ImageFont.FreeTypeFont)
    assert "DejaVu" in draw.font(14).getname()[0]
    assert draw.scale_for(1024).font > draw.scale_for(512).font >= 12
    assert draw.scale_for(1024).line > draw.scale_for(512).line >= 2


# -------------------------------------------------------------------------------------------- prediction
def test_prediction_draws_positive_boxes_dashed_in_model_colour() -> None:
    img = render.render_prediction(film(), analysis(), size=600)
    assert img.size == (W, H) and img.mode == "RGB"
    on, off = draw.pattern(MODEL.line, draw.scale_for(600).line)  # type: ignore[misc]
    # Cardiomegaly (0.9 >= 0.5): corner and the first dash are orange, the first gap is film (black) again.
    assert px(img, 100, 120) == MODEL.colour
    assert px(img, 100, 120 + on - 1) == MODEL.colour
    assert px(img, 100, 120 + on + 1) == (0, 0, 0)
    assert px(img, 299, 299) == MODEL.colour  # bottom-right corner: the stroke lies inside the box
    assert px(img, 302, 302) == (0, 0, 0)  # ...and nothing outside it
    # Nodule (0.6 < 0.7) and Effusion (0.2 < 0.3) are negative: not drawn.
    assert px(img, 400, 60) == (0, 0, 0)
    assert px(img, 420, 250) == (0, 0, 0)
    assert count_colour(img, TRUTH.colour) == 0 and count_colour(img, CAM.colour) == 0


def test_prediction_shows_top_box_when_nothing_is_positive() -> None:
    probs = [ClassProbability("Cardiomegaly", 0.4, 0.5), ClassProbability("Nodule", 0.3, 0.7)]
    img = render.render_prediction(film(), analysis(probabilities=probs, boxes=[Box(*CARDIO.xyxy, "Cardiomegaly", 0.4), NODULE]), 600)
    assert px(img, 100, 120) == MODEL.colour
    assert px(img, 400, 60) == (0, 0, 0)


def test_prediction_caps_the_number_of_boxes() -> None:
    labels = ["A", "B", "C", "D", "E"]
    boxes = [Box(20 + 110 * i, 200, 110 + 110 * i, 300, label, 0.9 - 0.1 * i) for i, label in enumerate(labels)]
    probs = [ClassProbability(b.label, b.score or 0.0, 0.1) for b in boxes]
    img = render.render_prediction(film(), analysis(boxes=boxes, probabilities=probs, truth=False), 600)
    drawn = [px(img, int(b.x1), 299) == MODEL.colour for b in boxes]
    assert drawn == [True] * render.MAX_PREDICTION_BOXES + [False] * (len(boxes) - render.MAX_PREDICTION_BOXES)


# -------------------------------------------------------------------------------------------- comparison
def test_comparison_draws_truth_model_and_cam_boxes_in_their_styles() -> None:
    a = analysis()
    img = render.render_comparison(film(), a, size=600)
    assert img.size == (W, H) and img.mode == "RGB"
    assert px(img, 150, 240) == TRUTH.colour  # middle of the solid truth box's left edge
    assert px(img, 349, 240) == TRUTH.colour  # ...and of its right edge
    assert px(img, 100, 120) == MODEL.colour  # dashed model box, corner
    assert px(img, 449, 199) == CAM.colour  # dotted CAM box, bottom-right corner
    dot = draw.scale_for(600).line
    assert px(img, 449, 199 - dot - 1) != CAM.colour  # a gap between dots
    rows = [r.text for r in panel_mod._comparison_rows(a)]
    assert "Cardiomegaly: IoU model 0.42 \u00b7 CAM 0.31" in rows
    assert count_colour(img, (255, 255, 255)) > 50  # the legend's white text is there


def test_comparison_without_ground_truth_says_so_and_shows_model_and_cam() -> None:
    a = analysis(truth=False)
    img = render.render_comparison(film(), a, size=600)
    assert count_colour(img, TRUTH.colour) == 0
    assert px(img, 100, 120) == MODEL.colour  # the model's top box
    assert px(img, 300, 100) == CAM.colour  # the CAM box
    assert "no ground truth for this image" in [r.text for r in panel_mod._comparison_rows(a)]
    hinted = panel_mod._comparison_rows(a, render.Hints(no_truth="draw or type a box"))
    assert "no ground truth for this image: draw or type a box" in [r.text for r in hinted]


def test_comparison_without_cam() -> None:
    a = analysis(cam=False)
    img = render.render_comparison(film(), a, size=600)
    assert px(img, 150, 240) == TRUTH.colour
    assert px(img, 300, 100) != CAM.colour and px(img, 449, 199) != CAM.colour  # no CAM box
    assert any("CAM n/a" in r.text for r in panel_mod._comparison_rows(a))


# --------------------------------------------------------------------------------------------------- CAM
def test_cam_overlay_is_stretched_to_the_film_with_its_box() -> None:
    img = render.render_cam(film(), analysis(), size=600)
    assert img.size == (W, H) and img.mode == "RGB"
    hot, cold = np.array(px(img, 375, 150)), np.array(px(img, 560, 380))
    lut = draw.colormap_lut(render.CAM_COLORMAP)[:, 0, :].astype(float)
    expected_hot = lut[255] * render.CAM_ALPHA[1]  # black film: only the map's colour, at full heat's opacity
    assert np.abs(hot - expected_hot).max() <= 2
    assert np.abs(cold - lut[0] * render.CAM_ALPHA[0]).max() <= 2
    assert px(img, 300, 100) == CAM.colour  # CAM box corner, dotted
    assert count_colour(img, MODEL.colour) == 0 and count_colour(img, TRUTH.colour) == 0


def test_cam_panel_without_cam_says_so() -> None:
    img = render.render_cam(film(value=255), analysis(cam=False), size=600)
    assert img.size == (W, H)
    assert px(img, 5, 5) == (102, 102, 102)  # the film, dimmed
    assert count_colour(img, (255, 255, 255)) > 50  # the message


# ------------------------------------------------------------------------------------------ probabilities
def _bar_and_tick(img: Image.Image) -> tuple[int, int, tuple[int, int, int]]:
    """(right end of the bar, tick column, bar colour) of a one-class chart."""
    arr = np.asarray(img)
    for colour in (render.POSITIVE, render.NEGATIVE):
        mask = np.all(arr == colour, axis=-1)
        rows = np.nonzero(mask.sum(axis=1) > 20)[0]  # the bar's rows (the key's swatch is narrower)
        if len(rows):
            band = arr[rows.min() : rows.max() + 1]
            tick_cols = np.nonzero(np.all(band == (255, 255, 255), axis=-1).all(axis=0))[0]
            assert len(tick_cols), "no threshold tick across the bar"
            return int(np.nonzero(mask[rows].any(axis=0))[0].max()), int(tick_cols.mean()), colour
    raise AssertionError("no bar drawn")


def test_probability_chart_bars_ticks_and_positives() -> None:
    def chart(p: float, t: float) -> Image.Image:
        return render.render_probabilities(analysis(probabilities=[ClassProbability("Nodule", p, t)]), 400)

    img = chart(0.6, 0.3)
    assert img.size == (400, 400) and img.mode == "RGB"
    end_60, tick_30, colour = _bar_and_tick(img)
    assert colour == render.POSITIVE  # 0.6 >= 0.3
    end_30, tick_80, colour = _bar_and_tick(chart(0.3, 0.8))
    assert colour == render.NEGATIVE  # 0.3 < 0.8
    # Positions are linear in the value: the 0.3 tick lies where the 0.3 bar ends; the 0.8 tick is further right.
    assert abs(tick_30 - end_30) <= 3
    assert tick_80 > end_60 > end_30
    x0 = end_30 - (end_60 - end_30)  # where a bar of 0 would end
    assert abs((tick_80 - x0) / (end_60 - x0) - 0.8 / 0.6) < 0.05


def test_probability_chart_ranks_positive_first_and_handles_many_classes() -> None:
    a = analysis()
    img = np.asarray(render.render_probabilities(a, 512))
    ys_pos = np.nonzero(np.all(img == render.POSITIVE, axis=-1))[0]
    ys_neg = np.nonzero(np.all(img == render.NEGATIVE, axis=-1))[0]
    key_bottom = 80  # the key's swatches sit in the header
    assert ys_pos[ys_pos > key_bottom].min() < ys_neg[ys_neg > key_bottom].min()
    many = [ClassProbability(f"class_{i}", 1 - i / 40, 0.5) for i in range(40)]
    assert render.render_probabilities(analysis(probabilities=many), 512).size == (512, 512)


# ------------------------------------------------------------------------------------ sizes, composite
def test_small_image_is_enlarged_to_size_and_boxes_scaled() -> None:
    small = film(256, 256)
    box = Box(40, 50, 140, 150, "Cardiomegaly", 0.9)
    a = analysis(width=256, height=256, boxes=[box], truth=False, cam=False)
    img = render.render_prediction(small, a, size=512)
    assert img.size == (512, 512)
    assert px(img, 80, 100) == MODEL.colour and px(img, 279, 299) == MODEL.colour
    assert render.render_prediction(small, a).size == (render.DEFAULT_SIZE, render.DEFAULT_SIZE)


def test_large_image_is_shrunk_once_and_boxes_scaled() -> None:
    big = film(1200, 800)
    box = Box(200, 240, 600, 600, "Cardiomegaly", 0.9)
    a = analysis(width=1200, height=800, boxes=[box], truth=False, cam=False)
    img = render.render_prediction(big, a, size=600)
    assert img.size == (600, 400)
    assert px(img, 100, 120) == MODEL.colour and px(img, 299, 299) == MODEL.colour
    assert px(img, 302, 302) == (0, 0, 0)


def test_very_wide_image_and_composite_layout() -> None:
    wide = film(1600, 200, value=200)
    a = analysis(width=1600, height=200)
    panels = render.render_panels(wide, a, size=768)
    for name, img in panels.as_dict().items():
        expected = (768, 768) if name == "probabilities" else (768, 96)
        assert img.size == expected and img.mode == "RGB", name
    assert "synthetic.png" in panels.title and "mobilenet_v3_small" in panels.title and "Cardiomegaly" in panels.title
    out = render.composite(panels, footer_lines=[])
    cell = 768
    gap = (out.width - 2 * cell) // 3
    title_h = out.height - 2 * cell - 3 * gap
    assert 0 < gap < 20 and 10 < title_h < 60
    # Each panel sits, unchanged, centred in its cell.
    for i, img in enumerate([panels.prediction, panels.comparison, panels.probabilities, panels.cam]):
        x = gap + (i % 2) * (cell + gap) + (cell - img.width) // 2
        y = title_h + gap + (i // 2) * (cell + gap) + (cell - img.height) // 2
        assert np.array_equal(np.asarray(out.crop((x, y, x + img.width, y + img.height))), np.asarray(img))


def test_render_panels_matches_the_single_panel_functions() -> None:
    rad, a = film(value=90), analysis()
    panels = render.render_panels(rad, a, size=500)
    assert np.array_equal(np.asarray(panels.prediction), np.asarray(render.render_prediction(rad, a, 500)))
    assert np.array_equal(np.asarray(panels.comparison), np.asarray(render.render_comparison(rad, a, 500)))
    assert np.array_equal(np.asarray(panels.cam), np.asarray(render.render_cam(rad, a, 500)))
    assert np.array_equal(np.asarray(panels.probabilities), np.asarray(render.render_probabilities(a, 500)))
    assert rad.pixels.max() == 90 and rad.pixels.min() == 90  # the radiograph is never drawn on


# --------------------------------------------------------------------------------------------- real film
def test_real_radiograph_through_the_predictor(images_dir: Path, predictor) -> None:
    """A shared NIH film with a radiologist's box, through a random-weights model (conftest builds it in tmp)."""
    from cxrdemo.imaging import load_image

    rad = load_image(images_dir / BOXED_IMAGE)
    a = predictor.analyse(rad)
    assert a.ground_truth, "the NIH box of this image should be found"
    panels = render.render_panels(rad, a, size=512)
    assert [im.size for im in panels.as_dict().values()] == [(512, 512)] * 4
    assert count_colour(panels.comparison, TRUTH.colour) > 100
    assert count_colour(panels.prediction, MODEL.colour) > 50
    film_512 = np.asarray(Image.fromarray(rad.pixels).resize((512, 512)).convert("RGB")).astype(int)
    assert np.abs(np.asarray(panels.cam).astype(int) - film_512).mean() > 5  # the overlay changed the film
    assert render.composite(panels).size[0] > 1024
