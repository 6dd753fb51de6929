"""Detection figures (:mod:`cxrdemo.audit.detection`): AP against pycocotools, FROC by hand, CI shapes.

Tolerance of the reference checks: with ``interpolation="coco"`` both sides do the same arithmetic on the same
matches (same stable order, same ``np.linspace`` recall points, same ``searchsorted``); the only difference is
pycocotools' precision ``tp / (tp + fp + eps)`` (eps = 2.2e-16) against our ``tp / (tp + fp)``, a relative change
below 2.2e-16 of each of the 101 precisions averaged, and IoUs computed by different code, which can only matter for
an IoU within ~1e-16 of the threshold (random float boxes never land there; hand cases are built away from it). So
the APs agree to ~1e-15; 1e-12 leaves a margin of 1000.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from cxrdemo.audit.detection import (
    FROC_RATES,
    DetectionCase,
    _Figures,
    average_precision,
    detection_figures,
    froc_points,
    froc_sensitivities,
    image_errors,
    match_cases,
)
from cxrdemo.boxes import Box

import pycocotools  # noqa: F401,E402  (the test-only reference, requirements-dev.txt: a missing one fails, never skips)

TOL = 1e-12


def _coco_eval(cases: list[DetectionCase], classes: list[str], iou_t: float):
    """pycocotools' COCOeval on ``cases`` with like-for-like settings: one IoU threshold, every area, no cap on the
    boxes per image, image ids in the order of ``cases`` (they break ties in score)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(cases))]
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(classes)]
    cat = {c: k + 1 for k, c in enumerate(classes)}

    def ann(b: Box, image: int, aid: int, score: float | None) -> dict:
        w, h = b.x2 - b.x1, b.y2 - b.y1
        doc = {"id": aid, "image_id": image, "category_id": cat[b.label], "bbox": [b.x1, b.y1, w, h], "area": w * h, "iscrowd": 0}
        if score is not None:
            doc["score"] = score
        return doc

    gts, dts = [], []
    for i, c in enumerate(cases):  # annotation ids from 1 (pycocotools reads id 0 as "unmatched"), each unique
        for b in c.truth:
            gts.append(ann(b, i + 1, len(gts) + 1, None))
        for b in c.predicted:
            if b.label in cat:
                dts.append(ann(b, i + 1, len(dts) + 1, float(b.score)))
    gt, dt = COCO(), COCO()
    gt.dataset = {"images": images, "categories": cats, "annotations": gts}
    dt.dataset = {"images": images, "categories": cats, "annotations": dts}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = [i + 1 for i in range(len(cases))]
        ev.params.catIds = [k + 1 for k in range(len(classes))]
        ev.params.iouThrs = np.array([iou_t])
        ev.params.maxDets = [max(1, len(dts)) + 1]
        ev.params.areaRng = [[0.0, 1e12]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    return ev


def coco_ap(cases: list[DetectionCase], classes: list[str], iou_t: float) -> dict[str, float | None]:
    """Per class, pycocotools' AP (``None`` where it reports -1: no ground truth)."""
    ev = _coco_eval(cases, classes, iou_t)
    out = {}
    for k, c in enumerate(classes):
        p = ev.eval["precision"][0, :, k, 0, 0]
        out[c] = None if (p == -1).all() else float(np.mean(p))
    return out


def voc_ap_from_reference(cases: list[DetectionCase], classes: list[str], iou_t: float) -> dict[str, float | None]:
    """Per class, the PASCAL VOC devkit's all-point AP (VOCap, written out as the devkit does) on pycocotools'
    matches: an independent check of our ``"voc"`` interpolation and of the ranking."""
    ev = _coco_eval(cases, classes, iou_t)
    out: dict[str, float | None] = {}
    for k, c in enumerate(classes):
        evs = [e for e in ev.evalImgs if e is not None and e["category_id"] == k + 1]
        npos = sum(len(e["gtIds"]) for e in evs)
        if npos == 0:
            out[c] = None
            continue
        scores = np.concatenate([np.asarray(e["dtScores"], dtype=float) for e in evs]) if evs else np.zeros(0)
        matched = np.concatenate([e["dtMatches"][0] for e in evs]) if evs else np.zeros(0)
        order = np.argsort(-scores, kind="mergesort")
        tp = (matched[order] > 0).astype(float)
        fp = 1.0 - tp
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = list(tp / npos)
        prec = list(tp / np.maximum(tp + fp, np.finfo(float).eps))
        mrec = [0.0, *rec, 1.0]
        mpre = [0.0, *prec, 0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        ap = 0.0
        for i in range(1, len(mrec)):
            if mrec[i] != mrec[i - 1]:
                ap += (mrec[i] - mrec[i - 1]) * mpre[i]
        out[c] = ap
    return out


def ours(cases: list[DetectionCase], classes: list[str], iou_t: float, interpolation: str) -> dict[str, float | None]:
    res = detection_figures(cases, classes, iou_thresholds=(iou_t,), interpolation=interpolation, n_resamples=0)
    return {c: (None if math.isnan(e.value) else e.value) for c, e in res.ap[f"{iou_t:g}"].per_class.items()}


def assert_same(a: dict[str, float | None], b: dict[str, float | None]) -> None:
    assert list(a) == list(b)
    for c in a:
        assert (a[c] is None) == (b[c] is None), (c, a[c], b[c])
        if a[c] is not None:
            assert abs(a[c] - b[c]) <= TOL, (c, a[c], b[c])


def B(x1, y1, x2, y2, label="A", score=None) -> Box:
    return Box(float(x1), float(y1), float(x2), float(y2), label, score)


# Hand-made cases: (name, cases, classes). IoUs are built away from 0.4 and 0.5.
HAND = {
    "ties_in_score_across_and_within_images": (
        [
            DetectionCase("a", (B(0, 0, 10, 10), B(20, 20, 30, 30)), (B(0, 0, 10, 10, score=0.7), B(50, 50, 60, 60, score=0.7), B(20, 20, 30, 31, score=0.7))),
            DetectionCase("b", (B(0, 0, 10, 10),), (B(70, 70, 80, 80, score=0.7), B(0, 0, 10, 10, score=0.7), B(1, 1, 11, 11, score=0.9))),
        ],
        ["A"],
    ),
    "no_predictions": ([DetectionCase("a", (B(0, 0, 10, 10),)), DetectionCase("b", (B(5, 5, 9, 9, "B"),))], ["A", "B"]),
    "no_ground_truth": ([DetectionCase("a", (), (B(0, 0, 10, 10, score=0.9),)), DetectionCase("b", (), ())], ["A", "B"]),
    "class_without_truth_beside_one_with": (
        [DetectionCase("a", (B(0, 0, 10, 10),), (B(0, 0, 10, 10, "B", 0.99), B(0, 0, 10, 10, score=0.5)))],
        ["A", "B"],
    ),
    "several_boxes_per_image_and_duplicates": (
        [
            DetectionCase("a", (B(0, 0, 10, 10), B(2, 2, 12, 12), B(40, 40, 60, 60)),
                          (B(1, 1, 11, 11, score=0.95), B(1, 1, 11, 11, score=0.9), B(0, 0, 10, 10, score=0.85), B(41, 41, 59, 62, score=0.3))),
            DetectionCase("b", (), (B(0, 0, 10, 10, score=0.92), B(3, 3, 8, 8, score=0.4))),
            DetectionCase("c", (B(10, 10, 30, 30),), (B(12, 12, 30, 32, score=0.6),)),
        ],
        ["A"],
    ),  # fmt: skip
    "several_classes_never_cross_matched": (
        [
            DetectionCase("a", (B(0, 0, 10, 10, "A"), B(0, 0, 10, 10, "B")), (B(0, 0, 10, 10, "B", 0.9), B(30, 30, 40, 40, "A", 0.8))),
            DetectionCase("b", (B(5, 5, 25, 25, "B"),), (B(5, 5, 25, 25, "A", 0.99), B(6, 6, 25, 25, "B", 0.2), B(0, 0, 3, 3, "C", 0.5))),
            DetectionCase("c", (B(0, 0, 4, 4, "C"),), (B(0, 0, 4, 4, "Z", 0.9),)),
        ],
        ["A", "B", "C"],
    ),
    "image_without_truth_only_false_boxes": (
        [DetectionCase("a", (B(0, 0, 10, 10),), (B(0, 0, 10, 10, score=0.5),)), DetectionCase("b", (), (B(0, 0, 10, 10, score=0.6), B(3, 3, 9, 9, score=0.55)))],
        ["A"],
    ),
}


@pytest.mark.parametrize("name", list(HAND))
@pytest.mark.parametrize("iou_t", [0.5, 0.4])
def test_coco_ap_equals_pycocotools_on_hand_cases(name: str, iou_t: float):
    cases, classes = HAND[name]
    assert_same(ours(cases, classes, iou_t, "coco"), coco_ap(cases, classes, iou_t))


@pytest.mark.parametrize("name", list(HAND))
@pytest.mark.parametrize("iou_t", [0.5, 0.4])
def test_voc_ap_equals_the_devkit_on_the_references_matches(name: str, iou_t: float):
    cases, classes = HAND[name]
    assert_same(ours(cases, classes, iou_t, "voc"), voc_ap_from_reference(cases, classes, iou_t))


def _random_cases(rng: np.random.Generator, classes: list[str]) -> list[DetectionCase]:
    cases = []
    for i in range(int(rng.integers(1, 7))):
        truth, pred = [], []
        for _ in range(int(rng.integers(0, 5))):
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(5, 30, 2)
            truth.append(Box(x, y, x + w, y + h, str(rng.choice(classes))))
        for _ in range(int(rng.integers(0, 7))):
            if truth and rng.random() < 0.6:  # near a ground-truth box (of its class or not)
                g = truth[int(rng.integers(len(truth)))]
                d = rng.normal(0, 3, 4)
                x1, y1, x2, y2 = g.x1 + d[0], g.y1 + d[1], g.x2 + d[2], g.y2 + d[3]
                if x2 <= x1 + 1 or y2 <= y1 + 1:
                    continue
                label = g.label if rng.random() < 0.8 else str(rng.choice(classes))
            else:
                x1, y1 = rng.uniform(0, 80, 2)
                x2, y2 = x1 + rng.uniform(5, 30), y1 + rng.uniform(5, 30)
                label = str(rng.choice(classes))
            score = round(float(rng.random()), 1) if rng.random() < 0.5 else float(rng.random())  # ties on purpose
            pred.append(Box(x1, y1, x2, y2, label, score))
        cases.append(DetectionCase(f"img{i}", tuple(truth), tuple(pred)))
    return cases


@pytest.mark.parametrize("seed", range(60))
def test_ap_equals_the_reference_on_random_cases(seed: int):
    rng = np.random.default_rng(seed)
    classes = ["A", "B", "C"]
    cases = _random_cases(rng, classes)
    for iou_t in (0.5, 0.4):
        assert_same(ours(cases, classes, iou_t, "coco"), coco_ap(cases, classes, iou_t))
        assert_same(ours(cases, classes, iou_t, "voc"), voc_ap_from_reference(cases, classes, iou_t))


def test_ap_hand_values():
    """Worked by hand: ranked TP, FP, TP, FP with 3 ground-truth boxes."""
    tp = np.array([True, False, True, False])
    # recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2; envelope 1, 2/3, 2/3, 1/2
    assert average_precision(tp, 3, interpolation="voc") == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3, abs=1e-15)
    # 101 points: r = 0 .. 0.33 (34 points) -> 1; 0.34 .. 0.66 (33 points) -> 2/3; above 2/3 -> 0
    assert average_precision(tp, 3, interpolation="coco") == pytest.approx((34 * 1 + 33 * 2 / 3) / 101, abs=1e-15)
    assert math.isnan(average_precision(tp, 0))  # no ground truth: undefined, not 0 or 1
    assert average_precision(np.zeros(0, dtype=bool), 2) == 0.0  # truth, no prediction: 0
    with pytest.raises(ValueError, match="interpolation"):
        average_precision(tp, 3, interpolation="11-point")


def test_matching_rules():
    # ties in score: the detector's order; a second box on a found finding is a false positive
    cases = [DetectionCase("a", (B(0, 0, 10, 10),), (B(0, 0, 10, 10, score=0.5), B(0, 0, 10, 10, score=0.5)))]
    m = match_cases(cases, ["A"], 0.5)
    assert m.tp.tolist() == [True, False]
    # a box matches the unmatched ground-truth box with the highest IoU, not the first
    cases = [DetectionCase("a", (B(0, 0, 10, 10), B(1, 1, 11, 11)), (B(1, 1, 11, 11, score=0.9), B(0, 0, 10, 10, score=0.8)))]
    m = match_cases(cases, ["A"], 0.5)
    assert m.tp.tolist() == [True, True] and m.gt_hit.tolist() == [[2]]
    with pytest.raises(ValueError, match="no finite score"):
        match_cases([DetectionCase("a", (), (B(0, 0, 1, 1),))], ["A"], 0.5)


def test_froc_by_hand():
    """4 images, 4 lesions (class A), FP rates counted by hand."""
    cases = [
        DetectionCase("a", (B(0, 0, 10, 10), B(50, 50, 60, 60)), (B(0, 0, 10, 10, score=0.9), B(80, 80, 90, 90, score=0.8))),
        DetectionCase("b", (B(0, 0, 10, 10),), (B(30, 30, 40, 40, score=0.7), B(0, 0, 10, 10, score=0.3))),
        DetectionCase("c", (), (B(0, 0, 10, 10, score=0.6), B(5, 5, 9, 9, score=0.2))),
        DetectionCase("d", (B(20, 20, 30, 30),), ()),
    ]
    m = match_cases(cases, ["A"], 0.5)
    fppi, sens = froc_points(m.tp, m.score, 4, 4)
    # ranked: .9 TP, .8 FP, .7 FP, .6 FP, .3 TP, .2 FP
    assert fppi.tolist() == [0, 0, 0.25, 0.5, 0.75, 0.75, 1.0]
    assert sens.tolist() == [0, 0.25, 0.25, 0.25, 0.25, 0.5, 0.5]
    at = froc_sensitivities(fppi, sens, FROC_RATES)
    # 1/8: only the first cut (0 FP) fits -> 0.25; 1/4 .. 1/2 -> 0.25; 1 and above -> every box kept: 0.5
    assert at.tolist() == [0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5]
    res = detection_figures(cases, ["A"], n_resamples=0)
    assert res.froc["0.5"].mean.value == pytest.approx(np.mean(at), abs=1e-15)
    assert res.froc["0.5"].sensitivity["1/8"].value == 0.25
    # ties in score enter together: two boxes at 0.5 are one operating point
    tied = [DetectionCase("a", (B(0, 0, 10, 10),), (B(50, 50, 60, 60, score=0.5), B(0, 0, 10, 10, score=0.5)))]
    m = match_cases(tied, ["A"], 0.5)
    fppi, sens = froc_points(m.tp, m.score, 1, 1)
    assert fppi.tolist() == [0, 1] and sens.tolist() == [0, 1]
    assert froc_sensitivities(fppi, sens, (0.5, 1.0)).tolist() == [0, 1]


def test_iou_accuracy_keeps_clns_definition():
    """Per ground-truth box the best same-class IoU of the boxes above the score cut, share > T, mean of classes."""
    cases = [
        DetectionCase("a", (B(0, 0, 10, 10), B(50, 50, 70, 70, "B")),
                      (B(0, 0, 10, 20, score=0.9), B(0, 0, 10, 10, score=0.3), B(50, 50, 70, 70, "A", 0.99))),
        DetectionCase("b", (B(0, 0, 10, 10),), (B(0, 0, 10, 10, score=0.8),)),
    ]  # fmt: skip
    res = detection_figures(cases, ["A", "B"], score_threshold=0.5, n_resamples=0)
    # A: IoUs 0.5 (the 0.3-scored exact box is below the cut) and 1.0; B: no B box -> 0
    assert res.iou_accuracy["0.4"]["A"].value == 1.0
    assert res.iou_accuracy["0.5"]["A"].value == 0.5  # strictly larger than T
    assert res.iou_accuracy["0.1"]["B"].value == 0.0
    assert res.iou_accuracy["0.4"]["mean"].value == 0.5
    from cxrdemo.metrics import best_matches, iou_accuracy

    kept = [[p for p in c.predicted if p.score >= 0.5] for c in cases]
    cln = iou_accuracy([m for c, k in zip(cases, kept) for m in best_matches(c.truth, k, c.name)], ["A", "B"])
    for t, row in cln.items():
        for c, v in row.items():
            assert res.iou_accuracy[t][c].value == pytest.approx(v, abs=1e-15)


def test_resample_weights_equal_listing_the_copies():
    """The bootstrap's weighting equals recomputing on the resample written out (copies of an image side by side)."""
    rng = np.random.default_rng(3)
    classes = ["A", "B", "C"]
    for _ in range(10):
        cases = _random_cases(rng, classes)
        counts = rng.integers(0, 3, len(cases))
        if counts.sum() == 0:
            continue
        expanded = [c for c, k in zip(cases, counts) for _ in range(int(k))]
        figs = _Figures(cases, classes, (0.5, 0.4), 0.5, (0.1, 0.5), FROC_RATES, "voc")
        ref = _Figures(expanded, classes, (0.5, 0.4), 0.5, (0.1, 0.5), FROC_RATES, "voc")
        in_mean = figs.gt_counts.sum(axis=0) > 0
        np.testing.assert_allclose(figs.values(counts, in_mean), ref.values(np.ones(len(expanded), dtype=np.int64), in_mean), atol=1e-12, equal_nan=True)


def test_ci_shapes_and_determinism():
    rng = np.random.default_rng(7)
    cases = _random_cases(rng, ["A", "B"]) + _random_cases(rng, ["A", "B"])
    cases = [*cases, DetectionCase("empty")]
    a = detection_figures(cases, ["A", "B", "Z"], n_resamples=200, seed=1)
    b = detection_figures(cases, ["A", "B", "Z"], n_resamples=200, seed=1)
    assert a.to_json() == b.to_json()
    doc = json.loads(json.dumps(a.to_json(), allow_nan=False))
    assert list(doc["ap"]) == ["0.5", "0.4"] and list(doc["froc"]) == ["0.5", "0.4"]
    assert list(doc["iou_accuracy"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert list(doc["froc"]["0.4"]["sensitivity"]) == ["1/8", "1/4", "1/2", "1", "2", "4", "8"]
    assert doc["ap"]["0.4"]["per_class"]["Z"]["value"] is None  # no ground truth: undefined, reported as such
    assert "Z" not in doc["ap"]["0.4"]["classes_in_mean"]
    assert doc["bootstrap"] == {"n_resamples": 200, "seed": 1, "level": 0.95, "unit": "image"}
    for est in [*a.ap["0.4"].per_class.values(), a.ap["0.4"].mean, a.froc["0.5"].mean, a.iou_accuracy["0.3"]["mean"]]:
        assert est.n == len(cases)
        if math.isfinite(est.value):
            assert 0.0 <= est.low <= est.high <= 1.0
    c = detection_figures(cases, ["A", "B", "Z"], n_resamples=200, seed=2)
    assert c.ap["0.4"].mean.value == a.ap["0.4"].mean.value and c.to_json() != a.to_json()


def test_gallery_order_missed_then_confident_false_boxes():
    cases = [
        DetectionCase("clean", (B(0, 0, 10, 10),), (B(0, 0, 10, 10, score=0.9),)),
        DetectionCase("one_false", (), (B(0, 0, 10, 10, score=0.95),)),
        DetectionCase("two_missed", (B(0, 0, 10, 10), B(30, 30, 40, 40, "B")), (B(0, 0, 10, 10, score=0.2),)),
        DetectionCase("one_missed", (B(0, 0, 10, 10),), (B(50, 50, 60, 60, score=0.6), B(70, 70, 80, 80, score=0.7))),
        DetectionCase("one_false_weak", (), (B(0, 0, 10, 10, score=0.55),)),
    ]
    errs = image_errors(cases, ["A", "B"], score_threshold=0.5, iou_threshold=0.4)
    assert [e.name for e in errs] == ["two_missed", "one_missed", "one_false", "one_false_weak", "clean"]
    assert [b.score for b in errs[1].false_boxes] == [0.7, 0.6]
    assert errs[-1].found == 1 and not errs[-1].missed


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="interpolation"):
        detection_figures([], ["A"], interpolation="x")
    with pytest.raises(ValueError, match="distinct"):
        detection_figures([], ["A", "A"])
    other = detection_figures([DetectionCase("a", (), (B(0, 0, 1, 1, "Q", 0.5),))], ["A"], n_resamples=0)
    assert other.n_predicted == 0 and other.n_unscored == 1  # another label: counted, not scored
    empty = detection_figures([], ["A"], n_resamples=10)
    assert math.isnan(empty.ap["0.4"].mean.value) and empty.n_images == 0


def test_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys\nimport cxrdemo.audit.detection\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
