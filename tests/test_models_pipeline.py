"""Foreign models through the whole single-case pipeline: Predictor, every CAM method, A vs B, the Hub cache path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import BOXED
from model_formats import hf_folder, timm_folder, xrv_cache

from cxrdemo.cams import CAM_METHOD_KEYS
from cxrdemo.imaging import load_image
from cxrdemo.predict import Predictor
from cxrdemo.sidebyside import compare_methods, compare_models
from cxrdemo.models.weights import file_sha256, load_model

NAME = "00013125_000.png"  # NIH box: Cardiomegaly, near the middle of the film
LABELS = ["Atelectasis", "Cardiomegaly", "Pleural Effusion", "No Finding"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("formats")
    return {
        "timm-cnn": str(timm_folder(tmp, "resnet10t", LABELS)),
        "timm-vit": str(timm_folder(tmp, "vit_tiny_patch16_224", LABELS, img_size=96)),
        "hf-swin": str(hf_folder(tmp, "swin", LABELS, multi=True)),
        "hf-vit": str(hf_folder(tmp, "vit", LABELS, multi=True)),
        "hf-convnext": str(hf_folder(tmp, "convnext", LABELS, multi=True)),
    }


@pytest.mark.parametrize("key", ["timm-cnn", "timm-vit", "hf-swin", "hf-vit", "hf-convnext"])
def test_single_case_and_every_method(sources: dict[str, str], images_dir: Path, key: str) -> None:
    predictor = Predictor(load_model(sources[key], device="cpu"))
    radiograph = load_image(images_dir / NAME)
    analysis = predictor.analyse(radiograph, target="Cardiomegaly")
    doc = analysis.to_json()
    assert analysis.boxes == []  # no box head: no model boxes
    assert any("no box head" in n for n in analysis.notes)
    rows = {p["label"]: p for p in doc["probabilities"]}
    assert rows["Effusion"]["model_label"] == "Pleural Effusion"
    assert rows["No Finding"]["scored"] is False and "scored" not in rows["Cardiomegaly"]
    assert doc["model"]["format"] in ("timm", "transformers")
    row = next(r for r in analysis.ious if r.truth.label == BOXED[NAME])
    assert row.box_iou is None and row.cam_iou is not None
    inference = predictor.forward(radiograph)
    truth = predictor.ground_truth(inference)
    cells = compare_methods(predictor, inference, truth, target="Cardiomegaly")
    assert [c.method for c in cells] == list(CAM_METHOD_KEYS)
    size = predictor.config.input_size
    view = predictor.model.view(radiograph.width, radiograph.height)
    for cell in cells:
        heatmap = cell.cam.heatmap
        assert heatmap.shape == (size, size) and np.isfinite(heatmap).all()
        # The map must explain something: a reshape that dropped the wrong tokens, or a CAM layer whose patch
        # tokens never reach the class token, gives an all-zero (or constant) map.
        assert float(heatmap.max()) > 0.0 and float(heatmap.std()) > 0.0, cell.method
        if not view.full:  # zero where the crop hid the film (rows/columns wholly outside the crop)
            c0 = int(np.floor(view.x0 * size / view.width)) - 1
            assert c0 < 0 or float(np.abs(heatmap[:, :c0]).max()) == 0.0


def test_a_versus_b_across_formats(sources: dict[str, str], images_dir: Path, model_dir: Path) -> None:
    radiograph = load_image(images_dir / NAME)
    a = Predictor(load_model(str(model_dir), device="cpu")).analyse(radiograph)
    b = Predictor(load_model(sources["timm-cnn"], device="cpu")).analyse(radiograph)
    cmp = compare_models(a, b)
    labels = {label for label, _ in cmp.differences}
    assert {"Cardiomegaly", "Effusion", "Atelectasis"} <= labels and "No Finding" not in labels


def test_hub_cache_offline(sources: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images_dir: Path) -> None:
    """The Hub path as on a Space: a cache in the ``models--owner--name/snapshots/<commit>`` layout, offline."""
    import huggingface_hub.constants as c

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--cxr-timm"
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for path in Path(sources["timm-cnn"]).iterdir():  # blobs named by digest, snapshot entries are links (as the Hub writes)
        blob = repo / "blobs" / file_sha256(path)
        shutil.copyfile(path, blob)
        (snap / path.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read by huggingface_hub at import time
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    loaded = load_model("someone/cxr-timm", device="cpu")
    assert loaded.source.kind == "hub" and loaded.source.commit == commit and loaded.model.format_name == "timm"
    direct = load_model(sources["timm-cnn"], device="cpu")
    pixels = load_image(images_dir / NAME).pixels
    x = loaded.model.preprocess(pixels)[None]
    assert np.array_equal(loaded.model(x).logits.numpy(), direct.model(x).logits.numpy())
    prefixed = load_model("timm:someone/cxr-timm", device="cpu")
    assert prefixed.sha256 == loaded.sha256


def test_xrv_through_predictor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images_dir: Path) -> None:
    monkeypatch.setenv("CXRDEMO_XRV_CACHE", str(xrv_cache(tmp_path, "densenet121-res224-all")))
    predictor = Predictor(load_model("densenet121-res224-all", device="cpu"))  # a bare weight name
    analysis = predictor.analyse(load_image(images_dir / NAME), target="Cardiomegaly", cam_method="gradcam++")
    assert analysis.model["format"] == "torchxrayvision" and analysis.model["source"] == "densenet121-res224-all"
    assert analysis.cam is not None and analysis.cam.heatmap.shape == (224, 224)
    assert any(p.label.startswith("Lung") or p.label == "Enlarged Cardiomediastinum" for p in analysis.probabilities)


def test_app_single_case_grid_and_model_b(sources: dict[str, str], images_dir: Path, model_dir: Path) -> None:
    """The app's own actions on a cropped timm ViT: the case page, the every-method grid, and model B beside A."""
    from conftest import WEBAPP_IMAGE
    from cxrdemo.webapp import actions, models, side, state, upload

    cache = models.ModelCache(capacity=2)
    radiograph = upload.read_upload(images_dir / WEBAPP_IMAGE)
    view = actions.analyse_case(cache, radiograph, state.Settings(source=f"timm:{sources['timm-vit']}", device="cpu"))
    notes = " ".join(view.case.analysis.notes)
    assert "centre crop" in notes and "no box head" in notes
    grid = side.case_methods(cache, view.case)
    assert [m["method"] for m in grid.doc["methods"]] == list(CAM_METHOD_KEYS) and len(grid.tiles) == len(CAM_METHOD_KEYS)
    pair = side.case_models(cache, view.case, str(model_dir), "cpu")
    assert pair.comparison.b.model["architecture"] != pair.comparison.a.model["architecture"]
    assert {d["label"] for d in pair.doc["differences"]} >= {"Atelectasis", "Cardiomegaly", "Effusion"}


@pytest.mark.parametrize(("key", "cropped"), [("timm-vit", True), ("hf-vit", False)])
def test_the_crop_is_shown_on_the_panels(sources: dict[str, str], images_dir: Path, key: str, cropped: bool) -> None:
    """A centre-cropping model (timm's ViT, crop_pct 0.9): the analysis carries the region it saw, the JSON has it,
    every film panel dims the rest and the footer says so. An exact-resize model (a ViT processor): none of it."""
    from dataclasses import replace

    import cv2

    from cxrdemo.render.film import OUTSIDE_CROP, film_view
    from cxrdemo.render.panels import footer_lines

    predictor = Predictor(load_model(sources[key], device="cpu"))
    radiograph = load_image(images_dir / NAME)
    analysis = predictor.analyse(radiograph, target="Cardiomegaly")
    doc = analysis.to_json()
    if not cropped:
        assert analysis.model_region is None and "model_region" not in doc
        assert not any(line.startswith("centre crop:") for line in footer_lines(analysis))
        return
    view = predictor.model.view(radiograph.width, radiograph.height)
    region = analysis.model_region
    assert region is not None and (region.x1, region.y1, region.x2, region.y2) == (view.x0, view.y0, view.x1, view.y1)
    assert doc["model_region"] == region.rounded()
    assert any(line.startswith("centre crop:") for line in footer_lines(analysis))
    shown = film_view(radiograph, analysis, 256)
    plain = film_view(radiograph, replace(analysis, model_region=None), 256)
    inside = (slice(round(region.y1 * shown.sy) + 1, round(region.y2 * shown.sy) - 1),
              slice(round(region.x1 * shown.sx) + 1, round(region.x2 * shown.sx) - 1))  # fmt: skip
    np.testing.assert_array_equal(shown.gray[inside], plain.gray[inside])  # what the model saw: untouched
    border = round(region.x1 * shown.sx) - 1  # the last display column left of the crop
    assert border >= 0
    dimmed = cv2.convertScaleAbs(plain.gray[:, : border + 1], alpha=OUTSIDE_CROP)
    np.testing.assert_array_equal(shown.gray[:, : border + 1], dimmed)  # the hidden border: dimmed, exactly
