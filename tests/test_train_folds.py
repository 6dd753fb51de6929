"""k-fold cross-validation over patients (``train --folds K --fold I``), the refit on every image (``--refit``) and
``cxrdemo cv`` (out-of-fold estimate, thresholds, the final model folder)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_csv
from cxrdemo.cli import main as cli_main
from cxrdemo.training.cv import gather_out_of_fold
from cxrdemo.errors import InputError
from cxrdemo.datasets.samples import Sample, fold_split, patient_folds, split_patients

REPO = Path(__file__).resolve().parent.parent
NIH = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
FINDINGS = ["Atelectasis", "Effusion", "Nodule", "Hernia", "Mass"]


def _samples(n_patients: int = 40, seed: int = 0) -> list[Sample]:
    """Synthetic samples: 1 to 3 images per patient, 0 to 2 findings each."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_patients):
        for k in range(int(rng.integers(1, 4))):
            labels = tuple(sorted(set(rng.choice(FINDINGS, size=int(rng.integers(0, 3))).tolist())))
            out.append(Sample(f"{p:08d}_{k:03d}.png", Path(f"{p:08d}_{k:03d}.png"), labels, str(p)))
    return out


@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_image_is_held_out_exactly_once_and_patients_never_straddle(k):
    samples = _samples()
    folds = patient_folds(samples, k, seed=0)
    held = [i for f in folds for i in f]
    assert sorted(held) == list(range(len(samples)))  # every image exactly once
    patient_fold = {}
    for f, idx in enumerate(folds):
        for i in idx:
            assert patient_fold.setdefault(samples[i].patient, f) == f  # one fold per patient
    for f in range(k):
        train, val = fold_split(samples, k, f, seed=0)
        assert {s.name for s in train} | {s.name for s in val} == {s.name for s in samples}
        assert not {s.patient for s in train} & {s.patient for s in val}


def test_validation_fraction_split_is_fold_zero():
    """``--val-fraction 0.2`` (the split of every earlier model) is fold 0 of ``--folds 5``: same seed, same images."""
    samples = _samples(seed=4)
    assert split_patients(samples, 0.2, 7) == fold_split(samples, 5, 0, 7)


def test_bad_fold_arguments_are_one_line_errors():
    samples = _samples(n_patients=3)
    with pytest.raises(InputError, match="at least 2 folds"):
        patient_folds(samples, 1)
    with pytest.raises(InputError, match="only 3 patients"):
        patient_folds(samples, 4)
    with pytest.raises(InputError, match="must lie in 0..2"):
        fold_split(samples, 3, 3)


def _fake_fold(folder: Path, names: list[str], held: list[str], fold: int, k: int = 3) -> Path:
    folder.mkdir(parents=True)
    train = [n for n in names if n not in held]
    (folder / "split.json").write_text(json.dumps({"seed": 0, "folds": k, "fold": fold, "train": train, "val": held}))
    np.savez(folder / "val_probs.npz", names=np.array(held), epoch_1=np.full((len(held), 14), 0.1), epoch_2=np.full((len(held), 14), fold / 10))
    return folder


def test_gather_checks_that_the_runs_are_one_partition(tmp_path):
    names = [f"{i:08d}_000.png" for i in range(9)]
    parts = [names[0:3], names[3:6], names[6:9]]
    runs = [_fake_fold(tmp_path / f"f{i}", names, parts[i], i) for i in range(3)]
    oof = gather_out_of_fold(runs)
    assert oof.names == sorted(names) and oof.epoch == 2  # the last epoch every fold recorded
    assert oof.probs[names.index(names[4]), 0] == pytest.approx(0.1)  # fold 1's prediction for its own image
    with pytest.raises(InputError, match=r"folds \[0, 1\] of 3"):
        gather_out_of_fold(runs[:2])
    dup = _fake_fold(tmp_path / "dup", names, parts[1], 2)
    with pytest.raises(InputError, match="held out in folds 1 and 2"):
        gather_out_of_fold([runs[0], runs[1], dup])


# ------------------------------------------------------------------------------ end to end on shared images
@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory) -> dict[str, Path]:
    """Three fold runs and a refit of a tiny model on 15 shared images (1 epoch each: the plumbing, not the model)."""
    if not (NIH / "images").is_dir():
        pytest.skip(f"shared NIH data not found at {NIH}; set CXRDEMO_DATA")
    tmp = tmp_path_factory.mktemp("folds")
    rows = list(csv.DictReader((NIH / "labels.csv").open()))
    present = {p.name for p in (NIH / "images").iterdir()}
    labels = write_csv(tmp / "labels.csv", [r for r in rows if r["Image Index"] in present][:15])
    common = [
        "train", "--images", str(NIH / "images"), "--labels", str(labels), "--boxes", str(NIH / "boxes.csv"),
        "--backbone", "mobilenet_v3_small", "--pretrained", "none", "--input-size", "64", "--epochs", "1",
        "--warmup-epochs", "0", "--stage2-epochs", "0", "--batch-size", "8", "--schedule", "cosine", "--keep", "last",
        "--no-disk-cache", "--no-plots", "--quiet", "--threads", "1", "--seed", "0", "--split-seed", "0",
    ]  # fmt: skip
    out = {"labels": labels, "tmp": tmp}
    for f in range(3):
        assert cli_main([*common, "--out", str(tmp / f"fold{f}"), "--folds", "3", "--fold", str(f)]) == 0
        out[f"fold{f}"] = tmp / f"fold{f}"
    assert cli_main([*common, "--out", str(tmp / "refit"), "--refit"]) == 0
    out["refit"] = tmp / "refit"
    return out


def test_folds_hold_out_every_image_once_and_the_refit_trains_on_all(fold_runs):
    everything = {r["Image Index"] for r in csv.DictReader(Path(fold_runs["labels"]).open())}
    held = [json.loads((fold_runs[f"fold{f}"] / "split.json").read_text())["val"] for f in range(3)]
    assert sorted(n for h in held for n in h) == sorted(everything)  # every image validation exactly once
    for f in range(3):
        split = json.loads((fold_runs[f"fold{f}"] / "split.json").read_text())
        assert set(split["train"]) | set(split["val"]) == everything and not set(split["train"]) & set(split["val"])
    refit_split = json.loads((fold_runs["refit"] / "split.json").read_text())
    assert sorted(refit_split["train"]) == sorted(everything) and refit_split["val"] == []
    splits = json.loads((fold_runs["refit"] / "model" / "data_splits.json").read_text())
    assert len(splits["train"]) == len(everything) and splits["validation"] == []


def test_cv_writes_the_final_model_with_oof_thresholds(fold_runs, capsys):
    from cxrdemo.models.weights import load_model

    out = fold_runs["tmp"] / "final"
    runs = [str(fold_runs[f"fold{f}"]) for f in range(3)]
    assert cli_main(["cv", "--runs", *runs, "--name", "tiny", "--compare", *runs, "--labels", str(fold_runs["labels"]),
                     "--refit", str(fold_runs["refit"] / "model"), "--out", str(out)]) == 0  # fmt: skip
    assert "out-of-fold mean AUC" in capsys.readouterr().out
    loaded = load_model(out, device="cpu")
    refit_sha = (fold_runs["refit"] / "model" / "model.safetensors.sha256").read_text().split()[0]
    assert loaded.sha256 == refit_sha  # the refit's weights, unchanged
    assert set(loaded.config.thresholds) == set(loaded.config.classes)
    assert loaded.config.extra["cross_validation"]["folds"] == 3
    card = (out / "README.md").read_text()
    assert "Every shared image was used to train this model" in card and refit_sha in card
    assert "cxrdemo cv" in card and "--refit" in card and "--folds 3 --fold 2" in card


def test_cv_compares_several_recipes(fold_runs, capsys):
    """Two ``--compare`` recipes each get their row and a paired difference; a name too many is refused."""
    out = fold_runs["tmp"] / "several"
    runs = [str(fold_runs[f"fold{f}"]) for f in range(3)]
    base = ["cv", "--runs", *runs, "--name", "tiny", "--labels", str(fold_runs["labels"]), "--out", str(out)]
    assert cli_main([*base, "--compare", *runs, "--compare-name", "same A", "--compare", *runs, "--compare-name", "same B"]) == 0
    doc = json.loads((out / "cv.json").read_text())
    assert [c["estimate"]["recipe"] for c in doc["compared"]] == ["same A", "same B"]
    # the same runs compared with themselves: a paired difference of exactly 0 (the same predictions on the same images)
    assert all(c["chosen_minus_it"]["diff"] == 0 for c in doc["compared"])
    table = (out / "cv.md").read_text()
    assert "same A" in table and "same B" in table
    capsys.readouterr()
    assert cli_main([*base, "--compare", *runs, "--compare-name", "one", "--compare-name", "two"]) == 1
    assert "2 --compare-name for 1 --compare" in capsys.readouterr().err


def test_refit_refuses_options_that_need_validation(fold_runs, capsys):
    args = ["train", "--images", str(NIH / "images"), "--labels", str(fold_runs["labels"]), "--out", str(fold_runs["tmp"] / "bad"), "--refit"]
    assert cli_main(args) == 1  # plateau schedule by default: needs validation
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --refit has no validation split") and "\n" not in err
    assert cli_main([*args[:-1], "--folds", "3"]) == 1
    assert "needs --fold" in capsys.readouterr().err


def test_partial_folds_only_with_allow_partial(tmp_path):
    """Folds that did not finish: refused by default; with ``allow_partial`` the result covers only the folds that ran
    and knows it is incomplete."""
    names = [f"{i:08d}_000.png" for i in range(9)]
    parts = [names[0:3], names[3:6], names[6:9]]
    runs = [_fake_fold(tmp_path / f"f{i}", names, parts[i], i) for i in range(2)]
    with pytest.raises(InputError, match="exactly once"):
        gather_out_of_fold(runs)
    oof = gather_out_of_fold(runs, allow_partial=True)
    assert oof.names == sorted(parts[0] + parts[1]) and oof.all_names == sorted(names) and not oof.complete
