"""Object detectors (cxrdemo.models.hf_detector, tv_detector): tiny random-initialised detectors built from configs
(nothing downloaded), loaded through cxrdemo's loader, their boxes compared with each library's own pipeline on
real shared NIH films, their refusals, the page's matching of boxes to ground truth, and their CAMs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrdemo.boxes import Box
from cxrdemo.compare import MATCH_IOU, detection_rows
from cxrdemo.errors import ConfigError, InputError, WeightsError
from cxrdemo.imaging import load_image
from cxrdemo.models.loader import detect_format
from cxrdemo.predict import Predictor
from model_formats import hf_detector_folder, tv_detector_folder, tv_detector_reference

#: Two real 1024 px 8-bit grayscale NIH films (mode "L": the pipeline's RGB conversion and cxrdemo's decoding
#: give the same pixels, so any difference would be the model path's).
FILMS = ("00000001_000.png", "00000002_000.png")
#: The transformers detectors built tiny (Deformable DETR with its plain-PyTorch deformable attention).
HF_KINDS = ("detr", "conditional_detr", "deformable_detr", "rt_detr", "yolos")


@pytest.fixture(scope="module")
def films(data_dir: Path) -> list[Path]:
    paths = [data_dir / "images" / name for name in FILMS]
    for path in paths:
        if not path.is_file() or Image.open(path).mode != "L":
            pytest.skip(f"{path.name} is not a grayscale film in the shared data")
    return paths


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("detectors")
    out = {kind: hf_detector_folder(tmp, kind) for kind in HF_KINDS}
    out["torchvision"] = tv_detector_folder(tmp)
    return out


def _middle_threshold(boxes: list[Box]) -> float:
    """A threshold between the candidates' scores, so that some boxes are shown and some are not."""
    scores = sorted({float(b.score or 0.0) for b in boxes})
    assert len(scores) >= 3, "the tiny detector should give several distinct scores"
    return scores[len(scores) // 2]


@pytest.mark.parametrize("kind", HF_KINDS)
def test_transformers_boxes_equal_the_object_detection_pipeline(kind: str, folders, films) -> None:
    """Same image processor, same model, same post-processing: the boxes and scores are the pipeline's exactly.

    The pipeline rounds its boxes to int (``box.int()``, truncation), so cxrdemo's float corners are truncated the
    same way before comparing; the scores come from the same float ops on the same pixels, so they are equal (a
    1e-6 tolerance only guards against a BLAS build reordering a sum between two calls, never seen)."""
    from transformers import pipeline

    predictor = Predictor.from_source(f"hf:{folders[kind]}", device="cpu")
    assert predictor.is_detector and predictor.model.format_name == "transformers"
    pipe = pipeline("object-detection", model=predictor.model.net, image_processor=predictor.model.processor)
    for path in films:
        inference = predictor.forward(load_image(path))
        t = _middle_threshold(inference.detections)
        ours = predictor.model_boxes(inference, t)
        theirs = pipe(str(path), threshold=t)
        assert 0 < len(ours) < len(inference.detections)
        mine = sorted((b.label, [int(v) for v in b.xyxy], b.score) for b in ours)
        ref = sorted((predictor.labels.shown[predictor.labels.model_labels.index(d["label"])],
                      [d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")], d["score"]) for d in theirs)
        assert [(l, b) for l, b, _ in mine] == [(l, b) for l, b, _ in ref]
        np.testing.assert_allclose([s for *_, s in mine], [s for *_, s in ref], rtol=0, atol=1e-6)


def test_torchvision_boxes_equal_the_model_in_eval_mode(folders, films) -> None:
    """The same network rebuilt by torchvision from the folder's state dict, called in eval mode on the PNG read by
    PIL and scaled to [0, 1] (the model's own transform does the rest): the same boxes, labels and scores (same
    float ops on the same tensor: equal; 1e-3 px / 1e-6 guard as above)."""
    folder = folders["torchvision"]
    predictor = Predictor.from_source(f"torchvision:{folder}", device="cpu")
    assert predictor.model.format_name == "torchvision"
    for path in films:
        inference = predictor.forward(load_image(path))
        t = _middle_threshold(inference.detections)
        ours = sorted(predictor.model_boxes(inference, t), key=lambda b: (-b.score, b.xyxy))
        ref = tv_detector_reference(folder, path, t)
        assert 0 < len(ours) == len(ref)
        assert [predictor.labels.model_label(b.label) for b in ours] == [r[0] for r in ref]
        np.testing.assert_allclose([b.xyxy for b in ours], [r[1] for r in ref], rtol=0, atol=1e-3)
        np.testing.assert_allclose([b.score for b in ours], [r[2] for r in ref], rtol=0, atol=1e-6)


def test_format_is_read_from_the_files_and_prefixes_force_it(folders) -> None:
    assert detect_format(folders["torchvision"]) == "torchvision"
    assert detect_format(folders["detr"]) == "transformers"
    predictor = Predictor.from_source(str(folders["yolos"]), device="cpu")
    assert predictor.is_detector and predictor.config.box_mode == "detections"
    assert predictor.config.classes == ["Nodule", "Mass", "Effusion"]  # "Pleural Effusion" mapped onto NIH's name
    assert predictor.score_threshold == 0.5  # none documented: the pipeline's default


def test_documented_threshold_and_pth_weights(tmp_path: Path) -> None:
    folder = tv_detector_folder(tmp_path, suffix=".pth", score_threshold=0.3)
    predictor = Predictor.from_source(str(folder), device="cpu")
    assert predictor.score_threshold == 0.3 and predictor.loaded.source.folder == folder
    assert predictor.config.thresholds == {c: 0.3 for c in predictor.config.classes}


def _rewrite(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("changes, words", [
    ({"builder": "maskrcnn_resnet50_fpn"}, "not a torchvision detector"),
    ({"min_size": 100000}, "out of bounds"),
    ({"classes": ["__background__"] + [f"c{i}" for i in range(1001)]}, "'classes'"),
    ({"box_score_thresh": 2}, "box_score_thresh"),
    ({"weights_url": "http://x"}, "unknown key"),
    ({"classes": ["__background__", "Nodule"]}, "misshapen"),
])
def test_torchvision_config_refusals(tmp_path: Path, changes: dict, words: str) -> None:
    folder = tv_detector_folder(tmp_path)
    _rewrite(folder, **changes)
    with pytest.raises(ConfigError) as err:
        Predictor.from_source(str(folder), device="cpu")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_torchvision_missing_tensor_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tv_detector_folder(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    dropped = state.pop(sorted(state)[0])
    state["extra.weight"] = torch.zeros(dropped.numel() + 1)  # as many values: the size check passes, the names do not
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ConfigError, match="1 missing, 1 unexpected"):
        Predictor.from_source(str(folder), device="cpu")


def test_transformers_detector_weights_that_do_not_fill_it_refused(tmp_path: Path) -> None:
    """A transformers detector whose safetensors lack one tensor and hold a stranger of the same size is refused in
    one line (transformers alone would run the missing part with random weights), as a classifier is."""
    from safetensors.torch import load_file, save_file

    folder = hf_detector_folder(tmp_path, "detr")
    state = load_file(str(folder / "model.safetensors"))
    dropped = state.pop(sorted(state)[-1])
    state["extra.weight"] = torch.zeros(dropped.numel())  # as many values: the size check passes, the names do not
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="does not match config.json.*1 missing, 1 unexpected") as err:
        Predictor.from_source(str(folder), device="cpu")
    assert "\n" not in str(err.value)


def test_transformers_detector_refusals(tmp_path: Path) -> None:
    folder = hf_detector_folder(tmp_path, "detr")
    cfg = json.loads((folder / "config.json").read_text())
    _rewrite(folder, num_queries=10**6)
    with pytest.raises(ConfigError, match="num_queries"):
        Predictor.from_source(str(folder), device="cpu")
    _rewrite(folder, num_queries=cfg["num_queries"], d_model=64, encoder_ffn_dim=4096)  # more than the file holds
    with pytest.raises(ConfigError, match="parameters but model.safetensors holds"):
        Predictor.from_source(str(folder), device="cpu")
    _rewrite(folder, d_model=cfg["d_model"], encoder_ffn_dim=cfg["encoder_ffn_dim"])
    proc = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**proc, "size": {"shortest_edge": 100000, "longest_edge": 100000}}))
    with pytest.raises(ConfigError, match="shortest_edge"):
        Predictor.from_source(str(folder), device="cpu")
    (folder / "preprocessor_config.json").write_text(json.dumps(proc))
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="safetensors only"):
        Predictor.from_source(str(folder), device="cpu")


def test_analysis_json_boxes_matching_and_probabilities(folders, films) -> None:
    predictor = Predictor.from_source(str(folders["detr"]), device="cpu")
    radiograph = load_image(films[0])
    inference = predictor.forward(radiograph)
    from cxrdemo.boxes import iou

    # the detection overlapping the film most (random tiny detectors draw boxes over the edge; truth is clipped)
    best = max(inference.detections, key=lambda b: iou(b, b.clipped(radiograph.width, radiograph.height)))
    assert iou(best, best.clipped(radiograph.width, radiograph.height)) >= MATCH_IOU
    truth = [{"label": best.label, "xyxy": list(best.xyxy)}, {"label": "Cardiomegaly", "xyxy": [10, 10, 200, 200]}]
    analysis = predictor.analyse(radiograph, cam_method=None, score_threshold=0.0, truth_boxes=truth[:1])
    doc = analysis.to_json()
    assert len(doc["boxes"]) == len(inference.detections)  # threshold 0: every candidate with a positive score
    assert set(doc["boxes"][0]) == {"label", "score", "xyxy"}
    # a class's probability is its highest box score; a class without a box scores 0
    for p in doc["probabilities"]:
        scores = [b.score for b in inference.detections if b.label == p["label"]]
        assert p["probability"] == pytest.approx(max(scores, default=0.0), abs=1e-6)
    expected = iou(best, best.clipped(radiograph.width, radiograph.height))  # the best box of the class overlaps at least this
    assert doc["iou"][0]["box_iou"] >= expected - 1e-4 and doc["iou"][0]["matched"] is True
    assert doc["detection"]["missed"] == [] and len(doc["detection"]["unmatched"]) == len(doc["boxes"]) - 1
    assert doc["detection"]["score_threshold"] == 0.0 and doc["detection"]["match_iou"] == MATCH_IOU
    high = predictor.analyse(radiograph, cam_method=None, score_threshold=1.0, truth_boxes=truth[:1]).to_json()
    assert high["boxes"] == [] and high["detection"]["missed"][0]["label"] == best.label and high["iou"][0]["box_iou"] is None
    with pytest.raises(InputError):
        predictor.analyse(radiograph, cam_method=None, score_threshold=1.5)


def test_detection_rows_by_hand() -> None:
    g1 = Box(0, 0, 10, 10, "Nodule")
    g2 = Box(50, 50, 60, 60, "Nodule")
    g3 = Box(0, 0, 10, 10, "Mass")
    boxes = [Box(0, 0, 10, 12, "Nodule", 0.9), Box(0, 0, 10, 10, "Effusion", 0.8), Box(52, 50, 70, 60, "Nodule", 0.6)]
    rows, summary = detection_rows([g1, g2, g3], boxes, None, 0.5)
    assert [r.box for r in rows] == [boxes[0], boxes[2], None]
    assert rows[0].box_iou == pytest.approx(100 / 120) and rows[1].box_iou == pytest.approx(80 / 200)
    assert summary.matched == (True, True, False)  # 80 / 200 = 0.4: at the threshold counts as found
    assert summary.missed == (g3,) and summary.unmatched == (boxes[1],)


@pytest.mark.parametrize("kind", ["detr", "yolos", "torchvision"])
@pytest.mark.parametrize("method", ["eigencam", "gradcam"])
def test_detector_cams(kind: str, method: str, folders, films) -> None:
    from cxrdemo.cams import CamRequest

    predictor = Predictor.from_source(str(folders[kind]), device="cpu")
    radiograph = load_image(films[0])
    inference = predictor.forward(radiograph)
    cam = predictor.cam(inference, CamRequest(method, None, 127))
    S = predictor.config.input_size
    assert cam.heatmap.shape == (S, S) and np.isfinite(cam.heatmap).all()
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0
    assert cam.target == inference.detections[0].label  # top-1 = the class of the highest box
    if method == "eigencam":  # from the feature map captured in the prediction pass: no network pass
        assert cam.heatmap.max() > 0.5 and cam.box is not None and 0 <= cam.box.x1 < cam.box.x2 <= radiograph.width
    else:  # the library's own Grad-CAM on the whole detector, with its FasterRCNNBoxScoreTarget on the same box
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

        from cxrdemo.explain import _DetectorOutputs

        model = predictor.model
        x = model.preprocess(radiograph.pixels)[None].requires_grad_(True)
        box = inference.detections[0]
        label_id = [i for i, name in model.label_names.items() if name == box.label][0]
        target = FasterRCNNBoxScoreTarget([label_id], [np.asarray(box.xyxy, dtype=np.float32)])
        with torch.enable_grad(), GradCAM(model=_DetectorOutputs(model, (radiograph.height, radiograph.width)), target_layers=[model.cam_layer()],
                                          reshape_transform=model.token_grid(tuple(x.shape[-2:]))) as ref:
            expected = ref(input_tensor=x, targets=[target])[0]
        import cv2

        expected = np.clip(cv2.resize(expected, (S, S), interpolation=cv2.INTER_LINEAR), 0, 1)
        np.testing.assert_allclose(cam.heatmap, expected, rtol=0, atol=1e-5)  # same ops on the same input
        if kind == "detr":
            assert cam.heatmap.max() > 0.5
        missing = next(c for c in predictor.config.classes if not any(b.label == c for b in inference.detections)) if any(
            not any(b.label == c for b in inference.detections) for c in predictor.config.classes) else None
        if missing:
            with pytest.raises(InputError, match="no box of"):
                predictor.cam(inference, CamRequest(method, missing, 127))


def test_page_score_threshold_redraws_without_the_network(folders, films) -> None:
    """The single-case page: the detector's boxes follow the score-threshold control; changing it reuses the case's
    forward pass (no network), and a bad value is a one-line error."""
    from cxrdemo.webapp import actions, models
    from cxrdemo.webapp.state import Settings

    cache = models.ModelCache(capacity=1)
    radiograph = load_image(films[0])
    low = Settings.from_controls(str(folders["detr"]), "cpu", "eigencam", "top-1", 127, 0.0)
    first = actions.analyse_case(cache, radiograph, low)
    candidates = first.case.inference.detections
    assert len(first.json["boxes"]) == len(candidates) and first.json["detection"]["score_threshold"] == 0.0
    t = _middle_threshold(candidates)
    second = actions.update_case(cache, first.case, Settings.from_controls(str(folders["detr"]), "cpu", "eigencam", "top-1", 127, t))
    assert not second.forward_ran and second.json["detection"]["score_threshold"] == t
    assert len(second.json["boxes"]) == sum(1 for b in candidates if b.score > t)
    default = actions.update_case(cache, first.case, Settings.from_controls(str(folders["detr"]), "cpu", "eigencam", "top-1", 127, ""))
    assert default.json["detection"]["score_threshold"] == 0.5  # blank: the model's own (none documented: 0.5)
    with pytest.raises(InputError, match="outside"):
        Settings.from_controls(str(folders["detr"]), "cpu", "eigencam", "top-1", 127, 7)


def test_render_panels_of_a_detector(folders, films) -> None:
    from cxrdemo.render import render_panels

    predictor = Predictor.from_source(str(folders["torchvision"]), device="cpu")
    radiograph = load_image(films[0])
    inference = predictor.forward(radiograph)
    box = inference.detections[0].clipped(radiograph.width, radiograph.height)
    truth = [{"label": box.label, "xyxy": list(box.xyxy)}]
    analysis = predictor.analyse(radiograph, cam_method="eigencam", truth_boxes=truth, score_threshold=0.0)
    panels = render_panels(radiograph, analysis)
    assert set(panels.as_dict()) == {"prediction", "comparison", "probabilities", "cam"}
    # the truth box is one of the detector's own boxes (clipped): found, the rest unmatched
    assert analysis.detection.matched == (True,) and analysis.detection.missed == ()
    assert len(analysis.detection.unmatched) == len(analysis.boxes) - 1
    from cxrdemo.render.panels import _comparison_rows, _prediction_rows

    texts = [r.text for r in _comparison_rows(analysis)]
    assert any("found" in t for t in texts) and any("match no finding" in t for t in texts)
    assert "score above 0.00" in " ".join(r.text for r in _prediction_rows(analysis, 10, len(analysis.boxes)))


def test_model_b_a_detector_in_the_ab_table(folders, films, model_dir: Path) -> None:
    """A/B: a classifier (A, cxrdemo's test model) beside a detector (B) on one film; B follows the page's score
    threshold and the table gives its boxes found / missed / unmatched."""
    from cxrdemo.sidebyside import compare_models
    from cxrdemo.webapp import models, side
    from cxrdemo.webapp.models import model_key
    from cxrdemo.webapp.state import Settings

    cache = models.ModelCache(capacity=2)
    radiograph = load_image(films[0])
    settings = Settings.from_controls(str(model_dir), "cpu", "eigencam", "top-1", 127, 0.0)
    a = side.analyse_with(cache, model_key(settings.source, "cpu"), radiograph, settings.cam, None, "A", 0.0)
    b = side.analyse_with(cache, model_key(str(folders["rt_detr"]), "cpu"), radiograph, settings.cam, None, "B", 0.0)
    assert a.detection is None and b.detection is not None and b.detection.score_threshold == 0.0
    summary = side.models_summary(compare_models(a, b))
    assert "| detector boxes | not a detector | " in summary and f"{len(b.boxes)} above 0.00" in summary
    assert compare_models(a, b).to_json()["b"]["boxes"]


@pytest.mark.parametrize("prefix", ["", "torchvision:"])
def test_cli_predict_json_of_a_detector(prefix: str, folders, films, capsys, tmp_path: Path) -> None:
    """``cxrdemo predict`` with a torchvision detector folder (found from its files or forced by the prefix): the
    JSON's boxes are those above --score-threshold, with the detection block; a bad threshold is one line."""
    from cxrdemo.cli import main

    folder = folders["torchvision"]
    code = main(["predict", str(films[0]), "--weights", f"{prefix}{folder}", "--score-threshold", "0.2", "--cam", "eigencam",
                 "--render", str(tmp_path / "panels"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert doc["model"]["architecture"] == "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
    assert doc["boxes"] and all(b["score"] > 0.2 for b in doc["boxes"]) and doc["detection"]["score_threshold"] == 0.2
    assert doc["cam"]["method"] == "eigencam" and (tmp_path / "panels").is_dir()
    assert main(["predict", str(films[0]), "--weights", str(folder), "--score-threshold", "1.5"]) == 1
    err = capsys.readouterr().err
    assert "--score-threshold 1.5 is outside [0, 1]" in err and len(err.strip().splitlines()) == 1


def test_eigencam_from_the_prediction_pass_equals_the_library_rerun(folders, films) -> None:
    """EigenCAM read off the feature map captured in the prediction pass equals pytorch-grad-cam's own EigenCAM
    hooked on the same layer of a fresh pass (DETR's input is 160 x 160 = the map's side here, so both resize the
    same map to the same size once; the economy SVD gives the library's first component: float error only)."""
    from pytorch_grad_cam import EigenCAM

    from cxrdemo.cams import CamRequest
    from cxrdemo.explain import _DetectorOutputs

    predictor = Predictor.from_source(str(folders["detr"]), device="cpu")
    radiograph = load_image(films[0])
    inference = predictor.forward(radiograph)
    ours = predictor.cam(inference, CamRequest("eigencam", None, 127)).heatmap
    model = predictor.model
    x = model.preprocess(radiograph.pixels)[None]
    assert tuple(x.shape[-2:]) == ours.shape
    with EigenCAM(model=_DetectorOutputs(model, (radiograph.height, radiograph.width)), target_layers=[model.cam_layer()]) as ref:
        expected = ref(input_tensor=x, targets=[lambda _out: torch.zeros(1)])[0]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_eigencam_box_shared_by_every_truth_class(folders, films) -> None:
    """EigenCAM is class-agnostic: one map per analysis, its box compared with every ground-truth box."""
    predictor = Predictor.from_source(str(folders["detr"]), device="cpu")
    radiograph = load_image(films[0])
    truth = [{"label": "Nodule", "xyxy": [100, 100, 300, 300]}, {"label": "Mass", "xyxy": [500, 500, 800, 800]}]
    analysis = predictor.analyse(radiograph, cam_method="eigencam", truth_boxes=truth, score_threshold=0.0)
    boxes = [row.cam_box for row in analysis.ious]
    assert boxes[0] is not None and boxes[0].xyxy == boxes[1].xyxy == analysis.cam.box.xyxy
    assert [b.label for b in boxes] == ["Nodule", "Mass"]


def test_box_score_target_matches_within_the_class() -> None:
    """One box under two classes (a sigmoid detector's habit): pytorch-grad-cam's FasterRCNNBoxScoreTarget takes the
    first best-IoU box, of the other class, and gives 0; cxrdemo's target scores the chosen class's copy (IoU 1 +
    its score), and without a match returns a zero that backward() accepts."""
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    from cxrdemo.explain import BoxScoreTarget

    scores = torch.tensor([0.9, 0.6], requires_grad=True)
    outputs = {"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 50.0, 50.0]]), "labels": torch.tensor([1, 2]),
               "scores": scores}
    box = np.array([10, 10, 50, 50], dtype=np.float32)
    assert float(FasterRCNNBoxScoreTarget([2], [box])(outputs)) == 0.0
    value = BoxScoreTarget(2, box)(outputs)
    assert float(value) == pytest.approx(1.6)
    value.backward()
    assert scores.grad.tolist() == [0.0, 1.0]
    miss = BoxScoreTarget(3, box)(outputs)
    assert float(miss) == 0.0 and miss.requires_grad
