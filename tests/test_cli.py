"""The CLI: JSON schema per image, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from cxrdemo.cli import main

KEYS = ["image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"]


def test_predict_json_schema(model_dir, images_dir, capsys, tmp_path):
    image = images_dir / "00013125_000.png"
    code = main(["predict", str(image), "--weights", str(model_dir), "--json", "-", "--device", "cpu", "--threshold", "180"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out.strip())
    assert list(doc) == KEYS
    assert set(doc["model"]) == {"source", "revision", "architecture"}
    assert all(set(p) == {"label", "probability"} for p in doc["probabilities"])
    assert all(set(b) == {"label", "score", "xyxy"} and len(b["xyxy"]) == 4 for b in doc["boxes"])
    assert set(doc["cam"]) == {"method", "target", "threshold", "box"} and doc["cam"]["threshold"] == 180
    assert doc["ground_truth"][0]["label"] == "Cardiomegaly"
    assert set(doc["iou"][0]) == {"label", "box_iou", "cam_iou"} and 0 <= doc["iou"][0]["box_iou"] <= 1
    out = tmp_path / "out.json"
    assert main(["predict", str(image), str(image), "--weights", str(model_dir), "--json", str(out), "--cam", "none"]) == 0
    docs = json.loads(out.read_text())
    assert len(docs) == 2 and docs[0]["cam"] is None


def test_predict_errors_are_one_line(model_dir, images_dir, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    code = main(["predict", str(bad), str(images_dir / "00013125_000.png"), "--weights", str(model_dir)])
    captured = capsys.readouterr()
    assert code == 1
    assert len(captured.out.strip().splitlines()) == 1  # the good image still printed
    assert captured.err.startswith("error: ") and len(captured.err.strip().splitlines()) == 1
    assert main(["predict", str(bad), "--weights", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights folder") and "Traceback" not in err


def test_cli_subprocess_no_traceback(model_dir, tmp_path):
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "cxrdemo", "predict", str(tmp_path / "missing.png"), "--weights", str(model_dir), "--cam", "bogus"],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: unknown CAM method 'bogus'") and "Traceback" not in proc.stderr
