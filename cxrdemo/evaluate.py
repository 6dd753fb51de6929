"""``python -m cxrdemo evaluate``: a model judged in CLN's protocol, and its explanations audited, on labelled images.

For every image (decoded and preprocessed exactly as at inference): the class probabilities (-> per-class AUC with
95 % CIs, CLN Table 2) and, for every ground-truth box, the best same-class IoU of three kinds of box (-> IoU
accuracy at T = 0.1..0.7, CLN Table 1):
- the model's box for the box's class (box head, through :func:`cxrdemo.predict.model_boxes_in_pixels`);
- the CAM box: the CAM of the ground-truth class (the class is given, as in CLN 3.4.3), thresholded at
  ``cam_threshold``/255, largest connected region (:func:`cxrdemo.explain.cam_box`);
- the prior box: the config's per-class mean training box (the baseline a box head must beat).
Then the explanation audit (:mod:`cxrdemo.audit`): per CAM method the pointing game, energy in the box and mask
IoUs of every box's map, ROAD (``--faithfulness``), cascading randomization and class sensitivity (``--sanity``),
and a paired comparison with a baseline's predictions or a second model. The engine is
:func:`cxrdemo.audit.engine.run_audit`; this module is its command line (and :func:`evaluate_samples`, the plain
CLN evaluation of a model object that training calls on its validation split).

Deterministic: eval mode, no augmentation, fixed order, seeded bootstraps; any batch size, number of DataLoader
workers or ``torchrun`` processes gives the same numbers (within float tolerance).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .audit.engine import AuditOptions, run_audit
from .audit.regions import READER_RULES
from .audit.selection import read_names, seen_images
from .datasets.samples import Sample
from .datasets.vocabulary import POLICIES
from .audit.result import AUDIT_KEYS
from .errors import InputError
from .evalresult import REPORT_KEYS, EvalResult
from .models.cln import MultiTaskNet

__all__ = ["AUDIT_KEYS", "REPORT_KEYS", "EvalResult", "evaluate_samples", "write_report", "read_names", "seen_images", "run_evaluate"]


def evaluate_samples(
    model: MultiTaskNet,
    samples: Sequence[Sample],
    *,
    model_info: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    cam_method: str = "gradcam",
    cam_threshold: int = 127,
    decode_threads: int = 0,
    progress: bool = True,
) -> EvalResult:
    """CLN's protocol for a model object on ``samples`` (the audit's per-batch code, one CAM method, no files).

    ``decode_threads``: DataLoader worker processes decoding the images (0: in this process).
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .audit.engine import check_methods
    from .audit.perimage import BatchAuditor, DecodeSet, Plan, collate
    from .audit.summary import SummaryInputs, evaluation
    from .cams import check_threshold

    methods = check_methods([cam_method])
    plan = Plan(methods, check_threshold(cam_threshold))
    device = torch.device(device)
    auditor = BatchAuditor(model, plan, device)
    loader = DataLoader(DecodeSet(list(enumerate(samples)), auditor.sizes), batch_size=max(1, batch_size),
                        num_workers=max(0, decode_threads), collate_fn=collate)  # fmt: skip
    records = []
    t0 = time.perf_counter()
    with tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress, leave=False) as bar:
        for batch in loader:
            records += auditor(batch)
            bar.update(len(batch))
    total = time.perf_counter() - t0
    secs = auditor.seconds
    n_cases = sum(len(r.cases) for r in records)
    timings = {
        "images_per_second": round(len(samples) / total, 2) if total > 0 else 0.0,
        "model_images_per_second": round(len(samples) / secs["model"], 2) if secs["model"] > 0 else 0.0,
        "cam_maps_per_second": round(n_cases / secs["cam"], 2) if secs["cam"] > 0 else 0.0,
        "total_seconds": round(total, 2),
    }
    info = dict(model_info or {"source": None, "revision": None, "architecture": model.config.architecture})
    inputs = SummaryInputs(config=model.config, samples=samples, methods=list(methods), model_info=info,
                           cam_threshold=plan.cam_threshold, timings=timings)  # fmt: skip
    return evaluation(records, inputs)


def write_report(
    result: EvalResult, out: str | Path, plots: bool = True, title: str = "cxrdemo evaluation", notes: Sequence[str] = ()
) -> Path:
    """Write ``report.json`` (:data:`REPORT_KEYS`), ``report.md`` and optionally the ROC / IoU plots into ``out``."""
    import json

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
    """Arguments of ``python -m cxrdemo evaluate`` (every one with its help and default)."""
    from .audit.engine import default_workers
    from .cams import CAM_METHOD_KEYS

    add = parser.add_argument
    add("--images", required=True, metavar="DIR", help="folder of radiographs (PNG, JPEG, DICOM); only those with a label row are used (required)")
    add("--labels", required=True, metavar="FILE",
        help="image labels, [layout:]file in any layout of docs/datasets.md (NIH's Data_Entry_2017_v2020.csv, CheXpert, "
             "VinDr, RSNA, COCO...; .gz ok; a box file gives its images' labels too) (required)")  # fmt: skip
    add("--boxes", default=None, metavar="FILE",
        help="ground-truth boxes, [layout:]file in any layout of docs/datasets.md (NIH's BBox_List_2017.csv, VinDr, "
             "RSNA, ChestX-Det, MS-CXR, COCO...) (default: none, no localisation)")  # fmt: skip
    add("--uncertain", default="ignore", choices=POLICIES,
        help="uncertain labels (-1, CheXpert): ignore = leave the image out of that class's AUC only (it counts for "
             "every other class and keeps its boxes), counted per class in the report; or count them as positive / "
             "negative (default: %(default)s)")  # fmt: skip
    add("--alias", action="append", default=[], metavar="NAME=LABEL",
        help="score the data set's class NAME as the model's LABEL, said in the report (e.g. \"Lung Opacity=Pneumonia\" "
             "for RSNA's boxes); repeatable (default: none: a name is scored only as what it means, docs/datasets.md)")  # fmt: skip
    add("--weights", default=None, metavar="SRC", help="model folder, Hub id owner/name[@rev] (default: $CXRDEMO_WEIGHTS or the embedded weights)")
    add("--cam-methods", "--cam", dest="cam_methods", default="gradcam", metavar="LIST",
        help=f"comma-separated CAM methods to audit, of {', '.join(CAM_METHOD_KEYS)}; the first gives report.json's "
             "cam_iou_accuracy (default: %(default)s)")  # fmt: skip
    add("--cam-threshold", type=int, default=127, metavar="N", help="CAM box threshold on the 0..255 map, 1..254 (CLN: 127 or 180) (default: %(default)s)")
    add("--pointing-tolerance", type=float, default=0.0, metavar="PX", help="pointing game: a hit when the map's maximum lies within PX original pixels of the box (default: %(default)s)")
    add("--reader-rule", choices=READER_RULES, default=READER_RULES[0],
        help="ground truth with several readers: score each figure against each reader's regions and average "
             "(per_reader) or against the union of the readers' regions (union); docs/audit.md (default: %(default)s)")
    add("--faithfulness", action="store_true", help="ROAD combined of the top-1 class's map, per method (about 0.6 CPU-s per image and method, docs/faithfulness.md) (default: off)")
    add("--faithfulness-images", type=int, default=256, metavar="N", help="images scored with ROAD: a seeded choice spread over the data set; 0 = every image (default: %(default)s)")
    add("--sanity", action="store_true", help="cascading randomization (class head, then backbone stages from the top) and class sensitivity, per method (default: off)")
    add("--sanity-images", type=int, default=8, metavar="N", help="images for the randomization cascade (class sensitivity uses every image); 0 = every image (default: %(default)s)")
    add("--baseline-predictions", default=None, metavar="CSV",
        help="another model's per-image probabilities (Image Index, prob_<Label>: reproduce-chexnet's preds.csv or our "
             "predictions.csv): per-label AUC of both on the images both have, paired bootstrap CIs (default: none)")  # fmt: skip
    add("--compare-weights", default=None, metavar="SRC", help="a second model (folder or Hub id) run here on the same images and compared like a baseline (default: none)")
    add("--out", default=None, metavar="DIR", help="output folder, never inside the repository (default: ./cxrdemo-evaluation; required when the current directory is inside the repository)")
    add("--resume", action="store_true", help="reuse the per-image results cached in --out by an interrupted run with the same settings (default: start afresh)")
    add("--names", default=None, metavar="FILE", help="text file of image file names to restrict to, e.g. a run's val_images.txt (default: every labelled image)")
    add("--limit", type=int, default=0, metavar="N", help="audit the first N labelled images of the folder (sorted by name), those with a ground-truth box first, as the app's audit page does; 0 = every image (default: %(default)s)")
    add("--unseen", action="store_true", help="skip the images the model was trained or validated on, per its data_splits.json (default: keep them, with a note)")
    add("--batch-size", type=int, default=32, metavar="N", help="images per batched forward and batched CAM call (default: %(default)s)")
    add("--workers", type=int, default=default_workers(), metavar="N", help="DataLoader worker processes decoding images; 0 = decode in the main process (default: %(default)s)")
    add("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps; under torchrun each process takes cuda:LOCAL_RANK (default: %(default)s)")
    add("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (over images) behind every 95%% CI (default: %(default)s)")
    add("--seed", type=int, default=0, help="seeds the bootstraps, the ROAD / sanity image choice, ROAD's noise and the randomization (default: %(default)s)")
    add("--no-plots", action="store_true", help="skip the PNG plots (default: plots written)")
    add("--no-gallery", action="store_true", help="skip gallery.html and its thumbnails (default: written)")
    add("--quiet", action="store_true", help="no progress bar (default: progress on stderr)")
    return parser


def options_from_args(args: argparse.Namespace, out: Path) -> AuditOptions:
    """The :class:`AuditOptions` of parsed ``evaluate`` arguments.

    Raises:
        InputError: ``--limit`` below 0, or no labelled image in the folder.
    """
    from .audit.selection import limit_names

    from .datasets.bridge import export_nih

    names = read_names(args.names) if args.names else None
    limit = getattr(args, "limit", 0) or 0
    if limit < 0:
        raise InputError(f"--limit {limit} must be 0 (every image) or more")
    rank = int(os.environ.get("RANK", "0") or 0)
    truth = export_nih(args.labels, args.boxes, args.images, out / ("ground_truth" if rank == 0 else f"ground_truth-{rank}"),
                       policy=getattr(args, "uncertain", "ignore"), aliases=parse_aliases(getattr(args, "alias", [])))  # fmt: skip
    if limit:
        names = limit_names(truth.images, truth.labels, truth.boxes, limit, names)
    return AuditOptions(
        images=truth.images, labels=truth.labels, boxes=truth.boxes, weights=args.weights, out=out,
        extra_notes=list(truth.notes),
        names=names, unseen=args.unseen, cam_methods=args.cam_methods,
        cam_threshold=args.cam_threshold, pointing_tolerance=args.pointing_tolerance, faithfulness=args.faithfulness,
        faithfulness_images=args.faithfulness_images, sanity=args.sanity, sanity_images=args.sanity_images,
        baseline_predictions=args.baseline_predictions, compare_weights=args.compare_weights,
        batch_size=args.batch_size, workers=args.workers, device=args.device, resume=args.resume,
        n_resamples=args.bootstrap, seed=args.seed, plots=not args.no_plots, gallery=not args.no_gallery,
        reader_rule=getattr(args, "reader_rule", READER_RULES[0]),
        regions=truth.regions if truth.converted else None,
    )  # fmt: skip


def parse_aliases(items: Sequence[str]) -> dict[str, str]:
    """``--alias NAME=LABEL`` values as ``{NAME: LABEL}``.

    Raises:
        InputError: an item without ``=`` or with an empty side (one line).
    """
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, label = str(item).partition("=")
        if not sep or not name.strip() or not label.strip():
            raise InputError(f"--alias {item!r}: write NAME=LABEL, e.g. --alias \"Lung Opacity=Pneumonia\"")
        out[name.strip()] = label.strip()
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` from parsed arguments; prints the summary and the report path; returns the exit code."""
    from tqdm.auto import tqdm

    from .audit.outputs import resolve_out

    out = resolve_out(args.out)
    main_rank = int(os.environ.get("RANK", "0") or 0) == 0
    bar = None

    def progress(done: int, total: int, stage: str) -> None:
        nonlocal bar
        if args.quiet or not main_rank:
            return
        if stage == "images":
            if bar is None:
                bar = tqdm(total=total, desc="evaluate", unit="img", leave=False)
            bar.update(done - bar.n)
        elif stage in ("road", "sanity"):
            if bar is not None and done:
                bar.set_postfix_str(f"{stage} {done}/{total}")
        elif stage == "statistics":
            if bar is not None:
                bar.close()
                bar = None
            print("statistics (bootstrap CIs, references, verdicts) and outputs...", file=sys.stderr)

    try:
        result = run_audit(options_from_args(args, out), progress=progress)
    except KeyboardInterrupt:
        if main_rank:
            print(f"note: the images done so far are cached in {out}/cache: rerun with --resume to continue", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    if not main_rank:
        return 0
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    ev = result.evaluation
    mean = "n/a" if ev.mean_auc is None else f"{ev.mean_auc:.3f}"
    ci = result.mean_auc_ci
    if ci and ci.get("low") is not None:
        mean += f" (95% CI {ci['low']:.3f}-{ci['high']:.3f})"
    boxless = not ev.model_matches and ev.cam_matches  # a model without a box head (cxrdemo.models)
    which = ev.cam_iou_accuracy if boxless else ev.iou_accuracy
    n_classes = sum(v is not None for k, v in which["0.1"].items() if k != "mean")
    iou = which["0.1"]["mean"]
    iou_text = "n/a" if iou is None else f"{iou:.3f}"
    what = "no box head, so CAM-box" if boxless else "model-box"
    print(
        f"{ev.n_images} images, {ev.n_boxes} boxes: mean AUC {mean}; {what} IoU accuracy at T=0.1, mean of the "
        f"per-class shares over the {n_classes} box classes with boxes: {iou_text}; report in {out}/report.md"
    )
    if result.detection:
        print(detection_line(result.detection))
    return 0


def detection_line(doc: dict[str, Any]) -> str:
    """One line of a detector's headline figures (``report.json``'s ``detection``) for the command line."""

    def num(est: dict[str, Any] | None) -> str:
        value = (est or {}).get("value")
        return "n/a" if value is None else f"{value:.3f}"

    aps = "; ".join(f"mAP@{k} {num(v['mean'])} over {len(v['classes_in_mean'])} classes" for k, v in doc["ap"].items())
    froc = "; ".join(f"FROC mean sensitivity (IoU {k}) {num(v['mean'])}" for k, v in doc["froc"].items())
    return (f"detector: {doc['n_predicted']} boxes on {doc['n_images']} images, {doc['n_truth']} ground-truth boxes: "
            f"{aps}; {froc} (VOC all-point AP; CIs in report.md)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrdemo.evaluate ...`` is ``python -m cxrdemo evaluate ...``."""
    from .cli import main as cli_main

    return cli_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
