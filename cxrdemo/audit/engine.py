"""The audit run: ``run_audit(options, progress=..., stop=...) -> AuditResult``, without argparse.

``python -m cxrdemo evaluate`` and the app's audit page both call :func:`run_audit`. One run:

1. loads the model (and ``compare_weights``), joins the label and box CSVs with the image folder, reads and checks a
   baseline predictions CSV BEFORE any image is processed (a malformed one fails in seconds, not after an hour);
2. with ``resume``, skips the images the per-image cache already holds, then shards the rest by rank under
   ``torchrun`` in whole batches (:func:`shard_batches`: batch ``b`` goes to rank ``b % world``; every image exactly
   once, no padding duplicates). Every batch then holds the same images whatever the number of processes, so one
   process and N processes do the same arithmetic on every image (a batched forward's float32 sums depend on
   which images share the batch) and their outputs agree exactly at a fixed thread count;
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..datasets.base import Region

from ..datasets.samples import Sample, load_samples, read_label_csv, uncertain_counts
from ..errors import CxrDemoError, InputError
from .result import AuditResult, Skipped
from .records import ImageRecord, RecordCache
from .result import partial_note
from .selection import CLI_UNSEEN_HINT, _folder_images, boxed_first, choose_subset, seen_images

if TYPE_CHECKING:
    from ..provenance import DataSplits

#: ``progress(done, total, stage)``: the named stages of :data:`cxrdemo.audit.progress.STAGES` (``loading``; per
#: image of this process's share ``images``, ``road``, ``sanity``; then ``statistics``, ``writing``); ``done == 0``
#: announces a stage's total.
AuditProgress = Callable[[int, int, str], None]
#: What the CLI tells a user to do after a stop (the app says it in its own words: ``AuditOptions.resume_hint``).
CLI_RESUME_HINT = "run the same command again with --resume to continue"
#: How report.md names where earlier images' results came from (the app: its own words, ``AuditOptions.cache_words``).
CLI_CACHE_WORDS = "the --resume cache"


def default_workers() -> int:
    """DataLoader workers by default: 2, or fewer on a machine with fewer cores (one core stays for the model)."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


class AuditStopped(CxrDemoError):
    """The run was stopped (``stop`` was set) before every image was done; the cache keeps what was.

    ``result``: the partial :class:`AuditResult` of the images done (``AuditResult.partial`` says so; its outputs
    were written like a finished run's), or ``None`` when nothing was done or the run was distributed.
    """

    def __init__(self, message: str, result: AuditResult | None = None) -> None:
        super().__init__(message)
        self.result = result


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
    faithfulness_images: int = 256
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
    resume_hint: str = CLI_RESUME_HINT
    unseen_hint: str = CLI_UNSEEN_HINT
    #: the ground truth per image name (boxes or masks with their readers, :class:`cxrdemo.datasets.base.Region`,
    #: in original pixels), e.g. from a data-set reader, with labels already in the model's class names (regions of
    #: other classes are not scored); ``None``: the NIH boxes of ``boxes``
    regions: Mapping[str, Sequence[Region]] | None = None
    #: how several readers' regions are scored: ``per_reader`` (default) or ``union`` (:mod:`cxrdemo.audit.regions`)
    reader_rule: str = "per_reader"
    cache_words: str = CLI_CACHE_WORDS


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


def run_audit(options: AuditOptions, progress: AuditProgress | None = None, stop: threading.Event | None = None) -> AuditResult:
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
    from ..models.cln import MultiTaskNet
    from ..models.weights import load_model
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
    samples, notes = seen_images(found.samples, loaded.splits, drop=options.unseen, hint=options.unseen_hint)
    notes += _label_notes(loaded.model)
    if not samples:
        raise InputError("no image left to evaluate: every one was seen by the model in training or validation")
    baselines = []
    if options.baseline_predictions:  # checked before any image is processed
        baselines.append(_read_baseline(options.baseline_predictions, classes, options.labels, options.images))
    names = [s.name for s in samples]  # by name: the seeded subsets do not depend on the processing order
    if getattr(loaded.model, "is_detector", False):
        if options.faithfulness or options.sanity:
            raise InputError("ROAD (--faithfulness) and the randomization cascade (--sanity) explain a classifier's "
                             "class score; drop them for a detector (its boxes are scored: AP, FROC, IoU accuracy)")
        notes.append("a detector: its boxes are scored (AP, FROC, IoU accuracy) and its class probabilities are each "
                     "class's highest box score; its CAMs (EigenCAM, box-target Grad-CAM) are on the single-case page, "
                     "not in this audit")
    road = choose_subset(names, options.faithfulness_images, options.seed) if options.faithfulness else frozenset()
    sanity = choose_subset(names, options.sanity_images, options.seed + 1) if options.sanity else frozenset()
    samples = boxed_first(samples)  # processed (and batched) boxed images first: a Stop keeps the most boxes
    gallery = out / "gallery" if out is not None and options.gallery else None
    from .regions import READER_RULES

    if options.reader_rule not in READER_RULES:
        raise InputError(f"reader rule {options.reader_rule!r} is not one of {', '.join(READER_RULES)}")
    plan = Plan(methods, threshold, float(options.pointing_tolerance), road, sanity, options.sanity, gallery, options.seed, options.reader_rule)
    settings = {
        "model": loaded.sha256, "compare": other.sha256 if other else None, "methods": methods, "threshold": threshold,
        "tolerance": plan.tolerance, "road": sorted(road), "sanity": sorted(sanity), "gallery": gallery is not None,
        "seed": options.seed, "version": 1, "reader_rule": options.reader_rule, "regions": _regions_digest(options.regions),
    }  # fmt: skip
    return _Setup(loaded, other, found, samples, notes, baselines, plan, RecordCache(out, settings, ctx.rank), out)


def shard_batches(items: Sequence[Any], batch_size: int, world: int, rank: int) -> list[Any]:
    """This rank's share of ``items``: the batches ``b`` (``batch_size`` consecutive items) with ``b % world == rank``.

    Sharding whole batches rather than single items keeps every batch's membership independent of ``world``: the
    DataLoader of each rank, fed this share with the same ``batch_size``, forms exactly the global batches (only the
    last global batch can be short, and it is the last of its rank's share).
    """
    size = max(1, int(batch_size))
    return [item for b in range(0, len(items), size) if (b // size) % world == rank for item in items[b : b + size]]


def _run(options: AuditOptions, ctx, progress: AuditProgress | None, stop: threading.Event | None) -> AuditResult:
    from torch.utils.data import DataLoader

    from .perimage import BatchAuditor, DecodeSet, collate

    started = time.perf_counter()
    emit = progress if progress is not None else (lambda done, total, stage: None)
    emit(0, 1, "loading")
    setup = _prepare(options, ctx)
    cache, samples = setup.cache, setup.samples
    if ctx.main and not options.resume:
        cache.clear()
    ctx.barrier()
    cached = cache.load() if options.resume else {}
    todo = shard_batches([(i, s) for i, s in enumerate(samples) if s.name not in cached], options.batch_size, ctx.world, ctx.rank)
    auditor = BatchAuditor(setup.loaded.model, setup.plan, ctx.device, setup.other.model if setup.other else None, options.regions)
    auditor.notify = _stage_counter(emit, todo, setup.plan)
    loader = DataLoader(
        DecodeSet(todo, auditor.sizes, thumbs=setup.plan.gallery is not None, all_thumbs=auditor.detect is not None,
                  boxed=frozenset(n for n, rs in options.regions.items() if rs) if options.regions is not None else None),
        batch_size=max(1, options.batch_size),
        shuffle=False, num_workers=max(0, options.workers), collate_fn=collate,
    )  # fmt: skip
    mine: list[ImageRecord] = []
    stopped = False
    t_loop = t_wait = time.perf_counter()
    try:
        for batch in loader:
            auditor.seconds["decode_wait"] += time.perf_counter() - t_wait
            if stop is not None and stop.is_set():
                stopped = True
                break
            records = auditor(batch)
            cache.append(records)
            mine += records
            t_wait = time.perf_counter()
    finally:
        cache.close()
    loop_seconds = time.perf_counter() - t_loop
    if stopped:
        message = (
            f"stopped after {len(mine)} of {len(todo)} images; what was done is cached in "
            f"{cache.folder or 'memory'}: {options.resume_hint}"
        )
        if ctx.enabled or not (mine or cached):
            raise AuditStopped(message)
        partial = {"images_done": len(mine) + len(cached), "images_planned": len(samples), "resume": options.resume_hint}
        result = _merge(options, ctx, setup, cached, mine, auditor, loop_seconds, started, emit, partial)
        raise AuditStopped(message, result)
    gathered = _gather(ctx, mine)
    result: AuditResult | None = None
    if ctx.main:
        result = _merge(options, ctx, setup, cached, gathered, auditor, loop_seconds, started, emit, None, mine)
    return _broadcast(ctx, result)


def _stage_counter(emit: AuditProgress, todo: Sequence[tuple[int, Sample]], plan) -> Callable[[str, int], None]:
    """Announce the per-image stages' totals; returns ``notify(stage, n)`` (``n`` more units of ``stage`` done)."""
    totals = {
        "images": len(todo),
        "road": sum(1 for _, s in todo if s.name in plan.road),
        "sanity": sum(1 for _, s in todo if s.name in plan.sanity),
    }
    done = dict.fromkeys(totals, 0)
    for stage, total in totals.items():
        if total:
            emit(0, total, stage)

    def notify(stage: str, n: int) -> None:
        done[stage] += int(n)
        emit(done[stage], totals[stage], stage)

    return notify


def _merge(
    options: AuditOptions, ctx, setup: _Setup, cached: dict[str, ImageRecord], gathered: list[ImageRecord], auditor,
    loop_seconds: float, started: float, emit: AuditProgress, partial: dict[str, Any] | None, mine: list[ImageRecord] | None = None,
) -> AuditResult:
    """Rank 0: the cached and the new records in the run's order, the timings, then :func:`_finish`."""
    mine = gathered if mine is None else mine
    samples = setup.samples
    emit(0, 1, "statistics")
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
    return _finish(options, ctx, setup, records, timings, started, emit, partial)


def _finish(
    options: AuditOptions, ctx, setup: _Setup, records: list[ImageRecord], timings: dict[str, Any], started: float,
    emit: AuditProgress, partial: dict[str, Any] | None = None,
) -> AuditResult:
    """Rank 0: what was skipped, the statistics, the outputs (``partial``: the run was stopped, see AuditResult)."""
    from ..cams import is_class_agnostic, method_name
    from ..models.weights import describe_model
    from .detection import score_threshold_of
    from .summary import SummaryInputs, part_seconds, summarise

    methods = setup.plan.methods
    found, notes = setup.found, list(setup.notes)
    errors = [r for r in records if r.error is not None]
    readable = {r.name for r in records if r.error is None}
    classes = setup.loaded.config.classes
    skipped_files = [Skipped(r.name, r.error or "") for r in errors] + [Skipped(n, "no row in the label CSV") for n in found.missing_labels]
    skipped = {
        "unreadable": len(errors),
        "no_label_row": len(found.missing_labels),
        "label_rows_without_image": _label_rows_without_image(options.labels, options.images),
        "seen_by_model_dropped": len(found.samples) - len(setup.samples),
        "unknown_labels": dict(found.unknown_labels),
        "uncertain_labels": uncertain_counts([s for s in setup.samples if s.name in readable], classes),
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
        options={**{k: _shown(v) for k, v in asdict(replace(options, regions=None)).items() if k not in ("names", "extra_notes", "regions")},
                 "regions": None if options.regions is None else f"given for {len(options.regions)} images",
                 "cam_methods": list(methods), "device": str(ctx.device)},
        seen=_seen(setup.loaded.splits, setup.samples), score_threshold=score_threshold_of(setup.loaded.model),
        reader_rule=options.reader_rule,
        reader_ids=0 if options.regions is None else len({r.reader for rs in options.regions.values() for r in rs if r.reader is not None}),
    )  # fmt: skip
    result = summarise(records, inputs)
    result.partial = partial
    if partial is not None:
        result.notes.insert(0, partial_note(partial))
    if setup.out is not None:
        emit(0, 1, "writing")
        from .outputs import write_outputs

        result.evaluation.timings["total_seconds"] = round(time.perf_counter() - started, 2)
        write_outputs(result, setup.out, plots=options.plots, gallery=options.gallery, title=options.title)
    result.evaluation.timings["total_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _regions_digest(regions: Mapping[str, Sequence[Region]] | None) -> str | None:
    """What the cache's settings record of given regions: a digest of every region's image, class, reader, box and
    kind (a changed ground truth never reuses cached cases; masks are named by their shape, not hashed pixel by
    pixel)."""
    if regions is None:
        return None
    import hashlib

    h = hashlib.sha256()
    for name in sorted(regions):
        for r in regions[name]:
            h.update(repr((name, r.label, r.reader, r.box.xyxy if r.box is not None else None, r.is_mask, r.mask_shape)).encode())
    return h.hexdigest()[:16]


def _shown(value: Any) -> Any:
    """An option as the report records it: on a public server a path is cut to its last part (a visitor downloads
    the report; it must not carry the server's folders)."""
    from ..publicmode import is_public

    if isinstance(value, (str, Path)) and is_public() and (isinstance(value, Path) or os.path.isabs(value)):
        return Path(value).name
    return value


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

