"""Out-of-fold predictions of ``train --folds K --fold I`` runs, and what they estimate.

Each fold run records, per epoch, its probabilities for the images of its held-out fold (``val_probs.npz``) and its
split (``split.json``). :func:`gather_out_of_fold` joins the K runs of one recipe into one prediction per image,
made by the one fold model that never trained on that image, after checking that the runs are the K folds of one
partition (same K and seed, every fold once, no image twice). :func:`recipe_estimate` gives the pooled out-of-fold
mean AUC with a percentile bootstrap interval (the same draws as :func:`cxrdemo.training.teacher.bootstrap_mean_auc`, so two
recipes, or a recipe and the teacher, get a paired difference), the per-fold mean AUCs and the per-epoch curve.

Torch-free (numpy, scikit-learn, scipy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .teacher import bootstrap_mean_auc, mean_auc


@dataclass(frozen=True)
class FoldRun:
    """One ``train --folds K --fold I`` run: its held-out images and their probabilities per epoch."""

    folder: Path
    folds: int
    fold: int
    seed: int
    names: tuple[str, ...]  # the held-out (validation) images, in the order of the probabilities
    train_names: tuple[str, ...]
    probs_by_epoch: dict[int, np.ndarray]
    commands: tuple[str, ...] = ()
    train_minutes: float | None = None


@dataclass
class OutOfFold:
    """One recipe's out-of-fold predictions: every image once, predicted by the fold model that never saw it."""

    recipe: str
    runs: list[FoldRun]
    names: list[str]  # sorted image names
    fold_of: np.ndarray  # (images,) the fold each image was held out in
    epoch: int  # the epoch whose predictions are used
    probs_by_epoch: dict[int, np.ndarray]  # epoch -> (images, classes), rows in ``names`` order
    all_names: list[str] = field(default_factory=list)  # every image of the data (== names when every fold ran)

    @property
    def complete(self) -> bool:
        """Whether every fold ran (every image has an out-of-fold prediction)."""
        return len(self.names) == len(self.all_names)

    @property
    def probs(self) -> np.ndarray:
        return self.probs_by_epoch[self.epoch]


@dataclass
class RecipeEstimate:
    """Out-of-fold figures of one recipe (pooled over folds unless said otherwise)."""

    recipe: str
    n_images: int
    mean_auc: float | None
    lo: float | None
    hi: float | None
    per_class: dict[str, float | None]
    per_fold: list[float | None]  # each fold model on its own held-out images
    by_epoch: dict[int, float | None]  # pooled mean AUC of every epoch (for the curve; the estimate uses ``epoch``)
    epoch: int
    extra: dict[str, Any] = field(default_factory=dict)


def read_fold_run(folder: str | Path) -> FoldRun:
    """Read a fold run folder (``split.json``, ``val_probs.npz``, and ``model/config.json`` when present)."""
    folder = Path(folder)
    split_path, probs_path = folder / "split.json", folder / "val_probs.npz"
    if not split_path.is_file() or not probs_path.is_file():
        raise InputError(f"{folder} is not a finished `train --folds K --fold I` run (needs split.json and val_probs.npz)")
    try:
        split = json.loads(split_path.read_text(encoding="utf-8"))
        with np.load(probs_path, allow_pickle=False) as z:
            names = tuple(str(n) for n in z["names"])
            by_epoch = {int(k.split("_", 1)[1]): np.asarray(z[k], dtype=np.float64) for k in z.files if k.startswith("epoch_")}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{folder}: unreadable split.json or val_probs.npz ({str(exc).splitlines()[0][:80]}); rerun that fold") from None
    if split.get("folds") is None or split.get("fold") is None:
        raise InputError(f"{folder} was not trained with --folds/--fold (its split.json names no fold); use k-fold runs")
    if tuple(split.get("val", [])) != names:
        raise InputError(f"{folder}: val_probs.npz and split.json list different images; rerun that fold")
    commands: tuple[str, ...] = ()
    minutes = None
    config_path = folder / "model" / "config.json"
    if config_path.is_file():
        training = (json.loads(config_path.read_text(encoding="utf-8")).get("extra") or {}).get("training") or {}
        commands, minutes = tuple(training.get("commands") or ()), training.get("train_minutes")
    return FoldRun(folder, int(split["folds"]), int(split["fold"]), int(split["seed"]), names, tuple(split.get("train", [])), by_epoch, commands, minutes)


def gather_out_of_fold(folders: Sequence[str | Path], recipe: str = "", epoch: int | None = None, allow_partial: bool = False) -> OutOfFold:
    """Join the K fold runs of one recipe (checked: one partition, every fold once, no image twice, every image).

    ``epoch``: whose predictions to use (default: the last epoch every run recorded, the one a fixed-epoch
    ``--keep last`` run keeps). ``allow_partial``: accept a subset of the folds (each at most once); the result
    then covers only their held-out images (:attr:`OutOfFold.complete` is False) and says so in the card.
    """
    runs = [read_fold_run(f) for f in folders]
    k, seed = runs[0].folds, runs[0].seed
    if any(r.folds != k or r.seed != seed for r in runs):
        raise InputError("the runs come from different partitions (--folds or --split-seed differ); give the K folds of one partition")
    got = sorted(r.fold for r in runs)
    if got != list(range(k)) and not (allow_partial and len(set(got)) == len(got)):
        raise InputError(f"the runs hold folds {got} of {k}: give each fold 0..{k - 1} exactly once")
    every = set(runs[0].names) | set(runs[0].train_names)
    seen: dict[str, int] = {}
    for r in runs:
        for n in r.names:
            if n in seen:
                raise InputError(f"{n} is held out in folds {seen[n]} and {r.fold}: these runs are not one partition")
            seen[n] = r.fold
    if not set(seen) <= every or (set(seen) != every and got == list(range(k))):
        raise InputError(f"the folds hold out {len(seen)} images but the data has {len(every)}: a fold run used other data")
    common = set.intersection(*(set(r.probs_by_epoch) for r in runs))
    if not common:
        raise InputError("the fold runs share no recorded epoch; let every fold finish")
    chosen = max(common) if epoch is None else int(epoch)
    if chosen not in common:
        raise InputError(f"epoch {chosen} is not recorded by every fold (common epochs: {sorted(common)})")
    names = sorted(seen)
    row = {n: i for i, n in enumerate(names)}
    by_epoch = {}
    for e in sorted(common):
        probs = np.zeros((len(names), runs[0].probs_by_epoch[e].shape[1]))
        for r in runs:
            probs[[row[n] for n in r.names]] = r.probs_by_epoch[e]
        by_epoch[e] = probs
    fold_of = np.array([seen[n] for n in names])
    return OutOfFold(recipe, sorted(runs, key=lambda r: r.fold), names, fold_of, chosen, by_epoch, sorted(every))


def targets_for(names: Sequence[str], labels_csv: str | Path, classes: Sequence[str]) -> np.ndarray:
    """Multi-hot NIH labels ``(images, classes)`` for ``names`` from an NIH label CSV (every name must have a row, and
    no uncertain label: :func:`cxrdemo.datasets.samples.require_certain`)."""
    from ..datasets.samples import read_label_csv, require_certain

    rows = read_label_csv(labels_csv)
    missing = [n for n in names if n not in rows]
    if missing:
        raise InputError(f"{len(missing)} fold images have no row in {labels_csv} (e.g. {missing[0]}); use the label CSV the folds trained with")
    require_certain((rows[n] for n in names), labels_csv)
    return np.array([[1.0 if c in rows[n].labels else 0.0 for c in classes] for n in names])


def recipe_estimate(oof: OutOfFold, targets: np.ndarray, classes: Sequence[str], n: int = 1000, seed: int = 0) -> RecipeEstimate:
    """Pooled out-of-fold mean AUC with a 95% percentile bootstrap interval, per class, per fold, per epoch."""
    from ..metrics import per_class_auc

    ci = bootstrap_mean_auc(targets, oof.probs, n=n, seed=seed)[0]
    per_fold = [mean_auc(targets[oof.fold_of == r.fold], oof.probs[oof.fold_of == r.fold]) for r in oof.runs]
    by_epoch = {e: mean_auc(targets, p) for e, p in oof.probs_by_epoch.items()}
    return RecipeEstimate(
        oof.recipe, len(oof.names), ci["mean_auc"], ci["lo"], ci["hi"], per_class_auc(targets, oof.probs, classes),
        per_fold, by_epoch, oof.epoch,
    )


def paired_difference(targets: np.ndarray, first: np.ndarray, second: np.ndarray, n: int = 1000, seed: int = 0) -> dict[str, float | None]:
    """``first`` minus ``second`` mean AUC on the same images, with the 95% interval of the paired bootstrap."""
    res = bootstrap_mean_auc(targets, first, second, n=n, seed=seed)[0]
    return {"diff": res.get("diff_vs_second"), "lo": res.get("diff_lo"), "hi": res.get("diff_hi"), "n_images": len(targets)}


def teacher_comparison(oof: OutOfFold, targets: np.ndarray, teacher_csv: str | Path, classes: Sequence[str], n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The recipe and the teacher on the images with a teacher row (same draws; paired difference)."""
    from .teacher import read_teacher_predictions

    teacher = read_teacher_predictions(teacher_csv, classes)
    tp, mask = teacher.targets_for(oof.names)
    ours, theirs = bootstrap_mean_auc(targets[mask], oof.probs[mask], tp[mask], n=n, seed=seed)
    return {"ours": ours, "teacher": theirs, "n_images": int(mask.sum()), "source": teacher.source, "file": str(teacher_csv)}
