"""Reference levels, verdicts, honest intervals and the progress line of an audit (issue 20, items 1-4), without a
model: hand-made cases and maps whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from cxrdemo.audit.maps import map_metrics, resize_map
from cxrdemo.audit.progress import ProgressTracker, format_seconds
from cxrdemo.audit.reference import REFERENCE_METRICS, _MapFacts, center_map, reference_values, uniform_map
from cxrdemo.audit.verdict import MIN_IMAGES, TOO_FEW, call, method_verdict, withhold_intervals
from cxrdemo.boxes import Box, iou
from cxrdemo.audit.result import CaseRow
from cxrdemo.explain import cam_box
from cxrdemo.report import fmt_estimate


def _case(k: int, box: list[float], metrics: dict[str, float], cam_iou: float, size: int = 200) -> CaseRow:
    return CaseRow(image=f"img{k}.png", width=size, height=size, label="Nodule", box=box, box_index=0, probability=0.5,
                   model_iou=0.0, prior_iou=0.0, method="gradcam", cam_iou=cam_iou, metrics=metrics)  # fmt: skip


@pytest.mark.parametrize("which", ["center", "uniform"])
def test_the_fast_reference_metrics_equal_map_metrics(which: str) -> None:
    """The per-box shortcut must give exactly what map_metrics and cam_box give on the same resized map."""
    heat = center_map(32) if which == "center" else uniform_map(32, seed=3)
    facts = _MapFacts.of(heat, 150, 120, 127)
    full = resize_map(heat, 150, 120)
    for box in (Box(10.2, 5.5, 60.7, 80.1), Box(0, 0, 150, 120), Box(70, 50, 90, 70), Box(149.9, 119.9, 150, 120)):
        for tol in (0.0, 7.5):
            got = facts.metrics(box, tol)
            want = map_metrics(full, box, tol)
            cbox = cam_box(heat, 127, width=150, height=120)
            want["cam_iou"] = iou(box, cbox) if cbox is not None else 0.0
            assert set(got) == set(REFERENCE_METRICS)
            for key in REFERENCE_METRICS:  # the same arithmetic on the same pixels: equal to rounding of a sum
                assert got[key] == pytest.approx(want[key], abs=1e-9), (which, box, tol, key)


def test_uniform_chance_is_the_box_share_of_the_image() -> None:
    # A 50 x 40 box on a 200 x 200 image: 2000 of 40000 pixels, 0.05; grown by 5 px: 60 x 50 = 3000, 0.075.
    cases = [_case(0, [10, 10, 60, 50], dict.fromkeys(REFERENCE_METRICS[:-1], 0.0), 0.0)]
    refs = reference_values(cases, 32, 127, tolerance=5.0)
    assert refs["uniform"][0]["energy_in_box"] == 2000 / 40000
    assert refs["uniform"][0]["pointing_game"] == 3000 / 40000
    # The centred map puts its maximum in the middle: a central box is hit, a corner box is not.
    central = reference_values([_case(0, [80, 80, 120, 120], {}, 0.0)], 32, 127)["center"][0]
    corner = reference_values([_case(0, [0, 0, 30, 30], {}, 0.0)], 32, 127)["center"][0]
    assert central["pointing_game"] == 1.0 and corner["pointing_game"] == 0.0
    assert central["energy_in_box"] > 40 * 40 / 200**2 > corner["energy_in_box"]  # above its area share: centre mass


def _verdict(n_images: int, energy: float):
    """``n_images`` boxes (one per image) of a quarter of the image whose method energy is ``energy`` (+ a spread)."""
    rng = np.random.default_rng(0)
    cases = []
    for k in range(n_images):
        value = float(np.clip(energy + rng.normal(0, 0.02), 0, 1))
        metrics = {m: value for m in REFERENCE_METRICS[:-1]}
        cases.append(_case(k, [0, 0, 100, 100], metrics, value))  # the top-left quarter: chance 0.25
    refs = reference_values(cases, 32, 127)
    return method_verdict("gradcam", cases, refs, n_resamples=200, seed=0)


def test_verdicts_above_below_and_too_few() -> None:
    above = _verdict(20, 0.6)
    assert above["against"]["uniform"]["energy_in_box"]["verdict"] == "above"
    assert above["against"]["uniform"]["energy_in_box"]["reference"] == pytest.approx(0.25)
    assert above["n_boxes"] == 20 and above["n_images"] == 20 and "20 boxes on 20 images" in above["line"]
    assert "energy in box" in above["line"] and "above chance (0.250" in above["line"]
    below = _verdict(20, 0.05)
    assert below["against"]["uniform"]["energy_in_box"]["verdict"] == "below"
    few = _verdict(MIN_IMAGES - 1, 0.6)
    assert few["against"]["uniform"]["energy_in_box"]["verdict"] == "too few images"
    assert few["against"]["uniform"]["energy_in_box"]["difference"]["low"] is None
    assert "no verdict" in few["line"] and f"at least {MIN_IMAGES} images" in few["line"] and "[" not in few["line"]


def test_call_reads_the_interval() -> None:
    assert call({"value": 0.1, "low": 0.01, "high": 0.2, "n": 12}) == "above"
    assert call({"value": -0.1, "low": -0.2, "high": -0.01, "n": 12}) == "below"
    assert call({"value": 0.1, "low": -0.01, "high": 0.2, "n": 12}) == "not distinguishable"
    assert call({"value": 0.1, "low": 0.05, "high": 0.2, "n": 3}) == "too few images"
    assert call({"value": None, "low": None, "high": None, "n": 0}) == "undefined"


def test_no_interval_from_fewer_than_the_minimum() -> None:
    doc = {"a": {"value": 0.1, "low": 0.1, "high": 0.1, "n": 1}, "b": [{"value": 0.806, "low": 0.806, "high": 0.806, "n": 4}],
           "c": {"value": 0.5, "low": 0.4, "high": 0.6, "n": MIN_IMAGES}, "d": "text"}  # fmt: skip
    withhold_intervals(doc)
    assert doc["a"]["low"] is None and doc["a"]["interval"] == TOO_FEW and doc["b"][0]["high"] is None
    assert doc["c"]["low"] == 0.4 and "interval" not in doc["c"] and doc["d"] == "text"
    assert fmt_estimate(doc["a"], 2) == "0.10 (n = 1: too few for a CI)"
    assert fmt_estimate(doc["c"], 2) == "0.50 [0.40, 0.60]"


def test_progress_names_stages_counts_and_measured_time_left() -> None:
    now = [0.0]
    tracker = ProgressTracker(clock=lambda: now[0])
    assert tracker.update(0, 1, "loading") == "Loading the model and the data set."
    now[0] = 40.0
    tracker.update(0, 8, "images")  # the plan: the 40 s belong to loading
    tracker.update(0, 2, "road")
    assert tracker.seconds_left() is None and tracker.fraction() == 0.0
    now[0] = 44.0
    line = tracker.update(4, 8, "images")  # 4 images in 4 s
    assert line.startswith("Forward pass and CAMs: 4 of 8 images") and "measured after the first image" in line
    now[0] = 60.0
    line = tracker.update(1, 2, "road")  # one ROAD image in 16 s
    # left: 4 images x 1 s + 1 ROAD image x 16 s = 20 s
    assert tracker.seconds_left() == pytest.approx(20.0) and line.startswith("ROAD (faithfulness): 1 of 2 images")
    assert "forward pass and CAMs 4 of 8" in line and line.endswith("about 20 s left")
    assert 0 < tracker.fraction() < 1
    assert tracker.update(0, 1, "statistics").startswith("Statistics") and tracker.fraction() == 0.95
    assert format_seconds(125) == "2 min" and format_seconds(3 * 3600 + 300) == "3 h 05 min"


def test_evaluate_limit_takes_the_first_labelled_images_boxed_first(data_dir) -> None:
    import argparse

    from cxrdemo.audit.selection import limit_names
    from cxrdemo.errors import InputError
    from cxrdemo.evaluate import add_evaluate_arguments, options_from_args
    from cxrdemo.datasets.nih import read_box_csv

    images, labels, boxes = data_dir / "images", data_dir / "labels.csv", data_dir / "boxes.csv"
    boxed = sorted(read_box_csv(boxes))
    names = limit_names(images, labels, boxes, len(boxed) + 2)
    assert names[: len(boxed)] == boxed and len(names) == len(boxed) + 2 and not set(names[len(boxed):]) & set(boxed)
    parser = add_evaluate_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--images", str(images), "--labels", str(labels), "--boxes", str(boxes), "--limit", "3"])
    assert options_from_args(args, data_dir / "out").names == boxed[:3]
    bad = parser.parse_args(["--images", str(images), "--labels", str(labels), "--limit", "-1"])
    with pytest.raises(InputError, match="--limit -1 must be 0"):
        options_from_args(bad, data_dir / "out")


# ------------------------------------------------------------------------------------------------ one look
def test_case_picture_uses_the_panels_box_styles_and_colour_map() -> None:
    from cxrdemo.render import CAM_COLORMAP
    from cxrdemo.render.casepicture import GAP, colour_gradient, legend_html, render_case_picture
    from cxrdemo.render.draw import colormap_lut
    from cxrdemo.render.film import CAM, MODEL, TRUTH

    film = np.full((100, 100), 128, dtype=np.uint8)  # a synthetic grey film (no radiograph)
    heat = np.zeros((16, 16), dtype=np.float32)
    truth, model, cam = Box(10, 10, 50, 50, "Nodule"), Box(55, 55, 95, 95, "Nodule"), Box(5, 60, 45, 95, "Nodule")
    pic = np.asarray(render_case_picture(film, heat, 200, 200, truth, model, cam))  # boxes in 200 px: halved
    assert pic.shape == (100, 2 * 100 + GAP, 3)
    # The solid truth box's top edge (y = 5, x = 5..24 in the picture) is TRUTH's colour: the same style as panel (b).
    assert tuple(pic[6, 15]) == TRUTH.colour
    left_colours = {tuple(v) for v in pic[:, :100].reshape(-1, 3)}
    assert MODEL.colour in left_colours and CAM.colour in left_colours
    # The right panel (the CAM over the film, as panel (d)) carries the truth and CAM boxes in the same styles.
    right = pic[:, 100 + GAP :]
    assert CAM.colour in {tuple(v) for v in right.reshape(-1, 3)} and TRUTH.colour in {tuple(v) for v in right.reshape(-1, 3)}
    legend = legend_html()
    for style in (TRUTH, MODEL, CAM):
        assert f"rgb({style.colour[0]},{style.colour[1]},{style.colour[2]})" in legend and f"({style.line})" in legend
    low = colormap_lut(CAM_COLORMAP)[0, 0]
    assert colour_gradient().startswith(f"linear-gradient(to right, rgb({low[0]},{low[1]},{low[2]})")


def test_gallery_page_has_the_legend_verdicts_and_a_phone_layout() -> None:
    from cxrdemo.audit.gallery import gallery_html
    from cxrdemo.audit.result import AuditResult
    from cxrdemo.evalresult import EvalResult
    from cxrdemo.render.casepicture import legend_html

    cases = [_case(k, [0, 0, 100, 100], {m: 0.5 for m in REFERENCE_METRICS[:-1]}, 0.5) for k in range(12)]
    refs = reference_values(cases, 32, 127)
    from cxrdemo.audit.verdict import reference_summary

    entry = {m: {"overall": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 12}} for m in REFERENCE_METRICS}
    entry["verdict"] = method_verdict("gradcam", cases, refs, n_resamples=100, seed=0)
    ev = EvalResult(n_images=12, n_boxes=12, auc={}, mean_auc=None, iou_accuracy={}, cam_iou_accuracy={}, prior_iou_accuracy={},
                    model={"architecture": "tiny", "source": "test"}, timings={}, classes=[], box_classes=[])  # fmt: skip
    result = AuditResult(evaluation=ev, methods=["gradcam"], cases=cases, plausibility={"methods": {"gradcam": entry}},
                         plausibility_reference=reference_summary(refs, cases, 100, 0))  # fmt: skip
    page = gallery_html(result)
    assert "name='viewport'" in page and "@media (max-width: 720px)" in page and "table.cases thead{display:none}" in page
    assert legend_html(style_tag=False) in page and entry["verdict"]["line"] in page
    assert "uniformly random map (chance)" in page and "fixed centred map (centre bias)" in page
    assert page.count("data-title='Energy in box'") == 12  # every card names its numbers on a phone
    # these cases carry no CAM box: each card says why its CAM-box numbers are 0
    assert page.count("no CAM box: no region of the map reaches the box threshold") == 12
