"""Uniform weight averaging ("model soup") of models fine-tuned from the same starting weights on one split.

``python -m cxrdemo soup --out FOLDER MODEL MODEL [MODEL ...] --images ... --labels ...`` averages the weights of
two or more model folders (Wortsman et al., "Model soups", ICML 2022: fine-tunes of one pre-trained network that
stay in one basin can be averaged into a single network that is usually at least as good as the best of them, at
the cost of ONE forward pass, unlike an ensemble). What the soup needs, checked with a one-line error each:

- the same architecture, classes, box classes, input size, channels, normalisation and box head shape;
- the same ``data_splits.json`` (train them with ``train --split-seed``), so that the validation images are still
  unseen by every ingredient and the soup's thresholds and figures are on the same footing as theirs.

The backbone, its batch-norm statistics and the classification head (one linear layer) are averaged. The box head
is copied from the first ingredient: its hidden units (an MLP) started from a different random draw in each run and
are not aligned, so their average would be meaningless. Decision thresholds are chosen again on the validation
split (Youden's J, as ``train`` does), and the card reports the soup's validation figures with bootstrap intervals
beside every ingredient's on the same draws, plus the teacher's when ``--teacher-predictions`` is given.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from ..errors import ConfigError

#: State-dict prefixes copied from the first ingredient instead of averaged (see the module doc).
NOT_AVERAGED = ("box_head.",)
#: Config fields that must agree for weights to be averaged.
MUST_MATCH = ("architecture", "classes", "box_classes", "class_mode", "box_mode", "input_size", "channels", "mean", "std", "box_hidden")


@dataclass
class SoupResult:
    """What :func:`make_soup` wrote and measured."""

    folder: Path
    ingredients: list[str]
    mean_auc: float | None
    comparison: dict[str, Any]


def check_compatible(configs: Sequence[Any], splits: Sequence[Any], folders: Sequence[str]) -> None:
    """One-line :class:`ConfigError` unless every model can be averaged with the first (see the module doc)."""
    if len(configs) < 2:
        raise ConfigError("a soup needs at least two model folders; give two or more")
    first = configs[0]
    for cfg, folder in zip(configs[1:], folders[1:]):
        for key in MUST_MATCH:
            if getattr(cfg, key) != getattr(first, key):
                raise ConfigError(
                    f"{folder} differs from {folders[0]} in {key} ({getattr(cfg, key)!r} vs {getattr(first, key)!r}); "
                    "only models of one architecture and configuration can be averaged"
                )
    missing = next((f for f, s in zip(folders, splits) if s is None), None)
    if missing is not None:
        raise ConfigError(f"{missing} has no data_splits.json; a soup needs each model's split to check they share one")
    for s, folder in zip(splits[1:], folders[1:]):
        if s.validation != splits[0].validation or s.train != splits[0].train:
            raise ConfigError(
                f"{folder} was trained on a different split from {folders[0]}; train the ingredients with one "
                "--split-seed so their validation images stay unseen by all of them"
            )


def average_states(states: Sequence[dict], keep_first: Sequence[str] = NOT_AVERAGED) -> dict:
    """Uniform average of state dicts (floating tensors); integer buffers and ``keep_first`` prefixes: the first's."""
    import torch

    out = {}
    for key, first in states[0].items():
        if any(key.startswith(p) for p in keep_first) or not first.is_floating_point():
            out[key] = first.clone()
            continue
        stacked = torch.stack([s[key].to(torch.float64) for s in states])
        out[key] = stacked.mean(0).to(first.dtype)
    return out


def make_soup(
    folders: Sequence[str],
    out: str | Path,
    images: str,
    labels: str,
    boxes: str | None = None,
    teacher_csv: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    command: str = "",
    progress: bool = True,
) -> SoupResult:
    """Average ``folders`` into ``out`` (config, weights, sha256, data_splits.json, card); returns its figures."""
    from ..datasets.samples import load_samples, require_certain
    from ..evaluate import evaluate_samples
    from ..metrics import choose_thresholds
    from ..modelcard import render_card
    from .card import soup_card_body
    from ..provenance import image_key, write_splits
    from ..report import report_markdown
    from .teacher import bootstrap_mean_auc, read_teacher_predictions, validation_comparison
    from ..models.weights import load_model, save_model

    loaded = [load_model(f, device="cpu") for f in folders]
    check_compatible([m.config for m in loaded], [m.splits for m in loaded], list(folders))
    found = load_samples(images, labels, boxes, loaded[0].config.classes)
    require_certain(found.samples, labels)
    val_names = loaded[0].splits.validation
    val_set = [s for s in found.samples if image_key(s.name) in val_names]
    if len(val_set) < len(val_names):
        raise ConfigError(
            f"only {len(val_set)} of the {len(val_names)} validation images of {folders[0]} were found in {images} with a "
            f"label row in {labels}; point --images/--labels at the data the models were trained on"
        )
    teacher = read_teacher_predictions(teacher_csv, loaded[0].config.classes) if teacher_csv else None

    soup = copy.deepcopy(loaded[0].model)
    soup.load_state_dict(average_states([m.model.state_dict() for m in loaded]))
    config = soup.config = copy.deepcopy(loaded[0].config)

    results = []
    for i, model in enumerate([m.model for m in loaded] + [soup]):
        info = {"source": "this model folder" if model is soup else str(folders[i]), "revision": "see the sha256 above" if model is soup else loaded[i].sha256[:12], "architecture": config.architecture}
        results.append(evaluate_samples(model.to(device).eval(), val_set, model_info=info, device=device, batch_size=batch_size, progress=progress))
    final = results[-1]
    targets, probs = final.y_true, final.scores
    config.thresholds = choose_thresholds(targets, probs, config.classes)
    comparison = validation_comparison(final.names, targets, probs, teacher)
    rows = []
    for folder, m, r in zip(folders, loaded, results[:-1]):
        soup_ci, ingredient_ci = bootstrap_mean_auc(targets, probs, r.scores)  # same draws: the paired difference too
        training = (m.config.extra or {}).get("training") or {}
        rows.append({
            "folder": str(folder), "sha256": m.sha256, "mean_auc": r.mean_auc, "soup_minus": soup_ci,
            "ingredient": ingredient_ci, "commands": training.get("commands") or [],
            "seed": training.get("seed"),
        })
    first_training = dict((loaded[0].config.extra or {}).get("training") or {})
    train_names = loaded[0].splits.train
    first_training.update(  # the split's counts, from the data (also when the first card recorded none)
        n_train=len(train_names), n_val=len(val_set), n_val_boxes=sum(len(s.boxes) for s in val_set),
        n_train_boxes=sum(len(s.boxes) for s in found.samples if image_key(s.name) in train_names),
        n_boxes=sum(len(s.boxes) for s in found.samples if image_key(s.name) in train_names | val_names),
    )
    config.extra = {
        "training": first_training,
        "soup": {
            "method": "uniform weight average (box head from the first ingredient)",
            "ingredients": [{k: v for k, v in r.items() if k != "ingredient"} for r in rows],
            "command": command,
        },
        "validation": {
            "n_images": final.n_images, "n_boxes": final.n_boxes, "auc": final.auc, "mean_auc": final.mean_auc,
            "iou_accuracy": final.iou_accuracy, "cam_iou_accuracy": final.cam_iou_accuracy,
            "prior_iou_accuracy": final.prior_iou_accuracy, "cam_method": final.cam_method,
        },
    }
    config.extra["training"]["validation_ci"] = comparison
    config.validate()
    body = soup_card_body(first_training, rows, comparison, command, report_markdown(final, title="Validation", ours_name="this model"))
    folder = save_model(soup.to("cpu"), out, card=render_card(config, "{sha256}", body))
    write_splits(folder, sorted(train_names), sorted(val_names))
    return SoupResult(folder, [str(f) for f in folders], final.mean_auc, comparison)


# ---------------------------------------------------------------------------------------------------------- CLI
def add_soup_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``python -m cxrdemo soup``."""
    p = parser
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("models", nargs="+", help="two or more model folders (a run's model/) trained on one split")
    p.add_argument("--out", required=True, help="folder for the averaged model (config.json, model.safetensors, card)")
    p.add_argument("--images", required=True, help="folder of radiographs holding the validation images")
    p.add_argument("--labels", required=True, help="NIH-format label CSV")
    p.add_argument("--boxes", default=None, help="NIH-format box CSV (for the card's IoU tables)")
    p.add_argument("--teacher-predictions", default=None, metavar="CSV", help="the teacher's predictions.csv, to print its validation AUC beside the soup's")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_soup(args: argparse.Namespace) -> int:
    """Run ``soup`` from parsed arguments; returns the exit code."""
    argv = getattr(args, "argv", None) or sys.argv[1:]
    command = "python -m cxrdemo " + " ".join(shlex.quote(str(a)) for a in argv)
    res = make_soup(
        args.models, args.out, args.images, args.labels, args.boxes, args.teacher_predictions,
        device=args.device, batch_size=args.batch_size, command=command, progress=not args.quiet,
    )
    mean = "n/a" if res.mean_auc is None else f"{res.mean_auc:.3f}"
    print(f"soup of {len(res.ingredients)} models: validation mean AUC {mean}; model in {res.folder}")
    return 0
