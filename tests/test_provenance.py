"""Which images a model saw (data_splits.json): read, written, fetched from the Hub, and said out loud."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cxrdemo.errors import ConfigError
from cxrdemo.provenance import SPLITS_NAME, DataSplits, read_splits, write_splits

TRAIN_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box
VAL_IMAGE = "00002578_000.png"


@pytest.fixture(scope="module")
def split_model(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the test model that says it was trained on TRAIN_IMAGE and validated on VAL_IMAGE."""
    folder = tmp_path_factory.mktemp("split-model") / "model"
    shutil.copytree(model_dir, folder)
    write_splits(folder, [TRAIN_IMAGE, "00000001_000.png"], [VAL_IMAGE])
    return folder


def test_roles_match_by_nih_image_index(tmp_path: Path) -> None:
    path = write_splits(tmp_path, ["/data/00000468_017.png", "other.jpg"], ["00002578_000.png"])
    assert json.loads(path.read_text()) == {"train": ["00000468_017.png", "other.jpg"], "validation": ["00002578_000.png"]}
    splits = read_splits(tmp_path)
    assert isinstance(splits, DataSplits)
    assert splits.role("00000468_017.dcm") == "train"  # same NIH image, another format
    assert splits.role("/uploads/other.jpg") == "train"
    assert splits.role("00002578_000.png") == "validation"
    assert splits.role("00000002_000.png") is None and splits.note("00000002_000.png") is None
    assert "training images" in splits.note("00000468_017.png") and "optimistic" in splits.note("00002578_000.png")


def test_missing_is_none_and_malformed_is_one_clear_error(tmp_path: Path) -> None:
    assert read_splits(tmp_path) is None
    for text in ("{not json", "[1, 2]", '{"train": "00000001_000.png"}', '{"train": [1, 2]}'):
        (tmp_path / SPLITS_NAME).write_text(text)
        with pytest.raises(ConfigError, match=rf"{SPLITS_NAME}.*fix it or delete it") as info:
            read_splits(tmp_path)
        assert "\n" not in str(info.value)


def test_analysis_notes_training_and_validation_images(split_model: Path, model_dir: Path, images_dir: Path) -> None:
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor

    predictor = Predictor.from_source(str(split_model), device="cpu")
    seen = predictor.analyse(load_image(images_dir / TRAIN_IMAGE))
    assert any("training images" in n for n in seen.notes)
    val = predictor.analyse(load_image(images_dir / VAL_IMAGE))
    assert any("validation split" in n for n in val.notes)
    unseen = predictor.analyse(load_image(images_dir / "00000002_000.png"))
    assert not any("training" in n or "validation" in n for n in unseen.notes)
    plain = Predictor.from_source(str(model_dir), device="cpu")  # no data_splits.json: nothing to say
    assert plain.loaded.splits is None and not plain.provenance_notes(TRAIN_IMAGE)


def test_cli_prints_the_note_on_stderr_and_keeps_stdout_json(split_model: Path, images_dir: Path, capsys) -> None:
    from cxrdemo.cli import main

    assert main(["predict", str(images_dir / TRAIN_IMAGE), "--weights", str(split_model), "--json", "-", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    json.loads(out)
    assert err.startswith(f"note: {TRAIN_IMAGE}: this image is one of this model's training images")


def test_evaluate_flags_or_drops_seen_images(split_model: Path) -> None:
    from cxrdemo.datasets.samples import Sample
    from cxrdemo.evaluate import seen_images

    splits = read_splits(split_model)
    samples = [Sample(name=n, path=Path(n), patient=n[:8], labels=(), boxes=()) for n in (TRAIN_IMAGE, VAL_IMAGE, "00000002_000.png")]
    kept, notes = seen_images(samples, splits)
    assert len(kept) == 3 and notes == ["1 of the 3 images are this model's training images and 1 its validation images: "
                                        "these numbers are not a test of the model; add --unseen to skip them"]
    kept, notes = seen_images(samples, splits, drop=True)
    assert [s.name for s in kept] == ["00000002_000.png"] and "they were left out: 1 images the model never saw remain" in notes[0]
    assert seen_images(samples, None) == (samples, [])


def test_hub_model_brings_its_splits_offline(split_model: Path, tmp_path: Path, monkeypatch) -> None:
    from test_config_weights import _build_hub_cache  # tests/ is on sys.path (pytest's prepend import mode)

    from cxrdemo.models.weights import load_model

    cache = tmp_path / "hub"
    commit = "fedcba9876543210fedcba9876543210fedcba98"
    _build_hub_cache(cache, "cxrdemo/with-splits", split_model, commit, {"main": commit}, extra=(SPLITS_NAME,))
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    loaded = load_model("cxrdemo/with-splits", device="cpu")
    assert loaded.splits is not None and loaded.splits.role(TRAIN_IMAGE) == "train"


# ---------------------------------------------- issue 27 C6: a prior box's IoU on the image it was fitted on
EMBEDDED = Path(__file__).resolve().parent.parent / "weights"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _first_example() -> Path:
    from cxrdemo.webapp.resources import read_manifest

    return EXAMPLES / "images" / read_manifest(EXAMPLES / "manifest.csv")[0].image


def test_prior_box_iou_on_its_own_training_image_is_marked_not_a_result(capsys) -> None:
    """The first example with the embedded model read "IoU model 1.00": the Atelectasis box is the per-class prior,
    and the prior IS this training image's NIH box. The panel, the JSON, the page's table and the CLI mark it."""
    from cxrdemo.cli import main
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor
    from cxrdemo.render.panels import _comparison_rows
    from cxrdemo.results import PRIOR_FITTED_HERE

    image = _first_example()
    predictor = Predictor.from_source(str(EMBEDDED), device="cpu")
    assert predictor.box_probe.all_static and predictor.loaded.splits.role(image.name) == "train"
    analysis = predictor.analyse(load_image(image))
    (row,) = analysis.ious
    assert row.label == "Atelectasis" and row.box_iou > 0.99  # the number that read as a result
    assert row.box_prior and row.prior_fitted_here
    doc = analysis.to_json()["iou"][0]
    assert doc["box_prior"] is True and doc["prior_fitted_here"] is True
    legend = [r.text for r in _comparison_rows(analysis) if "IoU model" in r.text]
    assert legend == [f"Atelectasis: IoU model {row.box_iou:.2f} ({PRIOR_FITTED_HERE}) \u00b7 CAM {row.cam_iou:.2f}"]
    assert any(PRIOR_FITTED_HERE in n and "Atelectasis" in n for n in analysis.notes)
    assert main(["predict", str(image), "--json", "-", "--device", "cpu"]) == 0  # the embedded model by default
    out, err = capsys.readouterr()
    assert json.loads(out)["iou"][0]["prior_fitted_here"] is True
    assert f"box IoU Atelectasis {row.box_iou:.2f}: {PRIOR_FITTED_HERE}" in err


def test_prior_box_on_an_image_the_model_never_saw_is_marked_prior_only(tmp_path: Path) -> None:
    """The embedded model with lists that leave the first example out: its box is still the prior (so marked), but
    it was not fitted on this image's box: no "not a result" flag."""
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor

    folder = tmp_path / "model"
    shutil.copytree(EMBEDDED, folder)
    image = _first_example()
    write_splits(folder, ["00000001_000.png"], ["00000013_005.png"])
    analysis = Predictor.from_source(str(folder), device="cpu").analyse(load_image(image))
    (row,) = analysis.ious
    assert row.box_prior and not row.prior_fitted_here
    assert row.box_iou_text() == f"{row.box_iou:.2f} (prior box)"
    doc = analysis.to_json()["iou"][0]
    assert doc["box_prior"] is True and "prior_fitted_here" not in doc
