"""``cxrdemo soup``: weight averaging of models trained on one split, its checks and its card."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import calibrated_model

VAL = ["00013125_000.png", "00000468_017.png", "00022084_000.png", "00013911_000.png", "00026911_000.png",
       "00000001_000.png", "00000002_000.png", "00000004_000.png"]
TRAIN = ["00000001_001.png", "00000001_002.png"]


def _ingredient(folder: Path, shift: float, train=TRAIN, val=VAL) -> Path:
    """The calibrated test model with every floating weight moved by ``shift`` (a stand-in for another seed)."""
    import torch

    from cxrdemo.provenance import write_splits
    from cxrdemo.models.weights import save_model

    model = calibrated_model(128)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and "running_var" not in name:
                t.add_(shift)
    save_model(model, folder)
    write_splits(folder, train, val)
    return folder


def test_average_states_means_floats_keeps_box_head_and_counters_of_the_first():
    import torch

    from cxrdemo.training.soup import average_states

    a = {"backbone.w": torch.tensor([1.0, 3.0]), "box_head.mlp.0.weight": torch.tensor([5.0]), "bn.num_batches_tracked": torch.tensor(7)}
    b = {"backbone.w": torch.tensor([3.0, 5.0]), "box_head.mlp.0.weight": torch.tensor([9.0]), "bn.num_batches_tracked": torch.tensor(2)}
    out = average_states([a, b])
    assert out["backbone.w"].tolist() == [2.0, 4.0]
    assert out["box_head.mlp.0.weight"].tolist() == [5.0]
    assert int(out["bn.num_batches_tracked"]) == 7
    assert out["backbone.w"] is not a["backbone.w"]


def test_check_compatible_refuses_what_cannot_be_averaged():
    from cxrdemo.models.config import ModelConfig
    from cxrdemo.errors import ConfigError
    from cxrdemo.provenance import DataSplits
    from cxrdemo.training.soup import check_compatible

    cfg = ModelConfig(architecture="mobilenet_v3_small", input_size=128)
    split = DataSplits(frozenset(TRAIN), frozenset(VAL))
    check_compatible([cfg, cfg], [split, split], ["a", "b"])  # compatible: no error
    with pytest.raises(ConfigError, match="at least two"):
        check_compatible([cfg], [split], ["a"])
    with pytest.raises(ConfigError, match="b differs from a in input_size"):
        check_compatible([cfg, dataclasses.replace(cfg, input_size=160)], [split, split], ["a", "b"])
    with pytest.raises(ConfigError, match="b has no data_splits.json"):
        check_compatible([cfg, cfg], [split, None], ["a", "b"])
    other = DataSplits(frozenset(TRAIN), frozenset(VAL[1:]))
    with pytest.raises(ConfigError, match="different split.*--split-seed"):
        check_compatible([cfg, cfg], [split, other], ["a", "b"])


def test_soup_averages_chooses_thresholds_and_writes_a_loadable_folder_with_its_card(tmp_path, data_dir):
    import torch
    from safetensors.torch import load_file

    from cxrdemo.provenance import read_splits
    from cxrdemo.training.soup import make_soup
    from cxrdemo.models.weights import load_model

    a = _ingredient(tmp_path / "a", 0.0)
    b = _ingredient(tmp_path / "b", 0.01)
    res = make_soup([str(a), str(b)], tmp_path / "soup", str(data_dir / "images"), str(data_dir / "labels.csv"),
                    str(data_dir / "boxes.csv"), command="python -m cxrdemo soup a b", progress=False)
    loaded = load_model(res.folder, device="cpu")  # checks the sha256 file too
    sa, sb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    ss = loaded.model.state_dict()
    key = next(k for k in sa if k.startswith("backbone.") and k.endswith("weight") and sa[k].ndim == 4)
    assert torch.allclose(ss[key], (sa[key] + sb[key]) / 2, atol=1e-6)
    box = next(k for k in sa if k.startswith("box_head."))
    assert torch.equal(ss[box], sa[box]) and not torch.equal(ss[box], sb[box])
    assert set(loaded.config.thresholds) == set(loaded.config.classes)
    assert read_splits(res.folder) == read_splits(a)
    soup = loaded.config.extra["soup"]
    assert [Path(i["folder"]) for i in soup["ingredients"]] == [a, b] and soup["command"] == "python -m cxrdemo soup a b"
    assert res.comparison["ours"]["n_images"] == len(VAL)
    card = (res.folder / "README.md").read_text(encoding="utf-8")
    assert "model soup" in card and "| **this model (soup)** |" in card and card.count("Soup minus") == 1
    assert loaded.sha256 in card
    assert json.loads((res.folder / "config.json").read_text())["extra"]["validation"]["n_images"] == len(VAL)


def test_soup_cli_one_line_errors(tmp_path, data_dir, capsys):
    from cxrdemo.cli import main

    a = _ingredient(tmp_path / "a", 0.0)
    b = _ingredient(tmp_path / "b", 0.0, val=VAL[:4])
    args = ["soup", str(a), str(b), "--out", str(tmp_path / "s"), "--images", str(data_dir / "images"), "--labels", str(data_dir / "labels.csv")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "different split" in err and "\n" not in err
    assert main(["soup", str(a), "--out", str(tmp_path / "s"), "--images", "x", "--labels", "y"]) == 1
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
