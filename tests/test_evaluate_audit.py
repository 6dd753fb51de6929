"""``evaluate``'s explanation audit on a handful of shared NIH images (small model, small inputs; plumbing, not accuracy).

Every output is written into pytest's tmp_path (the gallery's thumbnails are radiograph pixels: never into the
repository). The shared images are read in place (a folder of symlinks where a test needs its own folder).
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.cli import main as cli_main
from cxrdemo.audit.maps import MAP_METRICS
from cxrdemo.audit.result import AUDIT_KEYS
from cxrdemo.audit.verdict import TOO_FEW
from cxrdemo.evalresult import REPORT_KEYS

from conftest import BOXED, DATA, REPO, calibrated_model_folder, write_csv

OTHERS = ("00000001_000.png", "00000001_001.png", "00000002_000.png")
TEACHER = DATA.parent / "teacher" / "reproduce-chexnet_predictions.csv"


def json_close(a, b, tol: float = 1e-5) -> bool:
    """Two JSON documents equal up to ``tol`` on every number (batch composition moves floats in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(json_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= tol
    return a == b


def _labels(folder: Path, names: list[str], extra_rows: list[dict] | None = None) -> Path:
    rows = [r for r in csv.DictReader((DATA / "labels.csv").open()) if r["Image Index"] in set(names)]
    return write_csv(folder / "labels.csv", rows + (extra_rows or []))


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MobileNetV3-Small model folder at 64 px (ROAD's imputation and the cascade scale with the pixels)."""
    return calibrated_model_folder(tmp_path_factory.mktemp("small-model") / "model", 64, batches=3)


@pytest.fixture(scope="module")
def few(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A label CSV of the 5 boxed shared images and 3 others, and a names file of them."""
    tmp = tmp_path_factory.mktemp("audit-few")
    names = sorted([*BOXED, *OTHERS])
    (tmp / "names.txt").write_text("\n".join(names) + "\n")
    return {"labels": _labels(tmp, names), "names": tmp / "names.txt", "images": data_dir / "images", "boxes": data_dir / "boxes.csv"}


def _argv(few: dict[str, Path], small_model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate", "--images", str(few["images"]), "--labels", str(few["labels"]), "--boxes", str(few["boxes"]),
        "--weights", str(small_model), "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "3",
        "--workers", "0", "--bootstrap", "200", *(["--names", str(few["names"])] if "names" in few else []), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def full_run(few, small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-out") / "run"
    argv = _argv(
        few, small_model, out, "--cam-methods", "gradcam,eigencam", "--faithfulness", "--faithfulness-images", "2",
        "--sanity", "--sanity-images", "2", "--baseline-predictions", str(TEACHER), "--compare-weights", str(small_model),
        "--workers", "1",
    )  # fmt: skip
    assert cli_main(argv) == 0
    return out


def test_audit_writes_every_output(full_run: Path):
    report = json.loads((full_run / "report.json").read_text())
    assert tuple(report) == REPORT_KEYS + AUDIT_KEYS
    assert report["n_images"] == 8 and report["n_boxes"] == 5
    plaus = report["plausibility"]["methods"]
    assert list(plaus) == ["gradcam", "eigencam"]
    for metric in ("pointing_game", "energy_in_box", "mask_iou_otsu", "mask_iou_127", "mask_iou_180"):
        est = plaus["gradcam"][metric]["overall"]
        # 5 images: fewer than MIN_IMAGES (10), so the value comes without an interval, and says why
        assert est["n"] == 5 and 0.0 <= est["value"] <= 1.0 and est["low"] is None and est["interval"] == TOO_FEW
        assert set(plaus["gradcam"][metric]["per_class"]) == set(BOXED.values())
    ref = report["plausibility_reference"]
    assert set(ref["uniform"]) == set(ref["center"]) == {*MAP_METRICS, "cam_iou"} and ref["n_boxes"] == 5
    verdict = plaus["gradcam"]["verdict"]
    assert verdict["n_boxes"] == 5 and verdict["against"]["center"]["energy_in_box"]["verdict"] == "too few images"
    assert "no verdict" in verdict["line"] and report["partial"] is None
    assert list(plaus["gradcam"]["cam_iou_accuracy"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert report["faithfulness"]["n_images"] == 2 and set(report["faithfulness"]["methods"]) == {"gradcam", "eigencam"}
    sanity = report["sanity"]
    assert sanity["n_images"] == 2 and sanity["steps"][:2] == ["trained", "class head"]
    assert sanity["methods"]["gradcam"][0]["ssim"]["value"] == pytest.approx(1.0)
    assert report["class_sensitivity"]["methods"]["eigencam"]["value"] == pytest.approx(1.0)  # class-agnostic
    teacher, second = report["baseline"]
    assert teacher["kind"] == "predictions" and teacher["n_common"] + teacher["ours_without_baseline"] == 8
    assert second["kind"] == "weights" and second["n_common"] == 8
    assert second["mean"]["difference"]["value"] == pytest.approx(0.0)  # the same model compared with itself
    assert report["skipped"]["unreadable"] == 0
    # predictions.csv: every image, read back by --baseline-predictions' reader, equal to the scores
    from cxrdemo.audit.baseline import read_predictions
    from cxrdemo.models.config import ModelConfig

    preds = read_predictions(full_run / "predictions.csv", ModelConfig().classes)
    assert sorted(preds) == sorted([*BOXED, *OTHERS])
    cases = list(csv.DictReader((full_run / "cases.csv").open()))
    assert len(cases) == 5 * 2 and {c["method"] for c in cases} == {"gradcam", "eigencam"}
    for c in cases:
        assert float(c["probability"]) == pytest.approx(preds[c["image"]][ModelConfig().classes.index(c["class"])], abs=1e-6)
        assert (full_run / c["thumbnail"]).is_file()
    page = (full_run / "gallery.html").read_text()
    assert page.count("<tr data-image=") == 10 and "<script>" in page and "http" not in page.split("<script>")[1]
    md = (full_run / "report.md").read_text()
    for heading in ("plausibility", "References and verdicts", "faithfulness (ROAD)", "cascading randomization",
                    "class sensitivity", "against a baseline"):
        assert heading in md
    assert "- CAM boxes: gradcam, eigencam, threshold 127/255" in md  # both methods (it said "gradcam" alone)
    for png in ("roc.png", "iou_accuracy.png", "plausibility.png", "sanity.png", "auc_vs_reproduce-chexnet_predictions.png"):
        assert (full_run / png).is_file()
    assert (full_run / "skipped.csv").read_text() == "file,reason\n"


def test_unreadable_file_and_label_rows_without_image(few, small_model: Path, tmp_path: Path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("00013125_000.png", *OTHERS[:2]):
        (folder / name).symlink_to(few["images"] / name)
    (folder / "00000004_000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png at all" * 8)  # no pixels: garbage
    (folder / "00000005_000.png").write_bytes(b"")  # no label row either way
    ghost = {"Image Index": "99999999_000.png", "Finding Labels": "No Finding", "Patient ID": "99999999"}
    corrupt = {"Image Index": "00000004_000.png", "Finding Labels": "No Finding", "Patient ID": "4"}
    labels = _labels(tmp_path, ["00013125_000.png", *OTHERS[:2]], [ghost, corrupt])
    out = tmp_path / "out"
    mine = {"images": folder, "labels": labels, "boxes": few["boxes"]}  # no --names: every file of the folder
    argv = _argv(mine, small_model, out, "--no-plots", "--no-gallery")
    assert cli_main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_images"] == 3 and report["n_boxes"] == 1
    assert report["skipped"]["unreadable"] == 1 and report["skipped"]["no_label_row"] == 1
    assert report["skipped"]["label_rows_without_image"] == 1
    rows = list(csv.DictReader((out / "skipped.csv").open()))
    assert [r["file"] for r in rows] == ["00000004_000.png", "00000005_000.png"]
    assert all(r["reason"] and "\n" not in r["reason"] for r in rows)


def _baseline_bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    text = TEACHER.read_text().splitlines()
    header, rows = text[0], text[1:4]
    if case == "missing column":
        header = header.replace(",prob_Hernia", "")
        rows = [r.rsplit(",", 1)[0] for r in rows]
        expect = r"missing column prob_Hernia"
    elif case == "unknown image":
        rows[1] = "no_such_image.png," + rows[1].split(",", 1)[1]
        expect = r"row 2 \(line 3\): unknown image 'no_such_image.png'"
    else:
        cells = rows[2].split(",")
        cells[3] = "high"
        rows[2] = ",".join(cells)
        expect = r"row 3 \(line 4\), column prob_Effusion: 'high' is not a number"
    path = tmp_path / "preds.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path, expect


@pytest.mark.parametrize("case", ["missing column", "unknown image", "non-numeric value"])
def test_malformed_baseline_is_one_line_naming_file_and_row(case, few, small_model: Path, tmp_path: Path, capsys):
    path, expect = _baseline_bad(tmp_path, case)
    out = tmp_path / "out"
    assert cli_main(_argv(few, small_model, out, "--baseline-predictions", str(path), "--no-plots")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ")
    assert __import__("re").search(expect, err[0]), err[0]
    assert not (out / "cache").exists()  # refused before any image was processed


def test_resume_after_interruption_loses_nothing(few, small_model: Path, tmp_path: Path):
    from cxrdemo.audit.engine import AuditOptions, AuditStopped, run_audit
    from cxrdemo.audit.selection import read_names

    base = dict(images=few["images"], labels=few["labels"], boxes=few["boxes"], weights=str(small_model),
                names=read_names(few["names"]), cam_methods=("gradcam",), device="cpu", batch_size=3, workers=0,
                n_resamples=100, plots=False, gallery=False)  # fmt: skip
    out = tmp_path / "out"
    stop = threading.Event()
    with pytest.raises(AuditStopped, match="--resume") as stopped:  # Stop once the first batch is done
        run_audit(AuditOptions(**base, out=out), progress=lambda done, total, stage: stage == "images" and done and stop.set(), stop=stop)
    parts = list((out / "cache").glob("*/part-0.jsonl"))
    assert len(parts) == 1 and len(parts[0].read_text().splitlines()) == 3  # the first batch survived
    partial = stopped.value.result  # and its report was written, marked partial
    assert partial is not None and partial.partial["images_done"] == 3 and partial.evaluation.n_images == 3
    # issue 27 C7: boxed images are processed first, so the first batch holds 3 boxed images, although the 3
    # unboxed ones come first by name (a stop at 64 of 120 images had scored 3 of 11 boxes)
    assert sorted(read_names(few["names"]))[:3] == sorted(OTHERS)
    assert set(partial.evaluation.names) <= set(BOXED) and partial.evaluation.n_boxes == 3
    assert sum(n.startswith("partial report:") for n in partial.notes) == 1
    assert json.loads((out / "report.json").read_text())["partial"]["images_planned"] == 8
    with parts[0].open("a") as fh:
        fh.write('{"index": 5, "name": "cut short by a cra')  # a crash mid-write: that image is redone
    seen: list[int] = []
    resumed = run_audit(AuditOptions(**base, out=out, resume=True), progress=lambda d, t, s: seen.append(t) if s == "images" else None)
    assert set(seen) == {5} and resumed.evaluation.timings["images_from_cache"] == 3
    fresh = run_audit(AuditOptions(**base, out=tmp_path / "fresh"))
    a, b = resumed.to_json(), fresh.to_json()
    for doc in (a, b):
        doc.pop("timings")
    assert json_close(a, b)
    assert np.allclose(resumed.evaluation.scores, fresh.evaluation.scores)


def test_out_never_defaults_into_the_repository(tmp_path: Path):
    from cxrdemo.audit.outputs import resolve_out
    from cxrdemo.errors import InputError

    assert resolve_out(None, cwd=tmp_path) == tmp_path.resolve() / "cxrdemo-evaluation"
    if (REPO / ".git").exists():
        with pytest.raises(InputError, match="inside the cxrdemo repository"):
            resolve_out(None, cwd=REPO)
        with pytest.raises(InputError, match="inside the cxrdemo repository"):
            resolve_out(REPO / "evaluation")


def test_every_option_has_help_and_shows_its_default():
    from cxrdemo.cli import build_parser

    parser = build_parser("evaluate")
    sub = next(a for a in parser._actions if a.dest == "command").choices["evaluate"]
    for action in sub._actions:
        if action.dest in ("help", "debug"):
            continue
        assert action.help, action.dest
        assert "default" in action.help or action.required, action.dest
