"""From per-image records to the audit's figures, each with its bootstrap 95 % CI (resampling images).

:func:`summarise` takes the records of every image in the data set's order (whatever batches, processes or resumed
runs produced them) and builds the :class:`~cxrdemo.audit.result.AuditResult`: CLN's protocol (AUC, IoU accuracies)
plus plausibility, faithfulness, sanity, class sensitivity and the baseline comparisons. Every bootstrap is seeded,
so the same records always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..models.config import ModelConfig
from ..datasets.samples import Sample
from ..evalresult import EvalResult
from .result import AuditResult, CaseRow, Skipped
from ..metrics import IOU_THRESHOLDS, BoxMatch, iou_accuracy, mean_of, per_class_auc, threshold_key
from ..datasets.nih import NIH_BOX_CLASSES, NIH_CLASSES
from .maps import MAP_METRICS
from .records import ImageRecord
from .stats import bootstrap_mean, paired_auc_difference
from .verdict import withhold_intervals

#: The plausibility metrics reported per method (the map metrics, then the CAM box's IoU accuracy per T).
PLAUSIBILITY_METRICS: tuple[str, ...] = (*MAP_METRICS, "cam_iou_accuracy")


@dataclass
class Baseline:
    """Another model's probabilities to compare with: ``kind`` is ``"predictions"`` (a CSV) or ``"weights"``."""

    name: str
    kind: str
    source: str
    probabilities: dict[str, np.ndarray]
    n_rows: int = 0


@dataclass
class SummaryInputs:
    """What :func:`summarise` needs beyond the records."""

    config: ModelConfig
    samples: Sequence[Sample]
    methods: Sequence[str]
    model_info: dict[str, Any]
    cam_threshold: int = 127
    tolerance: float = 0.0
    n_resamples: int = 1000
    seed: int = 0
    faithfulness: bool = False
    sanity_steps: list[str] | None = None
    class_sensitivity: bool = False
    baselines: list[Baseline] = field(default_factory=list)
    skipped: dict[str, Any] = field(default_factory=dict)
    skipped_files: list[Skipped] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    score_threshold: float = 0.5  # a detector's operating point (cxrdemo.audit.detection.score_threshold_of)
    reader_rule: str = "per_reader"
    #: how many distinct reader ids the ground truth names (0: none, e.g. NIH; ``None``: not known)
    reader_ids: int | None = None


def _boot(values: Sequence[float], groups: Sequence[str], inp: SummaryInputs) -> dict[str, Any]:
    return bootstrap_mean(np.asarray(values, dtype=np.float64), groups, n_resamples=inp.n_resamples, seed=inp.seed).to_json()


def _by_class(cases: Sequence[CaseRow], value, inp: SummaryInputs) -> dict[str, Any]:
    """``{"overall": estimate over every box, "per_class": {class: estimate}}`` of ``value(case)``."""
    out: dict[str, Any] = {"overall": _boot([value(c) for c in cases], [c.image for c in cases], inp), "per_class": {}}
    for label in dict.fromkeys(c.label for c in cases):
        sub = [c for c in cases if c.label == label]
        out["per_class"][label] = _boot([value(c) for c in sub], [c.image for c in sub], inp)
    return out


def agreements(records: Sequence[ImageRecord]) -> list[tuple[str, str, dict[str, float]]]:
    """Every (image, class, inter-reader agreement) of the records, in the records' order."""
    return [(r.name, label, v) for r in records for label, v in (r.agreement or {}).items()]


def plausibility(
    cases: Sequence[CaseRow], inp: SummaryInputs, agreed: Sequence[tuple[str, str, Mapping[str, float]]] = ()
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Per method: every map metric and the CAM box's IoU accuracy at each T, overall (box-weighted) and per class,
    and the method's verdict against the references; and the references themselves (:mod:`.reference`), with the
    inter-reader reference of ``agreed`` (:mod:`.interreader`) under ``"readers"``."""
    from .interreader import reader_reference, reader_verdict
    from .reference import reference_values
    from .verdict import method_verdict, reference_summary

    if not cases:
        return None, None
    first = [c for c in cases if c.method == inp.methods[0]]
    refs = reference_values(first, inp.config.input_size, inp.cam_threshold, inp.tolerance, inp.seed)
    methods: dict[str, Any] = {}
    for method in inp.methods:
        mine = [c for c in cases if c.method == method]
        entry: dict[str, Any] = {m: _by_class(mine, lambda c, m=m: c.metrics[m], inp) for m in MAP_METRICS}
        entry["cam_iou"] = _by_class(mine, lambda c: c.cam_iou, inp)
        entry["cam_iou_accuracy"] = {
            threshold_key(t): _by_class(mine, lambda c, t=t: float(c.cam_iou > t), inp) for t in IOU_THRESHOLDS
        }
        entry["verdict"] = method_verdict(method, mine, refs, inp.n_resamples, inp.seed)
        entry["verdict"]["readers"] = reader_verdict(method, mine, agreed, inp.reader_rule, inp.n_resamples, inp.seed)
        methods[method] = entry
    reference = reference_summary(refs, first, inp.n_resamples, inp.seed)
    reference["readers"] = reader_reference(agreed, inp.reader_rule, inp.n_resamples, inp.seed, inp.reader_ids)
    return {
        "unit": "ground-truth region of one class on one image (a box, or a mask; with several readers see "
                "reader_rule); overall: the mean over every region; the CIs resample images",
        "reader_rule": inp.reader_rule,
        "n_masks": sum(1 for c in first if c.region == "mask"),
        "n_boxes": len(first),
        "n_images": len({c.image for c in first}),
        "pointing_tolerance_px": inp.tolerance,
        "cam_threshold": inp.cam_threshold,
        "mask_thresholds": {"mask_iou_otsu": "Otsu", "mask_iou_127": "127/255", "mask_iou_180": "180/255"},
        "bootstrap": {"n_resamples": inp.n_resamples, "seed": inp.seed, "level": 0.95, "unit": "image"},
        "methods": methods,
    }, reference


def _method_means(values: Mapping[str, list[float]], groups: list[str], inp: SummaryInputs) -> dict[str, Any]:
    out = {}
    for method, vals in values.items():
        arr = np.asarray(vals, dtype=np.float64)
        est = _boot(arr, groups, inp)
        est["undefined"] = int(np.isnan(arr).sum())
        out[method] = est
    return out


def faithfulness(records: Sequence[ImageRecord], inp: SummaryInputs) -> dict[str, Any] | None:
    """ROAD combined (top-1 class, logit) per method over the images of the faithfulness subset."""
    if not inp.faithfulness:
        return None
    scored = [r for r in records if r.road]
    values = {m: [r.road.get(m, float("nan")) for r in scored] for m in inp.methods}  # type: ignore[union-attr]
    return {
        "test": "ROAD combined (Rong et al. 2022): mean over percentiles of (LeRF - MoRF) / 2; higher = more faithful",
        "target": "top-1 class",
        "score": "logit",
        "percentiles": [20, 40, 60, 80],
        "n_images": len(scored),
        "bootstrap": {"n_resamples": inp.n_resamples, "seed": inp.seed, "level": 0.95, "unit": "image"},
        "methods": _method_means(values, [r.name for r in scored], inp),
    }


def sanity(records: Sequence[ImageRecord], inp: SummaryInputs) -> dict[str, Any] | None:
    """The cascading randomization's JSON (:meth:`cxrdemo.audit.sanity.SanityResult.to_json`) over its images."""
    if inp.sanity_steps is None:
        return None
    from .sanity import SanityResult

    chosen = [r for r in records if r.sanity]
    steps = list(inp.sanity_steps)
    shape = (len(steps), len(chosen))
    rho = {m: np.full(shape, np.nan) for m in inp.methods}
    sim = {m: np.full(shape, np.nan) for m in inp.methods}
    for k, r in enumerate(chosen):
        for m in inp.methods:
            rho[m][:, k] = r.sanity[m]["spearman"]  # type: ignore[index]
            sim[m][:, k] = r.sanity[m]["ssim"]  # type: ignore[index]
    doc = SanityResult(steps=steps, methods=list(inp.methods), spearman=rho, ssim=sim).to_json(inp.n_resamples, inp.seed)
    doc["images"] = [r.name for r in chosen]
    return doc


def part_seconds(records: Sequence[ImageRecord], n_methods: int) -> dict[str, float]:
    """Seconds per image and method of ROAD and of the randomization cascade (timings; the images that had them)."""
    out = {}
    for part, key in (("road", "faithfulness_seconds_per_image_and_method"), ("sanity", "sanity_seconds_per_image_and_method")):
        spent = [r.seconds[part] for r in records if part in r.seconds]
        if spent:
            out[key] = round(sum(spent) / (len(spent) * max(1, n_methods)), 3)
    return out


def class_sensitivity(records: Sequence[ImageRecord], inp: SummaryInputs) -> dict[str, Any] | None:
    """Per method: the mean Spearman between the top-1 and the lowest-ranked class's maps, with CI."""
    if not inp.class_sensitivity:
        return None
    from .sanity import summarise_class_sensitivity

    scored = [r for r in records if r.class_sensitivity]
    values = {m: np.array([r.class_sensitivity[m] for r in scored], dtype=np.float64) for m in inp.methods}  # type: ignore[index]
    doc = summarise_class_sensitivity(values, inp.n_resamples, inp.seed)
    doc["n_images"] = len(scored)
    doc["reading"] = "1 = the two maps rank pixels identically (not class-discriminative); lower is better"
    return doc


def compare(names: list[str], y: np.ndarray, ours: np.ndarray, base: Baseline, inp: SummaryInputs) -> dict[str, Any]:
    """Paired per-label AUC comparison of our model (A) with ``base`` (B) on the images both have."""
    keep = [k for k, n in enumerate(names) if n in base.probabilities]
    theirs = np.stack([base.probabilities[names[k]] for k in keep]) if keep else np.zeros((0, len(inp.config.classes)))
    doc: dict[str, Any] = {
        "name": base.name,
        "kind": base.kind,
        "source": base.source,
        "n_common": len(keep),
        "n_ours": len(names),
        "n_baseline": base.n_rows or len(base.probabilities),
        "ours_without_baseline": len(names) - len(keep),
        "baseline_without_ours": (base.n_rows or len(base.probabilities)) - len(keep),
        "difference": "ours - baseline",
        "common_seen_by_ours": sum(1 for k in keep if names[k] in inp.seen),
    }
    if len(keep) >= 2:
        cmp = paired_auc_difference(y[keep], ours[keep], theirs, list(inp.config.classes), n_resamples=inp.n_resamples, seed=inp.seed)
        doc.update(cmp.to_json())
    return doc


def detection(records: Sequence[ImageRecord], inp: SummaryInputs, classes: Sequence[str]) -> dict[str, Any] | None:
    """A detector's figures (:func:`cxrdemo.audit.detection.detection_figures`) on the readable records that carry
    its boxes, against every ground-truth box of the ``classes`` in original pixels; ``None`` for a model that
    predicts no scored boxes (then nothing changes)."""
    from .detection import DetectionCase, detection_figures, rows_to_boxes

    scored = [r for r in records if r.error is None and r.detections is not None]
    if not scored:
        return None
    by_name = {s.name: s for s in inp.samples}
    keep = set(classes)
    cases = [
        DetectionCase(r.name, tuple(b for b in by_name[r.name].boxes_in_pixels(r.width, r.height) if b.label in keep), rows_to_boxes(r.detections or []))
        for r in scored
    ]  # fmt: skip
    result = detection_figures(cases, list(classes), score_threshold=inp.score_threshold, n_resamples=inp.n_resamples, seed=inp.seed)
    doc = result.to_json()
    pictures = {r.name: r.detection_thumbnail for r in scored if r.detection_thumbnail}
    for entry in doc["errors"]["images"]:
        entry["thumbnail"] = pictures.get(entry["image"], "")
    return doc


def evaluation(records: Sequence[ImageRecord], inp: SummaryInputs) -> EvalResult:
    """CLN's protocol on the readable records (in index order): AUC per class, IoU accuracies of the first method."""
    cfg = inp.config
    classes, box_classes = list(cfg.classes), list(cfg.box_classes)
    by_name = {s.name: s for s in inp.samples}
    good = sorted((r for r in records if r.error is None), key=lambda r: r.index)
    names = [r.name for r in good]
    y = np.stack([by_name[n].target(classes) for n in names]) if good else np.zeros((0, len(classes)))
    scores = np.array([r.probabilities for r in good], dtype=np.float64).reshape(len(good), len(classes))
    first = inp.methods[0]
    cases = [c for r in good for c in r.cases if c.method == first]
    boxless = cfg.box_mode == "none"  # a foreign classifier (cxrdemo.models): CAM boxes only, model-box IoU skipped
    if boxless:
        box_classes = [c for c in NIH_BOX_CLASSES if c in classes]
    model_m = [] if boxless else [BoxMatch(c.label, c.model_iou, c.image) for c in cases]
    prior_m = [] if boxless else [BoxMatch(c.label, c.prior_iou, c.image) for c in cases]
    cam_m = [BoxMatch(c.label, c.cam_iou, c.image) for c in cases]
    scored = [i for i, c in enumerate(classes) if c in NIH_CLASSES]  # labels with no NIH match are never scored
    auc = per_class_auc(y[:, scored], scores[:, scored], [classes[i] for i in scored])
    return EvalResult(
        n_images=len(good),
        n_boxes=len(cam_m),
        auc=auc,
        mean_auc=mean_of(auc),
        iou_accuracy=iou_accuracy(model_m, box_classes),
        cam_iou_accuracy=iou_accuracy(cam_m, box_classes),
        prior_iou_accuracy=iou_accuracy(prior_m, box_classes),
        model=dict(inp.model_info),
        timings=dict(inp.timings),
        classes=classes,
        box_classes=box_classes,
        cam_method=first,
        cam_threshold=inp.cam_threshold,
        names=names,
        y_true=y,
        scores=scores,
        model_matches=model_m,
        cam_matches=cam_m,
        prior_matches=prior_m,
    )


def summarise(records: Sequence[ImageRecord], inp: SummaryInputs) -> AuditResult:
    """The :class:`AuditResult` of ``records`` (any order; errors are left out; see the module doc)."""
    ev = evaluation(records, inp)
    classes = ev.classes
    good = sorted((r for r in records if r.error is None), key=lambda r: r.index)
    names, y, scores = ev.names, ev.y_true, ev.scores
    assert y is not None and scores is not None
    cases = [c for r in good for c in r.cases]
    # Our own AUCs' CIs: the paired bootstrap of the model with itself gives them from the same fast resamples.
    auc_ci: dict[str, Any] = {}
    mean_ci = None
    if len(good) >= 2:
        own = paired_auc_difference(y, scores, scores, classes, n_resamples=inp.n_resamples, seed=inp.seed)
        auc_ci = withhold_intervals({c: own.per_label[c].auc_a.to_json() for c in classes})
        mean_ci = withhold_intervals(own.mean.auc_a.to_json())
        auc_ci["mean"] = mean_ci
    baselines = list(inp.baselines)
    compare_rows = [r.compare for r in good if r.compare is not None]
    compare_scores = None
    if good and len(compare_rows) == len(good):
        compare_scores = np.array(compare_rows, dtype=np.float64)
        src = str(inp.options.get("compare_weights") or "second model")
        baselines.append(Baseline(src, "weights", src, {n: compare_scores[k] for k, n in enumerate(names)}, len(names)))
    plaus, reference = plausibility(cases, inp, agreements(good))
    return AuditResult(
        evaluation=ev,
        methods=list(inp.methods),
        cases=cases,
        plausibility=withhold_intervals(plaus),
        plausibility_reference=reference,
        faithfulness=withhold_intervals(faithfulness(good, inp)),
        sanity=withhold_intervals(sanity(good, inp)),
        class_sensitivity=withhold_intervals(class_sensitivity(good, inp)),
        baseline=withhold_intervals([compare(names, y, scores, b, inp) for b in baselines]) if baselines else None,
        detection=withhold_intervals(detection(good, inp, ev.box_classes)),
        skipped=dict(inp.skipped),
        skipped_files=list(inp.skipped_files),
        auc_ci=auc_ci,
        mean_auc_ci=mean_ci,
        compare_scores=compare_scores,
        notes=list(inp.notes),
        options=dict(inp.options),
    )
