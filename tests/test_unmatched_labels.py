"""Issue 27 C2: a model whose labels do not match NIH's (``output 0`` .. ``output 13``) on a shared NIH image with an
NIH box: the box is shown, marked as not scored, and never stops the case (API, CLI, app, side-by-side methods)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, WEBAPP_IMAGE
from model_formats import timm_folder

NOTE = "the model has no class 'Atelectasis': its ground truth is shown, not scored"


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A timm ResNet with 14 outputs and no label names: its classes are ``output 0`` .. ``output 13``."""
    folder = timm_folder(tmp_path_factory.mktemp("unlabelled"), "resnet10t", [f"x{i}" for i in range(14)])
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("label_names")
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.fixture(scope="module")
def image(images_dir: Path) -> Path:
    return images_dir / WEBAPP_IMAGE  # one NIH Atelectasis box


def test_api_shows_the_box_unscored(unlabelled: Path, image: Path) -> None:
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor

    predictor = Predictor.from_source(str(unlabelled), device="cpu")
    assert predictor.config.classes[0] == "output 0" and "Atelectasis" not in predictor.config.classes
    analysis = predictor.analyse(load_image(image), cam_method="gradcam")
    assert [b.label for b in analysis.ground_truth] == ["Atelectasis"] and analysis.truth_source == "NIH"
    assert analysis.ious == [] and NOTE in analysis.notes
    assert analysis.cam is not None and analysis.cam.target.startswith("output ")
    doc = analysis.to_json()
    assert doc["ground_truth"][0]["label"] == "Atelectasis" and doc["iou"] == []


def test_cli_exits_0_with_a_note(unlabelled: Path, image: Path) -> None:
    cmd = [sys.executable, "-m", "cxrdemo", "predict", "--weights", str(unlabelled), str(image), "--device", "cpu"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"note: {WEBAPP_IMAGE}: {NOTE}" in done.stderr.splitlines()
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["ground_truth"][0]["label"] == "Atelectasis" and doc["iou"] == []


def test_app_and_side_by_side_methods_do_not_stop(unlabelled: Path, image: Path) -> None:
    from cxrdemo.webapp import actions, models, side, state, upload

    cache = models.ModelCache(capacity=1)
    view = actions.analyse_case(cache, upload.read_upload(image), state.Settings(source=str(unlabelled), device="cpu"))
    assert NOTE in view.case.analysis.notes and view.case.analysis.ground_truth[0].label == "Atelectasis"
    assert NOTE in view.summary
    methods = side.case_methods(cache, view.case)
    assert methods is not None
