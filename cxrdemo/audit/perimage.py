"""The per-batch work of an audit: decode (in DataLoader workers), one batched forward, batched CAMs, metrics.

:class:`DecodeSet` decodes a radiograph and resizes it to each model's input size (and, for an image with
ground-truth boxes, to a gallery thumbnail) inside the DataLoader's worker processes; an unreadable file comes back
as an error string, never an exception, so one bad file cannot stop a run.

:class:`BatchAuditor` turns a decoded batch into :class:`~cxrdemo.audit.records.ImageRecord` s:
1. one forward pass for the batch (feature maps kept: every CAM below reuses them, no second backbone pass);
2. per CAM method, ONE batched :func:`cxrdemo.explain.cam_heatmaps` call for every (image, ground-truth class) pair
   of the batch; each map is resized to its image's original pixels one at a time (bounded memory) for
   :func:`cxrdemo.audit.maps.map_metrics`, and cut into the CAM box (:func:`cxrdemo.explain.cam_box`);
3. the model's boxes through :func:`cxrdemo.predict.model_boxes_in_pixels` (the one conversion of model boxes);
4. optionally: ROAD of the top-1 map (images of the faithfulness subset, each seeded by its name, so the value
   does not depend on batching or sharding), class sensitivity (every image), the randomization cascade (images of
   the sanity subset).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..boxes import Box, iou
from ..compare import model_box_for
from ..datasets.base import Region
from ..datasets.samples import Sample
from ..errors import CxrDemoError
from .result import CaseRow
from ..imaging import load_image
from ..models.cln import MultiTaskNet
from ..datasets.nih import NIH_CLASSES
from ..predict import model_boxes_in_pixels, network_outputs
from ..preprocess import box_to_original, normalise, resize_gray
from .records import ImageRecord

#: Longest side of the gallery's film thumbnails (pixels).
THUMB_SIDE = 320


@dataclass(frozen=True)
class Plan:
    """What to compute per image.

    Attributes:
        methods: CAM methods (checked keys of :data:`cxrdemo.explain.CAM_METHODS`).
        cam_threshold: the CAM box's threshold on the 0..255 map.
        tolerance: pointing-game tolerance in original pixels.
        road: names of the images to score with ROAD (empty: none).
        sanity: names of the images to run the randomization cascade on (empty: none).
        class_sensitivity: compute class sensitivity on every image.
        gallery: folder for the gallery thumbnails (``None``: none written).
        seed: seeds ROAD's imputation noise (with the image name) and the cascade's re-initialisation.
        reader_rule: how several readers' regions are scored (:data:`cxrdemo.audit.regions.READER_RULES`).
    """

    methods: tuple[str, ...]
    cam_threshold: int = 127
    tolerance: float = 0.0
    road: frozenset[str] = frozenset()
    sanity: frozenset[str] = frozenset()
    class_sensitivity: bool = False
    gallery: Path | None = None
    seed: int = 0
    reader_rule: str = "per_reader"


class _PackedMasks:
    """A batch's truth masks kept as bits (``numpy.packbits``: 1/8 of a bool array, so a batch of 32 films of
    3000 x 2500 px with 3 readers holds 90 MB, not 720 MB), unpacked when a metric needs them."""

    def __init__(self) -> None:
        self._packed: dict[tuple[int, int], list[tuple[np.ndarray, tuple[int, int]]]] = {}

    def put(self, key: tuple[int, int], masks: Sequence[np.ndarray]) -> None:
        self._packed[key] = [(np.packbits(m, axis=None), m.shape) for m in masks]

    def get(self, key: tuple[int, int]) -> list[np.ndarray]:
        return [np.unpackbits(p, count=shape[0] * shape[1]).reshape(shape).astype(bool) for p, shape in self._packed[key]]


def _bounding(boxes: Sequence[Box], label: str) -> Box:
    """The smallest box holding ``boxes``."""
    return Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes), max(b.x2 for b in boxes), max(b.y2 for b in boxes), label)


def _mean_iou(truths: Sequence[Box], other: Box) -> float:
    """The mean over the readers' boxes of their IoU with ``other`` (one box: its IoU)."""
    return float(np.mean([iou(t, other) for t in truths]))


class DecodeSet(Dataset):
    """``(index, Sample)`` items decoded and resized to ``sizes`` (plus a thumbnail for boxed images if ``thumbs``:
    the names in ``boxed``, or when it is ``None`` the samples with NIH boxes; for every image if ``all_thumbs`` too:
    a detector's false boxes show on images without ground truth)."""

    def __init__(
        self, items: Sequence[tuple[int, Sample]], sizes: Sequence[int], thumbs: bool = False, all_thumbs: bool = False,
        boxed: frozenset[str] | None = None,
    ) -> None:
        self.items = list(items)
        self.boxed = boxed
        self.sizes = tuple(dict.fromkeys(int(s) for s in sizes))
        self.thumbs = thumbs
        self.all_thumbs = all_thumbs

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict[str, Any]:
        index, sample = self.items[k]
        item: dict[str, Any] = {"index": index, "sample": sample, "error": None}
        try:
            rad = load_image(sample.path)
        except CxrDemoError as exc:
            item["error"] = str(exc)
            return item
        except Exception as exc:  # noqa: BLE001 - any decoder failure is one skipped file, never a dead run
            item["error"] = f"{sample.path.name} could not be decoded ({exc.__class__.__name__}: {exc})"
            return item
        item["width"], item["height"] = rad.width, rad.height
        item["resized"] = {s: resize_gray(rad.pixels, s) for s in self.sizes}
        item["pixels"] = rad.pixels  # for a foreign model's own preprocessing (cxrdemo.models)
        if self.thumbs and (self.all_thumbs or (sample.name in self.boxed if self.boxed is not None else sample.boxes)):
            scale = THUMB_SIDE / max(rad.width, rad.height)
            w, h = max(1, round(rad.width * scale)), max(1, round(rad.height * scale))
            from PIL import Image

            item["thumb"] = np.asarray(Image.fromarray(rad.pixels).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0))
        return item


def collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DataLoader's collate function: the items as they are."""
    return items


def image_seed(seed: int, name: str) -> int:
    """A seed for one image (the same in any batch, on any rank)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


class BatchAuditor:
    """Computes :class:`ImageRecord` s for decoded batches (see the module doc).

    Args:
        model: the audited model (put in eval mode on ``device``).
        plan: what to compute.
        device: where the model runs.
        compare: a second model whose probabilities are recorded too (``--compare-weights``).
        regions: the ground truth per image name, in original pixels (:class:`cxrdemo.datasets.base.Region`: boxes
            or masks, with their readers); ``None``: each sample's NIH boxes (an image absent from a given mapping
            has no truth).

    ``notify(stage, n)`` (set by the engine; default: nothing) hears of every unit of work as it ends: ``("images",
    batch size)`` after the forward pass and CAMs of a batch, ``("road", 1)`` after each image's ROAD, ``("sanity",
    k)`` after the randomization cascade of a batch's ``k`` chosen images.
    """

    def __init__(
        self, model: MultiTaskNet, plan: Plan, device: torch.device, compare: MultiTaskNet | None = None,
        regions: Mapping[str, Sequence[Region]] | None = None,
    ) -> None:
        from .reference import ReferenceMaps

        self.regions = regions
        self.model = model.to(device).eval()
        self.compare = compare.to(device).eval() if compare is not None else None
        self.plan = plan
        self.device = device
        cfg = model.config
        # the second model's outputs in this model's class order (matched by name: another format may order them otherwise)
        self.compare_order = [compare.config.classes.index(c) for c in cfg.classes] if compare is not None else None
        self.config = cfg
        self.class_index = {c: i for i, c in enumerate(cfg.classes)}
        # Boxes are scored for the box classes; for a model without a box head (cxrdemo.models), the CAM box of
        # every NIH class the model predicts (labels with no NIH match are never scored).
        self.box_classes = list(cfg.box_classes) if cfg.box_mode != "none" else [c for c in cfg.classes if c in NIH_CLASSES]
        self.priors = {c: cfg.prior_boxes[c] for c in self.box_classes if c in cfg.prior_boxes}
        from .detection import detector_of, score_threshold_of

        # a detector (cxrdemo.audit.detection.BoxPredictor): its scored boxes of every image, for AP / FROC
        self.detect = detector_of(model)
        self.score_threshold = score_threshold_of(model)
        #: a real detector (cxrdemo.models.detector_base): no classifier head, so no CAM cases; see _detector_batch
        self.is_detector = bool(getattr(model, "is_detector", False))
        self.notify: Callable[[str, int], None] = lambda stage, n: None
        self.references = ReferenceMaps(cfg.input_size, plan.cam_threshold, plan.seed)
        self.seconds = {"decode_wait": 0.0, "model": 0.0, "cam": 0.0, "road": 0.0, "sanity": 0.0, "class_sensitivity": 0.0}

    @property
    def sizes(self) -> list[int]:
        """The input sizes the decoder must produce."""
        sizes = [self.config.input_size]
        if self.compare is not None:
            sizes.append(self.compare.config.input_size)
        return sizes

    def _forward(self, model: MultiTaskNet, items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        cfg = model.config
        if isinstance(model, MultiTaskNet):
            x = normalise(np.stack([it["resized"][cfg.input_size] for it in items]), cfg).to(self.device)
        else:  # the preprocessing the model's own files declare
            x = model.preprocess_batch([it["pixels"] for it in items]).to(self.device)
        probs, boxes, feats = network_outputs(model, x)
        return x, feats, probs.astype(np.float64), boxes

    def __call__(self, items: list[dict[str, Any]]) -> list[ImageRecord]:
        """The records of one decoded batch, in the batch's order."""
        records = [ImageRecord(index=it["index"], name=it["sample"].name, error=it["error"]) for it in items]
        ok = [k for k, it in enumerate(items) if it["error"] is None]
        if not ok:
            self.notify("images", len(items))
            return records
        good = [items[k] for k in ok]
        recs = [records[k] for k in ok]
        if self.is_detector:
            self._detector_batch(good, recs)
            self.notify("images", len(items))
            return records
        t0 = time.perf_counter()
        x, feats, probs, boxes = self._forward(self.model, good)
        compare = self._class_scores(self.compare, good)[:, self.compare_order] if self.compare is not None else None
        detections = self._detections(good)
        self.seconds["model"] += time.perf_counter() - t0
        for j, (it, rec) in enumerate(zip(good, recs)):
            rec.width, rec.height = int(it["width"]), int(it["height"])
            rec.probabilities = [float(v) for v in probs[j]]
            rec.compare = None if compare is None else [float(v) for v in compare[j]]
            rec.detections = None if detections is None else detections[j]
            if detections is not None and self.plan.gallery is not None and it.get("thumb") is not None:
                rec.detection_thumbnail = self._detection_picture(it, rec)
        t1 = time.perf_counter()
        self._cases(good, recs, feats, probs, boxes)
        self.seconds["cam"] += time.perf_counter() - t1
        self.notify("images", len(items))
        top1 = [int(v) for v in probs.argmax(axis=1)]
        if self.plan.road:
            self._road(good, recs, x, feats, top1)
        if self.plan.class_sensitivity:
            from .sanity import class_sensitivity

            t2 = time.perf_counter()
            sens = class_sensitivity(self.model, feats, probs, self.plan.methods)
            for j, rec in enumerate(recs):
                rec.class_sensitivity = {m: float(sens[m][j]) for m in self.plan.methods}
            self.seconds["class_sensitivity"] += time.perf_counter() - t2
        if self.plan.sanity:
            self._sanity(good, recs, x, top1)
        return records

    def _class_scores(self, model: Any, items: list[dict[str, Any]]) -> np.ndarray:
        """``(N, n_classes)`` image-level probabilities of ``model`` (a detector: each class's highest box score)."""
        if getattr(model, "is_detector", False):
            from ..models.detector_base import class_scores

            return np.stack([class_scores(b, model.config.classes) for b in model.predict_boxes([it["pixels"] for it in items])]).astype(np.float64)
        return self._forward(model, items)[2]

    def _detector_batch(self, items: list[dict[str, Any]], recs: list[ImageRecord]) -> None:
        """A detector's batch: every candidate box of each film (AP, FROC and IoU accuracy need those below the
        shown threshold too) and the image-level probabilities from the same boxes (a class's highest box score,
        :func:`cxrdemo.models.detector_base.class_scores`), one pass per film. A detector has no classifier head on
        a feature map: its CAMs are not audited here (the engine says so in the report's notes)."""
        from ..models.detector_base import class_scores
        from .detection import rows_to_boxes

        t0 = time.perf_counter()
        detections = self._detections(items)
        assert detections is not None
        compare = self._class_scores(self.compare, items)[:, self.compare_order] if self.compare is not None else None
        self.seconds["model"] += time.perf_counter() - t0
        for j, (it, rec) in enumerate(zip(items, recs)):
            rec.width, rec.height = int(it["width"]), int(it["height"])
            rec.probabilities = [float(v) for v in class_scores(rows_to_boxes(detections[j]), self.config.classes)]
            rec.compare = None if compare is None else [float(v) for v in compare[j]]
            rec.detections = detections[j]
            if self.plan.gallery is not None and it.get("thumb") is not None:
                rec.detection_thumbnail = self._detection_picture(it, rec)

    def _detections(self, items: list[dict[str, Any]]) -> list[list[list[Any]]] | None:
        """A detector's boxes of each image as JSON rows (``None`` for a model that is not a detector)."""
        if self.detect is None:
            return None
        from .detection import boxes_to_rows

        found = self.detect([it["pixels"] for it in items])
        if len(found) != len(items):
            raise CxrDemoError(f"the detector returned boxes for {len(found)} of {len(items)} images; it must return one list per image")
        try:
            return [boxes_to_rows(boxes) for boxes in found]
        except (ValueError, TypeError, AttributeError) as exc:
            raise CxrDemoError(f"the detector returned an unusable box ({exc}); each box needs x1, y1, x2, y2, a label and a finite score") from exc

    def _detection_picture(self, item: dict[str, Any], rec: ImageRecord) -> str:
        """The gallery's picture of a detector's image: every ground-truth box and its boxes at the operating point."""
        from .detection import rows_to_boxes
        from .gallery import write_detection_thumbnail

        truth = item["sample"].boxes_in_pixels(rec.width, rec.height)
        kept = [b for b in rows_to_boxes(rec.detections or []) if (b.score or 0.0) >= self.score_threshold]
        if not truth and not kept:
            return ""
        assert self.plan.gallery is not None
        return write_detection_thumbnail(self.plan.gallery, item["thumb"], rec.name, rec.width, rec.height, truth, kept)

    # ------------------------------------------------------------------------------------------------- boxes
    def _truths(self, item: dict[str, Any], w: int, h: int) -> tuple[list[Any], list[Region]]:
        """One image's truths (:func:`cxrdemo.audit.regions.group_truths` under the plan's reader rule) and its
        visible regions of the box classes: the regions the engine was given for the image, else NIH's boxes of the
        sample (:func:`cxrdemo.audit.regions.sample_regions`, the one place they enter)."""
        from .regions import group_truths, sample_regions, visible_region

        sample: Sample = item["sample"]
        given = self.regions.get(sample.name) if self.regions is not None else None
        regions = list(given) if given is not None else ([] if self.regions is not None else sample_regions(sample, w, h))
        view = self.model.view(w, h)  # a centre crop: only the regions the model saw, clipped to what it saw
        kept = [v for v in (visible_region(r, view, h, w) for r in regions if r.label in self.box_classes) if v is not None]
        return group_truths(kept, self.box_classes, self.plan.reader_rule), kept

    def _cases(self, items: list[dict[str, Any]], recs: list[ImageRecord], feats: torch.Tensor, probs: np.ndarray, boxes: np.ndarray) -> None:
        from ..explain import cam_box, cam_heatmaps
        from .maps import map_metrics, mask_metrics, resize_map
        from .regions import group_truths, reader_agreement

        single = self.config.box_mode == "single"
        truth: dict[int, list[Any]] = {}
        masks = _PackedMasks()
        pairs: list[tuple[int, str]] = []
        for j, it in enumerate(items):
            w, h = int(it["width"]), int(it["height"])
            truths, kept = self._truths(it, w, h)
            agreement = {}
            for t in group_truths(kept, self.box_classes, "per_reader"):  # the readers, whatever the rule
                value = reader_agreement(t.masks(h, w)) if len(t.readers) >= 2 else None
                if value is not None:
                    agreement[t.label] = value
            recs[j].agreement = agreement or None
            if not truths:
                continue
            truth[j] = truths
            pairs += [(j, t.label) for t in truths]
            for t in truths:
                if t.single_box is None:
                    masks.put((j, t.index), t.masks(h, w))
        if not pairs:
            return
        rows: dict[tuple[int, int], list[CaseRow]] = {}
        base: dict[tuple[int, int], dict[str, Any]] = {}
        for j, truths in truth.items():
            w, h = recs[j].width, recs[j].height
            mine = model_boxes_in_pixels(self.config, probs[j], boxes[j], w, h)
            for t in truths:
                model_box = model_box_for(t.label, mine, single)
                prior = self.priors.get(t.label)
                prior_box = box_to_original(prior, w, h, label=t.label) if prior is not None else None
                gts = t.boxes()
                one = t.single_box
                shown = one if one is not None else _bounding(gts, t.label)
                base[(j, t.index)] = {
                    "image": recs[j].name, "width": w, "height": h, "label": t.label, "box": shown.rounded(2),
                    "box_index": t.index, "probability": float(probs[j][self.class_index[t.label]]),
                    "model_iou": (_mean_iou(gts, model_box) if model_box is not None else 0.0) if self.config.box_mode != "none" else None,
                    "prior_iou": _mean_iou(gts, prior_box) if prior_box is not None else 0.0,
                    "model_box": model_box.rounded(2) if model_box is not None else None,
                    "region": "box" if one is not None else "mask", "n_readers": len(t.readers),
                }  # fmt: skip
                if one is None:
                    base[(j, t.index)]["references"] = self.references.values(masks.get((j, t.index)), gts, self.plan.tolerance)
                rows[(j, t.index)] = []
        index = torch.tensor([j for j, _ in pairs], dtype=torch.long)
        targets = [self.class_index[label] for _, label in pairs]
        for method in self.plan.methods:
            maps = cam_heatmaps(self.model, feats[index], targets, method)
            for (j, label), heatmap in zip(pairs, maps):
                w, h = recs[j].width, recs[j].height
                heatmap = self.model.view(w, h).map_to_film(heatmap, self.config.input_size)
                cbox = cam_box(heatmap, self.plan.cam_threshold, width=w, height=h, label=label)
                full = resize_map(heatmap, w, h)  # one image's map at a time in original pixels
                for t in truth[j]:
                    if t.label != label:
                        continue
                    one = t.single_box
                    if one is not None:  # one box: the box path, as before masks
                        metrics = map_metrics(full, one, self.plan.tolerance)
                        cam = iou(one, cbox) if cbox is not None else 0.0
                    else:  # the region path, averaged over the readers' truths
                        per = [mask_metrics(full, m, self.plan.tolerance) for m in masks.get((j, t.index))]
                        metrics = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
                        cam = _mean_iou(t.boxes(), cbox) if cbox is not None else 0.0
                    case = CaseRow(
                        **base[(j, t.index)], method=method, cam_iou=cam, metrics=metrics,
                        cam_box=cbox.rounded(2) if cbox is not None else None,
                    )  # fmt: skip
                    if self.plan.gallery is not None and items[j].get("thumb") is not None:
                        from .gallery import write_case_thumbnail

                        case.thumbnail = write_case_thumbnail(self.plan.gallery, items[j]["thumb"], heatmap, case, masks.get((j, t.index)) if t.single_box is None else None)
                    rows[(j, t.index)].append(case)
                del full
        for (j, _), cases in sorted(rows.items()):
            recs[j].cases.extend(cases)

    # ------------------------------------------------------------------------------------------ faithfulness
    def _road(self, items: list[dict[str, Any]], recs: list[ImageRecord], x: torch.Tensor, feats: torch.Tensor, top1: list[int]) -> None:
        from ..explain import cam_heatmaps
        from .faithfulness import logits_fn, road_scores

        chosen = [j for j, rec in enumerate(recs) if rec.name in self.plan.road]
        if not chosen:
            return
        index = torch.tensor(chosen, dtype=torch.long)
        seeds = [image_seed(self.plan.seed, recs[j].name) for j in chosen]
        maps = [cam_heatmaps(self.model, feats[index], [top1[j] for j in chosen], method) for method in self.plan.methods]
        # one call for every (method, image): the imputations solved together, the forwards batched; each image is
        # seeded by its name, so its score does not depend on the batch
        t0 = time.perf_counter()
        scores = road_scores(
            logits_fn(self.model), x[index].repeat(len(maps), 1, 1, 1), np.concatenate(maps),
            [top1[j] for j in chosen] * len(maps), seeds=seeds * len(maps),
        )  # fmt: skip
        spent = time.perf_counter() - t0
        self.seconds["road"] += spent
        for k, j in enumerate(chosen):
            recs[j].road = {m: float(scores[i * len(chosen) + k]) for i, m in enumerate(self.plan.methods)}
            recs[j].seconds["road"] = recs[j].seconds.get("road", 0.0) + spent / len(chosen)
        self.notify("road", len(chosen))

    # ---------------------------------------------------------------------------------------------- sanity
    def _sanity(self, items: list[dict[str, Any]], recs: list[ImageRecord], x: torch.Tensor, top1: list[int]) -> None:
        from .sanity import cascading_randomization

        chosen = [j for j, rec in enumerate(recs) if rec.name in self.plan.sanity]
        if not chosen:
            return
        t0 = time.perf_counter()
        index = torch.tensor(chosen, dtype=torch.long)
        result = cascading_randomization(self.model, x[index], [top1[j] for j in chosen], self.plan.methods, seed=self.plan.seed)
        spent = time.perf_counter() - t0
        self.seconds["sanity"] += spent
        for k, j in enumerate(chosen):
            recs[j].sanity = {
                m: {"spearman": [float(v) for v in result.spearman[m][:, k]], "ssim": [float(v) for v in result.ssim[m][:, k]]}
                for m in result.methods
            }
            recs[j].seconds["sanity"] = spent / len(chosen)
        self.notify("sanity", len(chosen))
