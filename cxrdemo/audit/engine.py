"""The audit run: ``run_audit(options, progress=..., stop=...) -> AuditResult``, without argparse.

``python -m cxrdemo evaluate`` and the app's audit page both call :func:`run_audit`. One run:

1. loads the model (and ``compare_weights``), joins the label and box CSVs with the image folder, reads and checks a
   baseline predictions CSV BEFORE any image is processed (a malformed one fails in seconds, not after an hour);
2. shards the images by rank under ``torchrun`` (image ``i`` goes to rank ``i % world``: every image exactly once,
   no padding duplicates) and, with ``resume``, skips the images the per-image cache already holds;
3. decodes in DataLoader workers and audits batch by batch (:mod:`cxrdemo.audit.perimage`), appending each batch's
   records to the cache (:mod:`cxrdemo.audit.records`) as it goes, so an interrupted run loses at most one batch;
4. rank 0 gathers every rank's records (gloo, also when the model runs on nccl), merges them with the cached
   ones, computes the statistics (:mod:`cxrdemo.audit.summary`) and writes the outputs
   (:mod:`cxrdemo.audit.outputs`); every rank returns the same :class:`AuditResult`.

Unreadable files are recorded with their reason and the run goes on; label rows without an image are counted.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..data import Sample, load_samples, read_label_csv
from ..errors import CxrDemoError, InputError
from ..evalresult import AuditResult, Skipped
from .records import ImageRecord, RecordCache

if TYPE_CHECKING:
    from ..provenance import DataSplits

#: ``progress(done, total, stage)``: images done of this process's share (stage ``"images"``), then other stages.
Progress = Callable[[int, int, str], None]


def default_workers() -> int:
    """DataLoader workers by default: 2, or fewer on a machine with fewer cores (one core stays for the model)."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


class AuditStopped(CxrDemoError):
    """The run was stopped (``stop`` was set) before every image was done; the cache keeps what was."""


@dataclass
class AuditOptions:
    """Everything an audit run needs (the CLI's flags, one for one; see ``python -m cxrdemo evaluate --help``).

    ``out``: where the per-image cache, thumbnails and reports go (``None``: nothing is written, no resume).
    ``faithfulness_images`` / ``sanity_images``: how many images (a seeded choice spread over the data set; 0 =
    every image) get ROAD / the randomization cascade, the two expensive parts.
    """

    images: str | Path
    labels: str | Path
    boxes: str | Path | None = None
    weights: str | None = None
    out: str | Path | None = None
    names: Sequence[str] | None = None
    unseen: bool = False
    cam_methods: Sequence[str] = ("gradcam",)
    cam_threshold: int = 127
    pointing_tolerance: float = 0.0
    faithfulness: bool = False
    faithfulness_images: int = 32
    sanity: bool = False
    sanity_images: int = 8
    baseline_predictions: str | Path | None = None
    compare_weights: str | None = None
    batch_size: int = 32
    workers: int = field(default_factory=default_workers)
    device: str = "auto"
    resume: bool = False
    n_resamples: int = 1000
    seed: int = 0
    plots: bool = True
    gallery: bool = True
    title: str = "cxrdemo evaluation"
    extra_notes: list[str] = field(default_factory=list)


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


def choose_subset(names: Sequence[str], k: int, seed: int) -> frozenset[str]:
    """``k`` of ``names`` (all when ``k <= 0`` or ``k >= len``), a seeded choice: the same on every rank."""
    if k <= 0 or k >= len(names):
        return frozenset(names)
    picked = np.sort(np.random.default_rng(seed).choice(len(names), size=k, replace=False))
    return frozenset(names[int(i)] for i in picked)


def check_methods(methods: Sequence[str] | str) -> tuple[str, ...]:
    """CAM method names checked and normalised, duplicates dropped (``"gradcam,gradcam++"`` accepted)."""
    from ..cams import check_method

    if isinstance(methods, str):
        methods = [m for m in methods.split(",")]
    out = tuple(dict.fromkeys(check_method(m) for m in methods if str(m).strip()))
    if not out:
        raise InputError("no CAM method given; use e.g. --cam-methods gradcam,gradcam++")
    return out


def _label_rows_without_image(labels: str | Path, images: str | Path) -> int:
    """How many label rows name an image that is not in the image folder (counted, not fatal)."""
    present = _folder_images(images)
    return sum(1 for name in read_label_csv(labels) if name not in present)


def _gather(ctx, records: list[ImageRecord]) -> list[ImageRecord]:
    """Every rank's records on rank 0 (through a gloo group, so nccl runs never move pickles through the GPU)."""
    if not ctx.enabled:
        return records
    import torch.distributed as dist

    group = dist.new_group(backend="gloo") if ctx.backend != "gloo" else None
    parts: list[list[ImageRecord]] | None = [[] for _ in range(ctx.world)] if ctx.main else None
    dist.gather_object(records, parts, dst=0, group=group)
    return [r for part in parts for r in part] if parts is not None else []


def _broadcast(ctx, result: AuditResult | None) -> AuditResult:
    if not ctx.enabled:
        assert result is not None
        return result
    import torch.distributed as dist

    box = [result]
    group = dist.new_group(backend="gloo") if ctx.backend != "gloo" else None
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]  # type: ignore[return-value]


def run_audit(options: AuditOptions, progress: Progress | None = None, stop: threading.Event | None = None) -> AuditResult:
    """Run an audit (see the module doc); writes the outputs into ``options.out`` when it is set (rank 0 only).

    Raises:
        InputError: bad arguments or inputs (one line); :class:`AuditStopped` when ``stop`` was set.
    """
    from ..distributed import setup

    ctx = setup(options.device)
    try:
        return _run(options, ctx, progress, stop)
    finally:
        ctx.close()


@dataclass
class _Setup:
    """What a run prepared before the first image: models, samples, baselines, the per-image plan, the cache."""

    loaded: Any
    other: Any
    found: Any
    samples: list[Sample]
    notes: list[str]
    baselines: list[Any]
    plan: Any
    cache: RecordCache
    out: Path | None


def _prepare(options: AuditOptions, ctx) -> _Setup:
    """Check the options, load the models and the samples, read the baseline, plan the work, open the cache."""
    import torch

    from ..cams import check_threshold
    from ..model import MultiTaskNet
    from ..weights import load_model
    from .perimage import Plan

    methods = check_methods(options.cam_methods)
    threshold = check_threshold(options.cam_threshold)
    if options.pointing_tolerance < 0:
        raise InputError(f"--pointing-tolerance {options.pointing_tolerance} must be >= 0 (pixels of the original image)")
    out = Path(options.out) if options.out is not None else None
    torch.manual_seed(options.seed)
    loaded = load_model(options.weights, device=ctx.device)
    other = load_model(options.compare_weights, device=ctx.device) if options.compare_weights else None
    if options.sanity and not isinstance(loaded.model, MultiTaskNet):
        raise InputError("the randomization cascade (--sanity) needs a cxrdemo model's stages; drop --sanity for a timm, transformers or xrv model")
    missing = [c for c in loaded.config.classes if other is not None and c not in other.config.classes]
    if missing:  # the second model's outputs are matched by (NIH-mapped) name, in any order and any format
        raise InputError(f"--compare-weights {options.compare_weights} does not predict {', '.join(missing[:3])}; compare models that predict the same labels")
    classes = list(loaded.config.classes)
    found = load_samples(options.images, options.labels, options.boxes, classes, names=options.names)
    samples, notes = seen_images(found.samples, loaded.splits, drop=options.unseen)
    notes += _label_notes(loaded.model)
    if not samples:
        raise InputError("no image left to evaluate: every one was seen by the model in training or validation")
    baselines = []
    if options.baseline_predictions:  # checked before any image is processed
        baselines.append(_read_baseline(options.baseline_predictions, classes, options.labels, options.images))
    names = [s.name for s in samples]
    road = choose_subset(names, options.faithfulness_images, options.seed) if options.faithfulness else frozenset()
    sanity = choose_subset(names, options.sanity_images, options.seed + 1) if options.sanity else frozenset()
    gallery = out / "gallery" if out is not None and options.gallery else None
    plan = Plan(methods, threshold, float(options.pointing_tolerance), road, sanity, options.sanity, gallery, options.seed)
    settings = {
        "model": loaded.sha256, "compare": other.sha256 if other else None, "methods": methods, "threshold": threshold,
        "tolerance": plan.tolerance, "road": sorted(road), "sanity": sorted(sanity), "gallery": gallery is not None,
        "seed": options.seed, "version": 1,
    }  # fmt: skip
    return _Setup(loaded, other, found, samples, notes, baselines, plan, RecordCache(out, settings, ctx.rank), out)


def _run(options: AuditOptions, ctx, progress: Progress | None, stop: threading.Event | None) -> AuditResult:
    from torch.utils.data import DataLoader

    from .perimage import BatchAuditor, DecodeSet, collate

    started = time.perf_counter()
    setup = _prepare(options, ctx)
    cache, samples = setup.cache, setup.samples
    if ctx.main and not options.resume:
        cache.clear()
    ctx.barrier()
    cached = cache.load() if options.resume else {}
    todo = [(i, s) for i, s in enumerate(samples) if i % ctx.world == ctx.rank and s.name not in cached]
    auditor = BatchAuditor(setup.loaded.model, setup.plan, ctx.device, setup.other.model if setup.other else None)
    loader = DataLoader(
        DecodeSet(todo, auditor.sizes, thumbs=setup.plan.gallery is not None), batch_size=max(1, options.batch_size),
        shuffle=False, num_workers=max(0, options.workers), collate_fn=collate,
    )  # fmt: skip
    mine: list[ImageRecord] = []
    t_loop = t_wait = time.perf_counter()
    try:
        for batch in loader:
            auditor.seconds["decode_wait"] += time.perf_counter() - t_wait
            if stop is not None and stop.is_set():
                raise AuditStopped(
                    f"stopped after {len(mine)} of {len(todo)} images; what was done is cached in "
                    f"{cache.folder or 'memory'}: run again with --resume to continue"
                )
            records = auditor(batch)
            cache.append(records)
            mine += records
            if progress is not None:
                progress(len(mine), len(todo), "images")
            t_wait = time.perf_counter()
    finally:
        cache.close()
    loop_seconds = time.perf_counter() - t_loop
    gathered = _gather(ctx, mine)
    result: AuditResult | None = None
    if ctx.main:
        if progress is not None:
            progress(0, 1, "statistics")
        merged = {r.name: r for r in cached.values()}
        merged.update({r.name: r for r in gathered})
        records = []
        for i, s in enumerate(samples):  # the current run's order (a cache may come from another --names)
            if s.name in merged:
                merged[s.name].index = i
                records.append(merged[s.name])
        secs = auditor.seconds
        new = max(1, len(mine))
        timings = {
            # every rank's new images over rank 0's loop time (the ranks run side by side)
            "images_per_second": round(len(gathered) / loop_seconds, 2) if loop_seconds > 0 and gathered else 0.0,
            "model_images_per_second": round(len(mine) / secs["model"], 2) if secs["model"] > 0 else 0.0,
            "cam_maps_per_second": round(sum(len(r.cases) for r in mine) / secs["cam"], 2) if secs["cam"] > 0 else 0.0,
            "total_seconds": 0.0,
            "images_computed": len(gathered),
            "images_from_cache": len(records) - len(gathered),
            "processes": ctx.world,
            "seconds_per_image": {k: round(v / new, 4) for k, v in secs.items()},  # rank 0's images
        }
        result = _finish(options, ctx, setup, records, timings, started)
    return _broadcast(ctx, result)


def _finish(options: AuditOptions, ctx, setup: _Setup, records: list[ImageRecord], timings: dict[str, Any], started: float) -> AuditResult:
    """Rank 0: what was skipped, the statistics, the outputs."""
    from ..cams import is_class_agnostic, method_name
    from ..weights import describe_model
    from .summary import SummaryInputs, part_seconds, summarise

    methods = setup.plan.methods
    found, notes = setup.found, list(setup.notes)
    errors = [r for r in records if r.error is not None]
    skipped_files = [Skipped(r.name, r.error or "") for r in errors] + [Skipped(n, "no row in the label CSV") for n in found.missing_labels]
    skipped = {
        "unreadable": len(errors),
        "no_label_row": len(found.missing_labels),
        "label_rows_without_image": _label_rows_without_image(options.labels, options.images),
        "seen_by_model_dropped": len(found.samples) - len(setup.samples),
        "unknown_labels": dict(found.unknown_labels),
        "file": "skipped.csv",
    }
    notes += [f"skipped {r.name}: {r.error}" for r in errors[:5]]
    if len(errors) > 5:
        notes.append(f"... and {len(errors) - 5} more unreadable files (skipped.csv lists them all)")
    agnostic = [method_name(m) for m in methods if is_class_agnostic(m)]
    if agnostic:
        notes.append(f"{', '.join(agnostic)} ignores the target class: its map is the same for every class")
    timings.update(part_seconds(records, len(methods)))
    inputs = SummaryInputs(
        config=setup.loaded.config, samples=setup.samples, methods=list(methods), model_info=describe_model(setup.loaded),
        cam_threshold=setup.plan.cam_threshold, tolerance=setup.plan.tolerance, n_resamples=options.n_resamples,
        seed=options.seed, faithfulness=options.faithfulness, class_sensitivity=options.sanity,
        sanity_steps=_steps(setup.loaded.model) if options.sanity else None, baselines=setup.baselines,
        skipped=skipped, skipped_files=skipped_files, timings=timings, notes=notes + list(options.extra_notes),
        options={**{k: v for k, v in asdict(options).items() if k not in ("names", "extra_notes")},
                 "cam_methods": list(methods), "device": str(ctx.device)},
        seen=_seen(setup.loaded.splits, setup.samples),
    )  # fmt: skip
    result = summarise(records, inputs)
    if setup.out is not None:
        from .outputs import write_outputs

        result.evaluation.timings["total_seconds"] = round(time.perf_counter() - started, 2)
        write_outputs(result, setup.out, plots=options.plots, gallery=options.gallery, title=options.title)
    result.evaluation.timings["total_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _seen(splits: "DataSplits | None", samples: Sequence[Sample]) -> frozenset[str]:
    """The images the model was trained or validated on (its data_splits.json), among ``samples``."""
    if splits is None:
        return frozenset()
    return frozenset(s.name for s in samples if splits.role(s.name) is not None)


def _label_notes(model) -> list[str]:
    """Which of a foreign model's labels are scored against NIH labels, and which are shown only (cxrdemo.models)."""
    if getattr(model, "format_name", "cxrdemo") == "cxrdemo":
        return []
    labels = model.labels
    notes = [f"scored labels (matched to NIH names): {', '.join(labels.scored) or 'none'}"]
    if labels.unscored:
        notes.append(f"not scored (no NIH match): {', '.join(labels.unscored)}")
    if model.config.class_mode == "softmax":
        notes.append("softmax model: one-vs-rest AUC per label; no per-label decision threshold (docs/models.md)")
    return notes


def _steps(model) -> list[str]:
    from .sanity import randomization_steps

    return randomization_steps(model)


def _folder_images(images: str | Path) -> set[str]:
    from ..imaging import IMAGE_SUFFIXES

    return {p.name for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}


def _read_baseline(path: str | Path, classes: Sequence[str], labels: str | Path, images: str | Path):
    """A baseline predictions CSV, checked: every image must be known, i.e. in the label CSV or the image folder
    (a typo'd or foreign name is one error line naming the file, row and image)."""
    import csv

    from .baseline import IMAGE_COLUMN, read_predictions
    from .summary import Baseline

    preds = read_predictions(path, classes)
    known = set(read_label_csv(labels)) | _folder_images(images)
    unknown = [n for n in preds if n not in known]
    if unknown:
        row, line = 0, 0
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [c.strip() for c in next(reader)]
            at = header.index(IMAGE_COLUMN)
            for row, cells in enumerate(reader, start=1):
                if len(cells) > at and cells[at].strip() == unknown[0]:
                    line = reader.line_num
                    break
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise InputError(
            f"{path}: row {row} (line {line}): unknown image {unknown[0]!r}, neither in the label CSV nor in the "
            f"image folder{more}"
        )
    name = Path(path).name
    return Baseline(name, "predictions", str(path), preds, len(preds))

