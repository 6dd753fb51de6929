"""cxrdemo.render.palette.exact_palette: the chart as a palette PNG is the same picture, pixel for pixel (no
tolerance: the conversion is a lookup, not a quantisation), on the chart of a real NIH radiograph's analysis and
on synthetic images at the 256-colour edge."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cxrdemo import render
from cxrdemo.render.palette import MAX_PALETTE_COLOURS, exact_palette
from test_render import analysis, film


def png_round_trip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded.convert("RGB")


def assert_same_pixels(a: Image.Image, b: Image.Image) -> None:
    assert a.size == b.size
    assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_the_chart_of_a_real_radiograph_is_a_palette_png_of_the_same_pixels(images_dir) -> None:
    from cxrdemo.imaging import load_image

    files = sorted(images_dir.glob("*.png"))[:1]
    if not files:
        pytest.skip(f"no NIH PNGs in {images_dir}")
    panels = render.render_panels(load_image(files[0]), analysis(), size=768)
    chart = panels.probabilities
    assert chart.mode == "RGB"
    paletted = exact_palette(chart)
    assert paletted.mode == "P"
    assert_same_pixels(paletted, chart)
    assert_same_pixels(png_round_trip(paletted), chart)
    # A film panel (grays plus coloured boxes and text) has more than 256 colours: left as it is.
    assert exact_palette(panels.cam) is panels.cam


def test_synthetic_chart_and_small_panels() -> None:
    panels = render.render_panels(film(value=90), analysis(), size=256)
    for name in ("prediction", "comparison", "probabilities", "cam"):
        image = getattr(panels, name)
        out = exact_palette(image)
        assert out is image or out.mode == "P"
        assert_same_pixels(png_round_trip(out), image)


@pytest.mark.parametrize("n_colours", [1, 2, 255, MAX_PALETTE_COLOURS])
def test_up_to_256_colours_become_an_exact_palette(n_colours: int) -> None:
    rng = np.random.default_rng(n_colours)
    colours = rng.integers(0, 256, size=(n_colours, 3), dtype=np.uint8)
    colours[:, 0] = np.arange(n_colours)  # distinct colours, including pure black and near-duplicates
    pixels = colours[rng.integers(0, n_colours, size=(37, 53))]
    pixels.reshape(-1, 3)[:n_colours] = colours  # every colour present
    image = Image.fromarray(pixels, "RGB")
    out = exact_palette(image)
    assert out.mode == "P" and len(out.getcolors(MAX_PALETTE_COLOURS)) == n_colours
    assert_same_pixels(out, image)
    assert_same_pixels(png_round_trip(out), image)


def test_more_than_256_colours_or_another_mode_is_returned_unchanged() -> None:
    ramp = np.stack(np.meshgrid(np.arange(17, dtype=np.uint8), np.arange(17, dtype=np.uint8)), -1)  # 289 colours
    image = Image.fromarray(np.dstack([ramp, np.zeros((17, 17), np.uint8)]), "RGB")
    assert exact_palette(image) is image
    for mode in ("L", "RGBA", "P"):
        other = Image.new(mode, (4, 4))
        assert exact_palette(other) is other
