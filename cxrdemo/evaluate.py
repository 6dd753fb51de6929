"""``python -m cxrdemo evaluate``: a model judged in CLN's protocol on labelled (and boxed) radiographs.

For every image (decoded and preprocessed exactly as at inference): the class probabilities (-> per-class AUC,
CLN Table 2) and, for every ground-truth box, the best same-class IoU of three kinds of box (-> IoU accuracy at
T = 0.1..0.7, CLN Table 1):
- the model's box for the box's class (box head);
- the CAM box: the CAM of the ground-truth class (the class is given, as in CLN 3.4.3), thresholded at
  ``cam_threshold``/255, largest connected region (:func:`cxrdemo.explain.cam_box`);
- the prior box: the config's per-class mean training box (the baseline a box head must beat).
Outputs ``report.json`` (keys exactly: n_images, n_boxes, auc, mean_auc, iou_accuracy, cam_iou_accuracy,
prior_iou_accuracy, model, timings), ``report.md`` (CLN-style tables with the paper's figures) and plots.

Deterministic: eval mode, no augmentation, fixed order; CPU and GPU agree within float tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .boxes import Box
from .data import Sample, load_samples
from .errors import InputError
from .imaging import load_image
from .metrics import BoxMatch, best_matches, iou_accuracy, mean_of, per_class_auc
from .model import MultiTaskNet
from .preprocess import box_to_original, normalise, resize_gray

if TYPE_CHECKING:
    from .provenance import DataSplits

REPORT_KEYS = (
    "n_images",
    "n_boxes",
    "auc",
    "mean_auc",
    "iou_accuracy",
    "cam_iou_accuracy",
    "prior_iou_accuracy",
    "model",
    "timings",
)


@dataclass
class EvalResult:
    """Everything one evaluation measured. :meth:`to_json` gives ``report.json``.

    Attributes beyond the report keys (``names``, ``y_true``, ``scores``, the ``*_matches``) feed plots and tests.
    """

    n_images: int
    n_boxes: int
    auc: dict[str, float | None]
    mean_auc: float | None
    iou_accuracy: dict[str, dict[str, float | None]]
    cam_iou_accuracy: dict[str, dict[str, float | None]]
    prior_iou_accuracy: dict[str, dict[str, float | None]]
    model: dict[str, Any]
    timings: dict[str, float]
    classes: list[str] = field(default_factory=list)
    box_classes: list[str] = field(default_factory=list)
    cam_method: str = "gradcam"
    cam_threshold: int = 127
    names: list[str] = field(default_factory=list)
    y_true: np.ndarray | None = None
    scores: np.ndarray | None = None
    model_matches: list[BoxMatch] = field(default_factory=list)
    cam_matches: list[BoxMatch] = field(default_factory=list)
    prior_matches: list[BoxMatch] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` document (exactly :data:`REPORT_KEYS`)."""
        return {k: getattr(self, k) for k in REPORT_KEYS}


def _decode(sample: Sample, size: int) -> tuple[np.ndarray, int, int]:
    rad = load_image(sample.path)
    return resize_gray(rad.pixels, size), rad.width, rad.height


def evaluate_samples(
    model: MultiTaskNet,
    samples: Sequence[Sample],
    *,
    model_info: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    cam_method: str = "gradcam",
    cam_threshold: int = 127,
    decode_threads: int = 2,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on ``samples`` (see module doc); the model is put in eval mode on ``device``."""
    from tqdm.auto import tqdm

    from .cams import check_method, check_threshold
    from .explain import cam_box, cam_heatmaps

    cam_method = check_method(cam_method)
    cam_threshold = check_threshold(cam_threshold)
    config = model.config
    device = torch.device(device)
    model = model.to(device).eval()
    classes, box_classes = list(config.classes), list(config.box_classes)
    class_index = {c: i for i, c in enumerate(classes)}
    scores = np.zeros((len(samples), len(classes)), dtype=np.float64)
    model_m: list[BoxMatch] = []
    cam_m: list[BoxMatch] = []
    prior_m: list[BoxMatch] = []
    n_boxes = 0
    t_model = t_cam = 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool:
        for start in range(0, len(samples), batch_size):
            chunk = list(samples[start : start + batch_size])
            decoded = list(pool.map(lambda s: _decode(s, config.input_size), chunk))
            x = normalise(np.stack([d[0] for d in decoded]), config).to(device)
            t1 = time.perf_counter()
            with torch.no_grad():
                feats = model.forward_features(x)
                out = model.heads(feats)
                probs = model.probabilities(out.logits).float().cpu().numpy()
                pred_boxes = out.boxes.float().cpu().numpy()
            t_model += time.perf_counter() - t1
            scores[start : start + len(chunk)] = probs
            # CAM targets: one map per (image, ground-truth class present in its boxes).
            pairs: list[tuple[int, str]] = []
            for i, s in enumerate(chunk):
                for lab in dict.fromkeys(b.label for b in s.boxes if b.label in class_index):
                    pairs.append((i, lab))
            cam_boxes: dict[tuple[int, str], Box | None] = {}
            if pairs:
                t2 = time.perf_counter()
                maps = cam_heatmaps(model, feats[[i for i, _ in pairs]].float(), [class_index[l] for _, l in pairs], cam_method)
                t_cam += time.perf_counter() - t2
                for (i, lab), hm in zip(pairs, maps):
                    w, h = decoded[i][1], decoded[i][2]
                    cam_boxes[(i, lab)] = cam_box(hm, cam_threshold, width=w, height=h, label=lab)
            for i, s in enumerate(chunk):
                if not s.boxes:
                    continue
                w, h = decoded[i][1], decoded[i][2]
                truth = [b for b in s.boxes_in_pixels(w, h) if b.label in box_classes]
                n_boxes += len(truth)
                mine = _model_boxes(pred_boxes[i], probs[i], config, w, h)
                priors = [box_to_original(config.prior_boxes[c], w, h, label=c) for c in box_classes if c in config.prior_boxes]
                cams = [b for (j, _), b in cam_boxes.items() if j == i and b is not None]
                model_m += best_matches(truth, mine, s.name)
                cam_m += best_matches(truth, cams, s.name)
                prior_m += best_matches(truth, priors, s.name)
            bar.update(len(chunk))
    bar.close()
    total = time.perf_counter() - t0
    y_true = np.stack([s.target(classes) for s in samples]) if samples else np.zeros((0, len(classes)))
    auc = per_class_auc(y_true, scores, classes)
    timings = {
        "images_per_second": round(len(samples) / total, 2) if total > 0 else 0.0,
        "model_images_per_second": round(len(samples) / t_model, 2) if t_model > 0 else 0.0,
        "cam_maps_per_second": round(len(cam_m) / t_cam, 2) if t_cam > 0 else 0.0,
        "total_seconds": round(total, 2),
    }
    return EvalResult(
        n_images=len(samples),
        n_boxes=n_boxes,
        auc=auc,
        mean_auc=mean_of(auc),
        iou_accuracy=iou_accuracy(model_m, box_classes),
        cam_iou_accuracy=iou_accuracy(cam_m, box_classes),
        prior_iou_accuracy=iou_accuracy(prior_m, box_classes),
        model=dict(model_info or {"source": None, "revision": None, "architecture": config.architecture}),
        timings=timings,
        classes=classes,
        box_classes=box_classes,
        cam_method=cam_method,
        cam_threshold=cam_threshold,
        names=[s.name for s in samples],
        y_true=y_true,
        scores=scores,
        model_matches=model_m,
        cam_matches=cam_m,
        prior_matches=prior_m,
    )


def _model_boxes(boxes: np.ndarray, probs: np.ndarray, config, width: int, height: int) -> list[Box]:
    """The box head's output in original pixels, one per box class (a single-box model's box gets every label)."""
    if config.box_mode == "single":
        return [box_to_original(boxes[0], width, height, label=c) for c in config.box_classes]
    idx = {c: i for i, c in enumerate(config.classes)}
    return [
        box_to_original(boxes[k], width, height, label=c, score=float(probs[idx[c]]))
        for k, c in enumerate(config.box_classes)
    ]


def write_report(
    result: EvalResult, out: str | Path, plots: bool = True, title: str = "cxrdemo evaluation", notes: Sequence[str] = ()
) -> Path:
    """Write ``report.json``, ``report.md`` (with ``notes`` under its title) and optionally the plots into ``out``."""
    from .report import plot_iou_accuracy, plot_roc, report_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    figures: list[str] = []
    if plots:
        figures = [plot_roc(result, out / "roc.png").name, plot_iou_accuracy(result, out / "iou_accuracy.png").name]
    (out / "report.md").write_text(report_markdown(result, title=title, figures=figures, notes=notes), encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------------------------- CLI
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``python -m cxrdemo evaluate``."""
    parser.add_argument("--images", required=True, help="folder of radiographs (only those with a label row are used)")
    parser.add_argument("--labels", required=True, help="NIH-format label CSV (Data_Entry_2017_v2020.csv; .gz ok)")
    parser.add_argument("--boxes", default=None, help="NIH-format box CSV (BBox_List_2017.csv; .gz ok)")
    parser.add_argument("--weights", default=None, help="model folder, Hub id owner/name[@rev], or the default weights")
    parser.add_argument("--cam", default="gradcam", help="CAM method for the CAM boxes (gradcam, gradcam++, eigencam, layercam, ...)")
    parser.add_argument("--cam-threshold", type=int, default=127, help="CAM box threshold on the 0..255 map (CLN: 127 or 180)")
    parser.add_argument("--out", default="evaluation", help="output folder for report.json, report.md and plots")
    parser.add_argument("--names", default=None, help="text file of image file names to restrict to (e.g. a run's val_images.txt)")
    parser.add_argument("--unseen", action="store_true", help="skip the images the model was trained or validated on (its data_splits.json)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def read_names(path: str | Path) -> list[str]:
    """File names listed one per line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def seen_images(samples: Sequence[Sample], splits: "DataSplits | None", drop: bool = False) -> tuple[list[Sample], list[str]]:
    """The samples to evaluate and one-line notes on those the model was trained or validated on.

    With ``drop`` they are removed (``--unseen``); otherwise they stay and the note says the numbers are not a test.
    """
    if splits is None:
        return list(samples), []
    roles = [splits.role(s.name) for s in samples]
    n_train, n_val = roles.count("train"), roles.count("validation")
    if not n_train and not n_val:
        return list(samples), []
    seen = f"{n_train} of the {len(samples)} images are this model's training images and {n_val} its validation images"
    if drop:
        kept = [s for s, r in zip(samples, roles) if r is None]
        return kept, [f"{seen}; --unseen left {len(kept)} images the model never saw"]
    return list(samples), [f"{seen}: these numbers are not a test of the model; add --unseen to skip them"]


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` from parsed arguments; prints the summary and the report path; returns the exit code."""
    from .device import pick_device
    from .weights import describe_model, load_model

    torch.manual_seed(0)
    device = pick_device(args.device)
    loaded = load_model(args.weights, device=device)
    names = read_names(args.names) if args.names else None
    found = load_samples(args.images, args.labels, args.boxes, loaded.config.classes, names=names)
    samples, notes = seen_images(found.samples, loaded.splits, drop=args.unseen)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if not samples:
        raise InputError("no image left to evaluate: every one was seen by the model in training or validation")
    result = evaluate_samples(
        loaded.model,
        samples,
        model_info=describe_model(loaded),
        device=device,
        batch_size=args.batch_size,
        cam_method=args.cam,
        cam_threshold=args.cam_threshold,
        progress=not args.quiet,
    )
    out = write_report(result, args.out, plots=not args.no_plots, notes=notes)
    mean = "n/a" if result.mean_auc is None else f"{result.mean_auc:.3f}"
    iou = result.iou_accuracy["0.1"]["mean"]
    print(
        f"{result.n_images} images, {result.n_boxes} boxes: mean AUC {mean}, "
        f"IoU accuracy at 0.1 {('n/a' if iou is None else f'{iou:.3f}')}; report in {out}/report.md"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrdemo.evaluate ...`` is ``python -m cxrdemo evaluate ...``."""
    from .cli import main as cli_main

    return cli_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
