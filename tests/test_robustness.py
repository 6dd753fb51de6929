"""Bad inputs (tests/corpus.py) through the Python API, the CLI and the app's handler: no crash, clear errors.

Every case of the corpus runs on each surface it applies to and ends in one of:
- ``valid``: a finite, sane result (probabilities in [0, 1] and ranked, boxes inside the image, IoUs in [0, 1], a
  CAM map in [0, 1], JSON without NaN) and, for image cases, the right picture (the case's fidelity check);
- ``clear_error``: the expected typed error with a one-line message that says what was wrong (the case's regex) and
  what to do (after "; ", the convention of cxrdemo.errors), without traceback text;
- ``crash``: anything else (an untyped exception, the wrong error, a valid result where an error was due or the
  reverse, NaN, a box outside the image, a pickle unpickled...). Each surface's test asserts there is none.
- ``known_hole``: a crash the corpus declares as known on that surface (with the reason); it must still crash, so
  a fix shows up as a failure asking to drop the declaration.
The counts go to ``$CXRDEMO_ROBUSTNESS_REPORT`` (JSON) when set, and are printed (``pytest -s``).
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pytest
import torch

from cxrdemo.cli import main as cli_main
from cxrdemo.errors import CxrDemoError
from cxrdemo.imaging import load_image
from cxrdemo.predict import Predictor
from cxrdemo.models.weights import load_model

from corpus import Case, PickleBomb, build_corpus

REPO = Path(__file__).resolve().parent.parent
KEYS = ["image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"]
MAX_MESSAGE = 600
#: Outcomes of every (surface, case), filled by the surface tests, summarised by test_corpus_summary.
LEDGER: dict[str, list["Outcome"]] = {}


@dataclass
class Outcome:
    """What one case gave on one surface."""

    case: str
    surface: str
    status: str  # "valid", "clear_error", "crash" or "known_hole"
    detail: str
    seconds: float
    cam_box: bool = False  # valid results: the CAM gave a box (so the inside-the-image check had work to do)
    ious: int = 0  # valid results: IoU rows checked


# ================================================================================================ fixtures
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Two shared cores: one intra-op thread is several times faster than two under contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> list[Case]:
    cases = build_corpus(tmp_path_factory.mktemp("corpus"), model_dir)
    assert len(cases) >= 30
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    return cases


@pytest.fixture(scope="module")
def app_predict(tmp_path_factory: pytest.TempPathFactory):
    """The app's documented ``predict`` handler (as Gradio calls it), from a Blocks built on a fresh resource set."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import app as app_module
    from cxrdemo.webapp.resources import make_resources

    tmp = tmp_path_factory.mktemp("app")
    (tmp / "no-examples").mkdir()
    resources = make_resources(REPO, examples_folder=tmp / "no-examples", export_root=tmp / "exports")
    demo = app_module.build_app(resources)
    fns = [f for f in demo.fns.values() if getattr(f, "api_name", None) == "predict"]
    assert len(fns) == 1, "the app must expose exactly one api_name='predict' endpoint"
    return fns[0].fn


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a case, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ================================================================================================ checks
def message_problems(message: str, case: Case, surface: str) -> list[str]:
    """Why ``message`` is not a clear one-line error for ``case`` (empty when it is)."""
    expect = case.expectation(surface)
    problems = []
    if not message.strip():
        problems.append("empty message")
    if "\n" in message.strip() or "\r" in message:
        problems.append("message spans several lines")
    if "Traceback" in message or 'File "' in message:
        problems.append("traceback text in the message")
    if message.lower().startswith("unexpected") or "this is a bug" in message:
        problems.append("reported as an unexpected failure (a bug), not a typed error")
    if len(message) > MAX_MESSAGE:
        problems.append(f"message is {len(message)} characters long")
    if "; " not in message:
        problems.append("message does not say what to do (no '; <advice>')")
    if expect.match and not re.search(expect.match, message, re.IGNORECASE | re.DOTALL):
        problems.append(f"message does not match {expect.match!r}")
    return problems


def _inside(xyxy: list[float], width: int, height: int, tol: float = 0.06) -> bool:
    x1, y1, x2, y2 = xyxy
    return all(math.isfinite(v) for v in xyxy) and -tol <= x1 <= x2 <= width + tol and -tol <= y1 <= y2 <= height + tol


def json_problems(doc: Any, width: int, height: int, n_classes: int, case: Case) -> list[str]:
    """Why a prediction JSON (CLI / API schema) is not sane for a ``width`` x ``height`` image."""
    problems = []
    if not isinstance(doc, dict) or list(doc) != KEYS:
        return [f"JSON keys {list(doc) if isinstance(doc, dict) else type(doc)} != {KEYS}"]
    try:
        json.dumps(doc, allow_nan=False)
    except ValueError:
        problems.append("JSON holds NaN or infinity")
    probs = [p["probability"] for p in doc["probabilities"]]
    if len(probs) != n_classes:
        problems.append(f"{len(probs)} probabilities for {n_classes} classes")
    if not all(isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        problems.append(f"probability outside [0, 1] or not finite: {probs}")
    elif probs != sorted(probs, reverse=True):
        problems.append("probabilities are not ranked")
    for box in doc["boxes"]:
        if not _inside(box["xyxy"], width, height):
            problems.append(f"model box {box['xyxy']} outside the {width}x{height} image")
        if not (math.isfinite(box["score"]) and 0.0 <= box["score"] <= 1.0):
            problems.append(f"box score {box['score']} outside [0, 1]")
    cam = doc["cam"]
    if cam is None:
        problems.append("no CAM in the result")
    elif cam["box"] is not None and not _inside(cam["box"], width, height):
        problems.append(f"CAM box {cam['box']} outside the {width}x{height} image")
    for box in doc["ground_truth"]:
        if not _inside(box["xyxy"], width, height) or box["xyxy"][0] >= box["xyxy"][2] or box["xyxy"][1] >= box["xyxy"][3]:
            problems.append(f"ground-truth box {box['xyxy']} is empty or outside the {width}x{height} image")
    for row in doc["iou"]:
        for key in ("box_iou", "cam_iou"):
            value = row[key]
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                problems.append(f"{key} {value} outside [0, 1]")
    if case.truth is not None:
        labels = sorted(b[4] for b in case.truth)
        if sorted(b["label"] for b in doc["ground_truth"]) != labels or len(doc["iou"]) != len(labels):
            problems.append(f"ground truth {doc['ground_truth']} does not hold the given boxes {labels}")
    return problems


def analysis_problems(analysis: Any, width: int, height: int, n_classes: int, case: Case) -> list[str]:
    """:func:`json_problems` plus the checks only the Python objects allow (the CAM map itself)."""
    problems = json_problems(analysis.to_json(), width, height, n_classes, case)
    if (analysis.width, analysis.height) != (width, height):
        problems.append(f"analysis says {analysis.width}x{analysis.height}, the image is {width}x{height}")
    heat = analysis.cam.heatmap if analysis.cam is not None else None
    if heat is None or heat.ndim != 2 or not np.isfinite(heat).all() or heat.min() < 0.0 or heat.max() > 1.0:
        problems.append("CAM map missing, not finite or outside [0, 1]")
    return problems


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def judge_error(case: Case, surface: str, message: str, error: type[BaseException] | None) -> tuple[str, str]:
    """``(status, detail)`` of a case that ended in an error with ``message`` (``error``: its type, when known)."""
    expect = case.expectation(surface)
    if expect.valid:
        return "crash", f"expected a valid result, got: {message}"
    if error is not None and not issubclass(error, expect.error):
        return "crash", f"expected {expect.error.__name__}, got {error.__name__}: {message}"
    problems = message_problems(message, case, surface)
    if problems:
        return "crash", f"{'; '.join(problems)}: {message!r}"
    return "clear_error", message


def finish(case: Case, surface: str, status: str, detail: str, start: float, doc: Mapping[str, Any] | None = None) -> Outcome:
    """Apply the case's marker check and known holes, then record the outcome (``doc``: a valid result's JSON)."""
    if case.marker is not None and case.marker.exists():
        status, detail = "crash", f"a pickle was unpickled (its payload created {case.marker.name}); {detail}"
        case.marker.unlink()
    if surface in case.known_holes:
        if status == "crash":
            status, detail = "known_hole", f"{case.known_holes[surface]} ({detail})"
        else:
            status, detail = "crash", f"declared known hole no longer fails ({status}); drop it from the corpus: {detail}"
    outcome = Outcome(case.name, surface, status, detail, round(time.perf_counter() - start, 3))
    if doc is not None and status == "valid":
        outcome.cam_box = bool(doc.get("cam") and doc["cam"].get("box"))
        outcome.ious = len(doc.get("iou") or [])
    LEDGER.setdefault(surface, []).append(outcome)
    return outcome


def assert_no_crash(outcomes: list[Outcome], surface: str) -> None:
    crashes = [o for o in outcomes if o.status == "crash"]
    counts = {k: sum(o.status == k for o in outcomes) for k in ("valid", "clear_error", "known_hole", "crash")}
    print(f"\n[{surface}] {len(outcomes)} cases: {counts}")
    assert not crashes, f"{len(crashes)} crash(es) on the {surface}:\n" + "\n".join(f"- {o.case}: {o.detail}" for o in crashes)


# ================================================================================================ surfaces
def _n_classes(model_dir: Path) -> int:
    """Classes of the good model (every case expected to be valid runs on it)."""
    from cxrdemo.models.config import ModelConfig

    return len(ModelConfig.load(model_dir).classes)


def run_api(case: Case, predictor: Predictor) -> Outcome:
    """``load_model`` (when the case gives weights), ``load_image``, ``Predictor.analyse``."""
    start = time.perf_counter()
    expect = case.expectation("api")
    with environment(case.env):
        try:
            pred = predictor if case.weights is None else Predictor(load_model(case.weights, device="cpu", sha256=case.sha256))
            radiograph = load_image(case.image)
            analysis = pred.analyse(radiograph, truth_boxes=case.truth)
        except CxrDemoError as exc:
            return finish(case, "api", *judge_error(case, "api", str(exc), type(exc)), start)
        except Exception as exc:  # noqa: BLE001 - the point: anything untyped is a crash
            return finish(case, "api", "crash", f"uncaught {exc.__class__.__name__}: {exc}", start)
    if not expect.valid:
        return finish(case, "api", "crash", f"expected {expect}, got a valid result", start)
    problems = analysis_problems(analysis, radiograph.width, radiograph.height, len(pred.config.classes), case)
    if case.check is not None:
        try:
            case.check(radiograph)
        except AssertionError as exc:
            problems.append(f"wrong picture: {exc}")
    if problems:
        return finish(case, "api", "crash", "; ".join(problems), start)
    return finish(case, "api", "valid", f"{radiograph.width}x{radiograph.height}", start, analysis.to_json())


def run_cli(case: Case, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``python -m cxrdemo predict IMAGE --weights SRC`` in process: exit code, stdout JSON, one stderr line
    (``error:`` on failure; only ``note:`` lines on success)."""
    start = time.perf_counter()
    expect = case.expectation("cli")
    args = ["predict", str(case.image), "--weights", case.weights or str(model_dir), "--device", "cpu", "--json", "-"]
    if case.sha256:
        args += ["--sha256", case.sha256]
    capsys.readouterr()
    with environment(case.env):
        try:
            code = cli_main(args)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        except BaseException as exc:  # noqa: BLE001
            capsys.readouterr()
            return finish(case, "cli", "crash", f"main() raised {exc.__class__.__name__}: {exc}", start)
    out, err = capsys.readouterr()
    if expect.valid:
        # Remarks (multi-frame file shown as frame 1, ...) are "note:" lines on stderr; anything else is a failure.
        if code != 0 or any(not line.startswith("note: ") for line in err.strip().splitlines()):
            return finish(case, "cli", "crash", f"exit {code}, stderr {err.strip()!r}", start)
        lines = out.strip().splitlines()
        if len(lines) != 1:
            return finish(case, "cli", "crash", f"{len(lines)} stdout lines, expected one JSON line", start)
        try:
            doc = _strict_json(lines[0])
        except ValueError as exc:
            return finish(case, "cli", "crash", f"stdout is not strict JSON ({exc})", start)
        radiograph = load_image(case.image)
        problems = json_problems(doc, radiograph.width, radiograph.height, _n_classes(model_dir), case)
        return finish(case, "cli", "crash" if problems else "valid", "; ".join(problems) or "exit 0", start, doc)
    lines = err.strip().splitlines()
    if code != 1 or out.strip() or len(lines) != 1 or not lines[0].startswith("error: "):
        return finish(case, "cli", "crash", f"exit {code}, stdout {out.strip()[:80]!r}, stderr {err.strip()!r}", start)
    return finish(case, "cli", *judge_error(case, "cli", lines[0][len("error: "):], None), start)


def run_app(case: Case, model_dir: Path, app_predict: Any) -> Outcome:
    """The app's ``predict`` handler: a valid JSON and four panels, or a ``gr.Error`` with the one-line message."""
    import gradio as gr
    from PIL import Image

    start = time.perf_counter()
    expect = case.expectation("app")
    source = case.weights or str(model_dir)
    with environment(case.env):
        try:
            result = app_predict(str(case.image), source, "cpu", "gradcam", "top-1", 127, case.truth_text())
        except gr.Error as exc:
            message = str(getattr(exc, "message", exc))
            if getattr(exc, "title", "") == "Unexpected error":
                return finish(case, "app", "crash", f"handler failed unexpectedly: {message}", start)
            return finish(case, "app", *judge_error(case, "app", message, None), start)
        except Exception as exc:  # noqa: BLE001 - a handler must raise nothing but gr.Error
            return finish(case, "app", "crash", f"handler raised {exc.__class__.__name__} (not gr.Error): {exc}", start)
    if not expect.valid:
        return finish(case, "app", "crash", f"expected {expect}, got a valid result", start)
    doc, *panels = result
    radiograph = load_image(case.image)
    problems = json_problems(doc, radiograph.width, radiograph.height, _n_classes(model_dir), case)
    sizes = []
    for p in panels:  # the handler returns PNG file paths (Gradio copies them into its cache)
        try:
            with Image.open(p) as img:
                img.verify()
                sizes.append(img.size)
        except Exception:  # noqa: BLE001 - anything unreadable is a problem
            sizes.append(None)
    if len(panels) != 4 or not all(s and s[0] > 0 and s[1] > 0 for s in sizes):
        problems.append(f"expected four readable panel PNG files, got {panels}")
    return finish(case, "app", "crash" if problems else "valid", "; ".join(problems) or "4 panels", start, doc)


# ================================================================================================ tests
def test_corpus_api(corpus: list[Case], predictor: Predictor) -> None:
    outcomes = [run_api(c, predictor) for c in corpus if "api" in c.surfaces]
    assert_no_crash(outcomes, "api")


def test_corpus_cli(corpus: list[Case], model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The good model is loaded once and reused (as a long CLI run over many images would); every weights case
    # still goes through the real loader.
    good: dict[str, Predictor] = {}
    real = Predictor.from_source

    def from_source(source: str | None = None, *, device: str | None = None, sha256: str | None = None) -> Predictor:
        if source == str(model_dir) and sha256 is None:
            if "p" not in good:
                good["p"] = real(source, device=device)
            return good["p"]
        return real(source, device=device, sha256=sha256)

    monkeypatch.setattr(Predictor, "from_source", staticmethod(from_source))
    outcomes = [run_cli(c, model_dir, capsys) for c in corpus if "cli" in c.surfaces]
    with capsys.disabled():
        assert_no_crash(outcomes, "cli")


def test_corpus_app(corpus: list[Case], model_dir: Path, app_predict: Any) -> None:
    outcomes = [run_app(c, model_dir, app_predict) for c in corpus if "app" in c.surfaces]
    assert_no_crash(outcomes, "app")


def test_corpus_summary(corpus: list[Case]) -> None:
    """Counts over every surface, written to ``$CXRDEMO_ROBUSTNESS_REPORT`` when set (runs after the three above)."""
    missing = [s for s in ("api", "cli", "app") if s not in LEDGER]
    if missing:
        pytest.skip(f"surfaces {missing} did not run in this session (run the whole module for the summary)")
    rows = [o for s in ("api", "cli", "app") for o in LEDGER[s]]
    count = lambda items, status: sum(o.status == status for o in items)  # noqa: E731
    summary = {
        "cases": len(corpus),
        "by_kind": {k: sum(c.kind == k for c in corpus) for k in ("image", "weights", "truth")},
        "tried": len(rows),
        "valid_results": count(rows, "valid"),
        "clear_errors": count(rows, "clear_error"),
        "known_holes": count(rows, "known_hole"),
        "crashes": count(rows, "crash"),
        "valid_with_cam_box": sum(o.cam_box for o in rows),
        "iou_rows_checked": sum(o.ious for o in rows),
        "surfaces": {
            s: {
                "tried": len(LEDGER[s]),
                "valid_results": count(LEDGER[s], "valid"),
                "clear_errors": count(LEDGER[s], "clear_error"),
                "known_holes": count(LEDGER[s], "known_hole"),
                "crashes": count(LEDGER[s], "crash"),
                "seconds": round(sum(o.seconds for o in LEDGER[s]), 1),
            }
            for s in ("api", "cli", "app")
        },
        "known_hole_details": [asdict(o) for o in rows if o.status == "known_hole"],
    }
    print("\n" + json.dumps({k: v for k, v in summary.items() if k != "known_hole_details"}))
    target = os.environ.get("CXRDEMO_ROBUSTNESS_REPORT")
    if target:
        Path(target).write_text(json.dumps(summary | {"outcomes": [asdict(o) for o in rows]}, indent=2) + "\n", encoding="utf-8")
    assert summary["crashes"] == 0
    assert summary["tried"] == summary["valid_results"] + summary["clear_errors"] + summary["known_holes"]


def test_pickle_payload_would_fire(tmp_path: Path) -> None:
    """The corpus' pickle payload really runs code when unpickled: its absence after the weights cases means
    that no pickle was ever loaded (not that the payload was a dud)."""
    import pickle

    marker = tmp_path / "fired"
    pickle.loads(pickle.dumps(PickleBomb(marker)))
    assert marker.exists()


def test_bombs_are_refused_before_decoding(corpus: list[Case]) -> None:
    """A 20000x20000 header in a tiny file is refused from the header: fast, the size-limit message (a decoder run
    on the ~100 bytes of data would report a truncated file instead), and no large allocation."""
    by_name = {c.name: c for c in corpus}
    for name in ("png_header_bomb_20000", "jpeg_header_bomb_20000", "dicom_header_bomb_20000"):
        case = by_name[name]
        assert case.image.stat().st_size < 200_000
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(CxrDemoError, match=r"limit is \d+ MP") as info:
            load_image(case.image)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert "truncated" not in str(info.value)
        assert seconds < 1.0, f"{name}: {seconds:.2f} s to refuse"
        assert peak < 20 * 2**20, f"{name}: {peak / 2**20:.0f} MB allocated while refusing"


def test_multiframe_dicom_decodes_one_frame(corpus: list[Case]) -> None:
    """160 compressed 2048x2048 frames (640 MB decoded) in ~8 MB: only frame 1 may be decoded."""
    case = next(c for c in corpus if c.name == "dicom_multiframe_jpeg_bomb")
    tracemalloc.start()
    radiograph = load_image(case.image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert radiograph.size == (2048, 2048) and "frame 1 of 160" in radiograph.metadata["note"]
    # One 4 MP frame costs ~180 MB at peak (float64 windowing); decoding all frames would add >= 640 MB.
    assert peak < 400 * 2**20, f"{peak / 2**20:.0f} MB allocated: more than one frame was decoded"


def _hook_count(model: torch.nn.Module) -> int:
    total = 0
    for m in model.modules():
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, name, {}) or {})
    from torch.nn.modules import module as mod

    for name in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks"):
        total += len(getattr(mod, name, {}) or {})
    return total


def test_memory_and_hooks_return_to_level(corpus: list[Case], predictor: Predictor) -> None:
    """Three passes of every image case (API) leave resident memory near its level and no hook behind."""
    import psutil

    process = psutil.Process()
    images = [c for c in corpus if c.kind == "image" and "api" in c.surfaces]
    good = next(c for c in corpus if c.name == "png_16bit")

    def one_pass() -> None:
        for case in images:
            try:
                predictor.analyse(load_image(case.image))
            except CxrDemoError:
                pass

    for _ in range(5):  # warm-up: allocator pools, lazy imports, the CAM library
        predictor.analyse(load_image(good.image))
    one_pass()
    gc.collect()
    rss_before, hooks_before = process.memory_info().rss, _hook_count(predictor.model)
    for _ in range(3):
        one_pass()
    gc.collect()
    rss_after, hooks_after = process.memory_info().rss, _hook_count(predictor.model)
    growth = (rss_after - rss_before) / 2**20
    print(f"\nRSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB ({growth:+.1f} MB) over 3 x {len(images)} bad inputs; hooks {hooks_before} -> {hooks_after}")
    assert hooks_after == hooks_before
    assert growth < 60, f"resident memory grew by {growth:.0f} MB over 3 passes of the bad inputs"


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "cxrdemo", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_subprocess_bad_images(corpus: list[Case], model_dir: Path) -> None:
    """A real process: three bad files and a good one give exit 1, one JSON line, one ``error:`` line per bad file.

    (One process only: starting one costs ~10 s of imports on this CPU; the in-process runs cover the rest.)"""
    by_name = {c.name: c for c in corpus}
    bad = [by_name[n].image for n in ("png_bad_crc_idat", "jpeg_garbage_after_header", "dicom_jpegls_no_decoder")]
    good = by_name["dicom_monochrome1"].image
    proc = _cli("predict", *map(str, bad), str(good), "--weights", str(model_dir), "--device", "cpu")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), proc.stderr
    # each line names its file once (the path is never repeated: "error: X: X does not exist" was a complaint)
    assert all(line.count(p.name) == 1 for line, p in zip(lines, bad)), lines
    docs = [_strict_json(line) for line in proc.stdout.strip().splitlines()]
    assert len(docs) == 1 and docs[0]["image"] == good.name


def _jpeg_variants(film: np.ndarray) -> dict[str, bytes]:
    """Valid JPEGs as encoders write them: baseline, progressive, optimised, CMYK, EXIF, restart markers (OpenCV),
    an EXIF thumbnail, two pictures back to back (MPO-like) and zero padding after EOI."""
    import io

    import cv2
    from PIL import Image

    gray = Image.fromarray(film)
    out: dict[str, bytes] = {}
    exif = Image.Exif()
    exif[0x010F] = "cxrdemo corpus"
    options = {"base": {}, "progressive": {"progressive": True}, "optimize": {"optimize": True, "quality": 95},
               "q5": {"quality": 5}, "exif": {"exif": exif.tobytes()}, "no_subsampling": {"subsampling": 0}}  # fmt: skip
    for name, kwargs in options.items():
        for mode in ("L", "RGB", "CMYK"):
            buf = io.BytesIO()
            gray.convert(mode).save(buf, format="JPEG", **kwargs)
            out[f"pil-{name}-{mode}"] = buf.getvalue()
    for interval in (1, 3, 50):
        for progressive in (0, 1):
            ok, enc = cv2.imencode(".jpg", film, [cv2.IMWRITE_JPEG_RST_INTERVAL, interval, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
            assert ok
            out[f"cv2-rst{interval}-p{progressive}"] = enc.tobytes()
    base = out["pil-base-L"]
    buf = io.BytesIO()
    gray.resize((64, 64)).save(buf, format="JPEG")
    app1 = b"Exif\x00\x00" + bytes(10) + buf.getvalue()
    out["exif-thumbnail"] = base[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + base[2:]
    out["two-pictures"] = base + base
    out["padding-after-eoi"] = base + bytes(200)
    return out


def test_jpeg_marker_check_accepts_valid_encodings() -> None:
    """The marker check that refuses garbage must not refuse any JPEG an encoder writes (and each decodes)."""
    from corpus import synthetic_film

    film = synthetic_film()
    for name, data in _jpeg_variants(film).items():
        radiograph = load_image(data, name=f"{name}.jpg")
        assert radiograph.size == (256, 256), name
        assert np.corrcoef(radiograph.pixels.ravel().astype(float), film.ravel().astype(float))[0, 1] > 0.9, name


def test_jpeg_marker_check_catches_random_garbage() -> None:
    """Garbage after the headers is refused nearly always (libjpeg would decode it to noise without a word)."""
    from corpus import _jpeg_garbage_after_header, synthetic_film

    from cxrdemo.errors import ImageError
    from cxrdemo.imaging import _check_jpeg_markers

    jpeg = _jpeg_variants(synthetic_film())["pil-base-L"]
    caught = 0
    for seed in range(200):
        try:
            _check_jpeg_markers(_jpeg_garbage_after_header(jpeg, seed), "garbage.jpg")
        except ImageError:
            caught += 1
    assert caught >= 190, f"only {caught} of 200 garbage payloads refused"
