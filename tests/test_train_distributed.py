"""`torchrun --nproc_per_node 2 -m cxrdemo train` on CPU (gloo): a tiny DistributedDataParallel run, then a resume."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_csv

REPO = Path(__file__).resolve().parent.parent
NIH = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
N_IMAGES = 12


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cxrdemo", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    if not (NIH / "images").is_dir() or not (NIH / "labels.csv").is_file():
        pytest.skip(f"shared NIH data not found at {NIH}; set CXRDEMO_DATA")
    tmp = tmp_path_factory.mktemp("ddp")
    rows = list(csv.DictReader((NIH / "labels.csv").open()))
    present = {p.name for p in (NIH / "images").iterdir()}
    boxed = {r[0] for r in csv.reader((NIH / "boxes.csv").open()) if r and r[0] in present}
    keep = [r for r in rows if r["Image Index"] in boxed][:3]  # a few boxed images, so stage 2 has boxes on some ranks
    keep += [r for r in rows if r["Image Index"] in present and r not in keep][: N_IMAGES - len(keep)]
    labels = write_csv(tmp / "labels.csv", keep)
    out = tmp / "run"
    common = [
        "--images", str(NIH / "images"), "--labels", str(labels), "--boxes", str(NIH / "boxes.csv"), "--out", str(out),
        "--backbone", "mobilenet_v3_small", "--pretrained", "none", "--input-size", "32", "--warmup-epochs", "1",
        "--batch-size", "4", "--val-fraction", "0.25", "--device", "cpu",
        "--no-disk-cache", "--no-plots", "--quiet",
    ]  # fmt: skip
    # the first run ends after stage 1 (as if stopped there); the second resumes stage 1 and runs stage 2
    first = _torchrun([*common, "--epochs", "2", "--stage2-epochs", "0"])
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    log_first = (out / "log.jsonl").read_text()
    second = _torchrun([*common, "--epochs", "3", "--stage2-epochs", "1", "--resume"])
    assert second.returncode == 0, second.stderr[-3000:]
    return {"out": out, "first": first, "second": second, "state": state, "log_first": log_first}


def test_rank0_writes_everything_once(run):
    out = run["out"]
    err = run["first"].stderr
    assert err.count("classify epoch 1:") == 1  # only rank 0 prints, validates and logs
    log = [json.loads(line) for line in run["log_first"].splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log] == [("classify", 1), ("classify", 2), ("joint", 0)]
    assert run["state"]["world_size"] == 2
    cfg = json.loads((out / "model" / "config.json").read_text())
    training = cfg["extra"]["training"]
    assert training["processes"] == 2 and training["device"] == "cpu"
    assert training["commands"][0].startswith("torchrun --nproc_per_node 2 -m cxrdemo train ")
    assert training["stage_epochs"] == {"classify": 3, "joint": 1}
    assert not list(out.glob("*.tmp")) and not list((out / "model").glob("*.tmp"))
    card = (out / "model" / "README.md").read_text()
    assert "2 DistributedDataParallel processes" in card


def test_resume_continues_where_it_stopped(run):
    err = run["second"].stderr
    assert err.count("resuming classify at epoch 3") == 1
    log = [json.loads(line) for line in (run["out"] / "log.jsonl").read_text().splitlines()]
    stages = [(r["stage"], r["epoch"]) for r in log]
    assert stages == [("classify", 1), ("classify", 2), ("joint", 0), ("classify", 3), ("joint", 0), ("joint", 1)]
    cfg = json.loads((run["out"] / "model" / "config.json").read_text())
    commands = cfg["extra"]["training"]["commands"]
    assert len(commands) == 2 and commands[1].endswith("--resume")
