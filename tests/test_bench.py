"""``python -m cxrdemo bench``: runs end to end on real images and writes JSON of the promised shape.

Only the plumbing is tested (keys and types, the table, the target lines, progress on stderr, the argument errors),
never the speed: timings on a shared CI machine mean nothing.
"""

from __future__ import annotations

import json

import pytest

from cxrdemo.bench.pipeline import DETECTOR_STAGES, RESULT_KEYS, STAGES, _pipeline_once, bench, pick_images, summary
from cxrdemo.bench.peer import PEER_STAGES
from cxrdemo.bench.table import TARGETS, check_targets, target_lines
from cxrdemo.cli import main
from model_formats import tv_detector_folder


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_summary(value) -> None:
    assert isinstance(value, dict) and set(value) == {"median", "p90"}
    assert all(_is_number(v) and v >= 0 for v in value.values())
    assert value["p90"] >= value["median"]


def test_bench_json_keys_and_types(model_dir, images_dir, tmp_path, capsys):
    out = tmp_path / "bench" / "result.json"
    argv = ["bench", "--images", str(images_dir), "--n", "2", "--weights", str(model_dir), "--out", str(out)]
    argv += ["--threads", "1", "--device", "cpu", "--warmup", "1", "--batch-size", "2", "--cold-runs", "1"]
    assert main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert list(result) == list(RESULT_KEYS)
    assert result["device"] == "cpu"
    assert result["threads"] == 1
    assert result["architecture"] == "mobilenet_v3_small"
    assert result["n"] == 2
    assert result["panel_size"] == 768  # the default: the CLI's --render size
    assert result["cam_method"] == "gradcam" and result["ratio_basis"] == "forward_backward_ms"
    assert result["detector_boxes"] is None
    for key in ("forward_ms", "forward_backward_ms", "pipeline_ms", "pipeline_encoded_ms", "peer_ms"):
        _check_summary(result[key])
    assert list(result["stages_ms"]) == list(STAGES)
    assert all(_is_number(v) and v >= 0 for v in result["stages_ms"].values())
    assert list(result["peer_stages_ms"]) == list(PEER_STAGES)
    assert all(_is_number(v) and v >= 0 for v in result["peer_stages_ms"].values())
    for key in ("pipeline_ratio", "evaluate_images_per_s", "bare_forward_images_per_s", "evaluate_ratio", "cold_start_s", "peer_ratio"):
        assert _is_number(result[key]) and result[key] > 0, key
    # The peer runs the same network: only its resizing (torchvision on RGB) differs from cxrdemo's.
    assert 0 <= result["peer_prob_diff_max"] < 0.1
    assert set(result["targets"]) == set(TARGETS)
    assert all(t["met"] in (True, False) for t in result["targets"].values())
    captured = capsys.readouterr()
    printed = captured.out
    assert "pipeline / forward+backward" in printed and "cold start" in printed and "peer / ours" in printed
    assert sum(line.startswith(("target met:", "target MISSED:")) for line in printed.splitlines()) == len(TARGETS)
    assert "bench: single image" in captured.err and "bench: cold start" in captured.err  # progress on stderr


def test_bench_without_peer_or_cold_start(model_dir, images_dir, capsys):
    argv = ["bench", "--images", str(images_dir), "--n", "1", "--weights", str(model_dir), "--threads", "1"]
    argv += ["--warmup", "0", "--batch-size", "1", "--cold-runs", "0", "--no-peer", "--quiet", "--panel-size", "640"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "peer pipeline (ms)" in captured.out and "skipped" in captured.out
    assert "target not measured: peer pipeline / ours" in captured.out
    assert "target not measured: cold start" in captured.out
    assert captured.err == ""  # --quiet


def test_targets_met_missed_and_not_measured():
    checks = check_targets({"pipeline_ratio": 1.6, "evaluate_ratio": 0.9, "cold_start_s": None, "peer_ratio": 5.0})
    assert [checks[k]["met"] for k in ("pipeline_ratio", "evaluate_ratio", "cold_start_s", "peer_ratio")] == [False, True, None, True]
    lines = target_lines(checks)
    assert lines[0] == "target MISSED: pipeline / bare network (see ratio_basis) = 1.6 (target <= 1.5)"
    assert lines[2].startswith("target not measured: cold start")


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    """The tiny random torchvision detector, its boxes shown above 0.4 (so that some are shown on NIH films)."""
    return tv_detector_folder(tmp_path_factory.mktemp("detector"), score_threshold=0.4)


@pytest.mark.parametrize("cam, basis", [("eigencam", "forward_ms"), ("gradcam", "forward_ms + forward_backward_ms")])
def test_bench_on_a_detector(detector_dir, images_dir, cam, basis):
    result = bench(images_dir, n=2, weights=str(detector_dir), threads=1, warmup=0, cold_runs=0, rounds=1, cam=cam,
                   panel_size=256)
    assert list(result) == list(RESULT_KEYS)
    assert result["architecture"] == "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
    assert result["cam_method"] == cam and result["ratio_basis"] == basis
    for key in ("forward_ms", "forward_backward_ms", "pipeline_ms", "pipeline_encoded_ms"):
        _check_summary(result[key])
    assert list(result["stages_ms"]) == list(DETECTOR_STAGES)  # the CAM's map and box in one stage
    assert all(_is_number(v) and v >= 0 for v in result["stages_ms"].values())
    denominator = sum(result[key]["median"] for key in basis.split(" + "))
    assert result["pipeline_ratio"] == round(result["pipeline_ms"]["median"] / denominator, 3)
    for key in ("evaluate_images_per_s", "bare_forward_images_per_s", "evaluate_ratio"):
        assert _is_number(result[key]) and result[key] > 0, key
    boxes = result["detector_boxes"]
    assert set(boxes) == {"candidates", "shown", "films_left_out"} and boxes["candidates"] >= boxes["shown"] > 0
    assert boxes["films_left_out"] == 0
    # the peer pipeline is skipped for a detector, as for every other format
    assert result["peer_ms"] is None and result["peer_ratio"] is None and result["targets"]["peer_ratio"]["met"] is None
    assert result["cold_start_s"] is None


def test_bench_pipeline_boxes_are_the_predictors(detector_dir, images_dir):
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor

    predictor = Predictor.from_source(str(detector_dir), device="cpu")
    file = pick_images(images_dir, 1)[0]
    run = _pipeline_once(predictor, file, 256, "gradcam")
    inference = predictor.forward(load_image(file))
    assert run.inference.detections == inference.detections
    assert run.analysis.boxes == predictor.model_boxes(inference) and run.analysis.boxes
    assert run.analysis.cam.method == "gradcam" and run.analysis.cam.target == inference.detections[0].label  # top-1


def test_bench_unknown_cam_is_one_line_error(images_dir, capsys):
    assert main(["bench", "--images", str(images_dir), "--n", "1", "--cold-runs", "0", "--cam", "saliency"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown CAM method 'saliency'")


def test_bench_bad_folder_is_one_line_error(tmp_path, capsys):
    assert main(["bench", "--images", str(tmp_path / "missing"), "--n", "1", "--cold-runs", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not a folder" in err[0]


@pytest.mark.parametrize("size", ["10", "5000"])
def test_bench_bad_panel_size_is_one_line_error(images_dir, capsys, size):
    assert main(["bench", "--images", str(images_dir), "--n", "1", "--cold-runs", "0", "--panel-size", size]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--panel-size {size}: use 64 to 4096 pixels" in err[0]


def test_pick_images_spreads_and_caps(images_dir):
    every = pick_images(images_dir, 10_000)
    some = pick_images(images_dir, 3)
    assert len(some) == 3 and len(set(some)) == 3 and set(some) <= set(every)
    assert some[0] == every[0]


def test_summary_median_and_p90():
    assert summary([1.0, 2.0, 3.0, 4.0, 10.0]) == {"median": 3.0, "p90": pytest.approx(7.6)}


def test_detector_folder_script_writes_a_random_nih_detector(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    from cxrdemo.datasets.nih import NIH_BOX_CLASSES
    from cxrdemo.predict import Predictor

    path = Path(__file__).resolve().parents[1] / "bench" / "detector_folder.py"
    spec = importlib.util.spec_from_file_location("detector_folder", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path / "det")]) == 0
    assert "RANDOM weights" in capsys.readouterr().out
    config = json.loads((tmp_path / "det" / "config.json").read_text(encoding="utf-8"))
    assert config == {"builder": "fasterrcnn_mobilenet_v3_large_320_fpn", "classes": ["__background__", *NIH_BOX_CLASSES],
                      "min_size": 320, "max_size": 640}
    predictor = Predictor.from_source(str(tmp_path / "det"), device="cpu")
    assert predictor.is_detector and predictor.config.classes == list(NIH_BOX_CLASSES)
    assert script.main([str(tmp_path / "bad"), "--min-size", "700"]) == 1  # above --max-size 640
    assert capsys.readouterr().err.startswith("error: --min-size 700") and not (tmp_path / "bad").exists()


def test_detector_films_without_a_box_are_left_out_for_a_gradient_cam():
    import numpy as np

    from cxrdemo.bench.detector import DetectorFilms
    from cxrdemo.errors import InputError
    from cxrdemo.explain import BoxScoreTarget

    target = BoxScoreTarget(1, np.zeros(4, np.float32))
    films = DetectorFilms(["a.png", "b.png"], [np.zeros((4, 4), np.uint8)] * 2, [None, target], [0, 3])
    kept = films.with_boxes()
    assert kept.files == ["b.png"] and kept.targets == [target] and kept.candidates == [3]
    with pytest.raises(InputError, match="no box on any of the 1 films.*--cam eigencam"):
        DetectorFilms(["a.png"], [np.zeros((4, 4), np.uint8)], [None], [0]).with_boxes()
