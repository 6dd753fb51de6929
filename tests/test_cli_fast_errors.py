"""``cxrdemo predict`` answers a mistake (a missing path, a bad setting) before it imports torch, with one
``error:`` line and exit code 1. No timing assertion: "torch was never imported" is what makes the answer fast
(the measured before/after is in docs/cli.md), and it holds on any machine under any load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "pytorch_grad_cam", "gradio", "cv2", "timm")


def _main(args: list[str], cwd: Path) -> tuple[int, list[str], list[str]]:
    """Run ``cli.main(args)`` in a fresh interpreter: (exit code, stderr lines, heavy modules it imported)."""
    code = (
        "import sys\n"
        "from cxrdemo.cli import main\n"
        f"rc = main({args!r})\n"
        f"print('HEAVY', ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
        "sys.exit(rc)\n"
    )
    repo = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    heavy = done.stdout.strip().splitlines()[-1].removeprefix("HEAVY").strip()
    return done.returncode, done.stderr.strip().splitlines(), [m for m in heavy.split(",") if m]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["predict", "--weights", "/nonexistent", "x.png"], "weights folder '/nonexistent' does not exist"),
        (["predict", "--weights", "not a source", "x.png"], "is neither a folder nor a Hub id"),
        # a format prefix is read before the path check: the folder after it is the one that must exist
        (["predict", "--weights", "timm:/nonexistent", "x.png"], "weights folder '/nonexistent' does not exist"),
        (["predict", "--weights", "hf:not a source", "x.png"], "'not a source' is neither a folder nor a Hub id"),
        (["predict", "--weights", "xrv:../../etc", "x.png"], "is not a torchxrayvision weight name"),
        (["predict", "--weights", "hf://owner", "x.png"], "is not a Hub id; write hf://owner/name"),
        (["predict", "missing.png"], "missing.png does not exist; check the path"),
        (["predict", "--cam", "gradkam", "x.png"], "unknown CAM method 'gradkam'"),
        (["predict", "--threshold", "300", "x.png"], "outside 1..254"),
        (["predict", "--json", "no/such/folder/out.json", "x.png"], "the folder no/such/folder does not exist"),
        (["predict", "--render", "x.png", "x.png"], "--render x.png is a file"),
    ],
)
def test_mistakes_answer_before_torch(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "x.png").write_bytes(b"not read: every mistake is found before the file is opened")
    rc, errors, heavy = _main(args, tmp_path)
    assert rc == 1 and len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], errors
    assert heavy == []


@pytest.mark.parametrize("source", ["timm:{folder}", "hf-hub:owner/name@v1", "hf:owner/name", "xrv:densenet121-res224-all",
                                    "densenet121-res224-nih", "hf://owner/name@main", "cxrdemo:{folder}"])
def test_well_formed_sources_pass_the_precheck(tmp_path: Path, source: str) -> None:
    """Sources of every format pass the torch-free check (whether they load is decided by loading them): the only
    error left is the missing image, so the source was accepted."""
    (tmp_path / "model").mkdir()
    rc, errors, heavy = _main(["predict", "--weights", source.format(folder=tmp_path / "model"), "missing.png"], tmp_path)
    assert (rc, heavy, errors) == (1, [], ["error: missing.png does not exist; check the path"])


def test_each_missing_image_gets_its_line(tmp_path: Path) -> None:
    """Two missing images: one line each, and no torch (nothing is left to analyse)."""
    rc, errors, heavy = _main(["predict", "a.png", "b.dcm"], tmp_path)
    assert (rc, heavy) == (1, [])
    assert errors == ["error: a.png does not exist; check the path", "error: b.dcm does not exist; check the path"]


def test_a_folder_given_as_image_is_refused_before_torch(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    rc, errors, heavy = _main(["predict", "scans"], tmp_path)
    assert (rc, heavy) == (1, []) and errors == ["error: scans is a folder; give an image file"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["evaluate", "--images", "nowhere", "--labels", "x.png"], "--images nowhere is not a folder"),
        (["train", "--images", "nowhere", "--labels", "labels.csv", "--out", "run"], "--images nowhere is not a folder"),
        (["bench", "--images", "x.png"], "--images x.png is not a folder"),
        (["evaluate", "--images", ".", "--labels", "labels.csv"], "labels.csv does not exist; give an NIH-format label CSV"),
        (["evaluate", "--images=.", "--labels=x.png", "--boxes=b.csv"], "b.csv does not exist; give an NIH-format box CSV"),
        (["evaluate", "--images", ".", "--labels", "x.png", "--baseline-predictions", "p.csv"], "p.csv does not exist; give a predictions CSV"),
        (["evaluate", "--images", ".", "--labels", "x.png", "--compare-weights", "./gone"], "weights folder './gone' does not exist"),
    ],
)
def test_tool_path_mistakes_answer_before_torch(tmp_path: Path, args: list[str], expected: str) -> None:
    """train / evaluate / bench: a path option that names nothing is refused before their modules load."""
    (tmp_path / "x.png").write_bytes(b"an existing file standing in for a CSV: only existence is checked early")
    rc, errors, heavy = _main(args, tmp_path)
    assert rc == 1 and len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], errors
    assert heavy == []


@pytest.mark.parametrize("kind", ["timm", "transformers"])
def test_foreign_folders_without_prefix_pass_the_early_check(tmp_path: Path, kind: str) -> None:
    """Issue 27 C3: a timm or transformers folder given without a prefix is recognised from its files (torch-free)
    and not checked as a cxrdemo config: the only error left is the missing image, and torch was never imported."""
    from model_formats import hf_folder, timm_folder

    folder = timm_folder(tmp_path, "resnet10t", ["A", "B"]) if kind == "timm" else hf_folder(tmp_path, "vit", ["A", "B"], multi=True)
    rc, errors, heavy = _main(["predict", "--weights", str(folder), "missing.png"], tmp_path)
    assert (rc, heavy, errors) == (1, [], ["error: missing.png does not exist; check the path"])


def test_a_text_file_named_png_is_refused_before_torch(tmp_path: Path) -> None:
    """Issue 27 C9: the image's bytes (format, header, size) are checked before torch and the model load."""
    (tmp_path / "notes.png").write_text("This is a text file, not a radiograph.\n" * 20)
    (tmp_path / "tiny.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rc, errors, heavy = _main(["predict", "notes.png", "tiny.png"], tmp_path)
    assert (rc, heavy) == (1, [])
    assert errors[0] == "error: notes.png is not an image cxrdemo can read; give a PNG, JPEG or DICOM radiograph"
    assert errors[1].startswith("error: tiny.png is ") and len(errors) == 2
