"""``torchrun --nproc_per_node 2 -m cxrdemo evaluate`` gives the same outputs as one process (CPU, gloo).

The images are sharded by rank in whole batches (batch b on rank b % 2, none twice), rank 0 gathers the per-image
records and writes. Everything is compared: report.json (but timings), predictions.csv, cases.csv, skipped.csv,
gallery.html.

Why the comparison is exact (tolerance 0): both runs pin one thread per process (OMP_NUM_THREADS=1), and sharding
whole batches (:func:`cxrdemo.audit.engine.shard_batches`) puts every image in a batch of the same members in both
runs, so every image goes through the same kernels and the same float32 operations in the same order; the cascade
runs per image from one seed, ROAD per image from a seed derived from the image's name, the bootstrap from a fixed
seed; rank 0 receives the other rank's records as pickled Python floats (exact). A difference is therefore a real
defect (a batch whose members depend on the process count, a random stream that depends on the shard), never
rounding. (With image-wise sharding, batch membership changed float32 sums by ~1e-6 relative, and Spearman
correlations of near-tied maps by up to 7e-5.)
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_evaluate_audit import TEACHER, _argv, few, json_close, small_model  # noqa: F401 - fixtures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open()))


def _rows_close(a: list[list[str]], b: list[list[str]], tol: float = 0.0) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return False
        for x, y in zip(ra, rb):
            try:
                if abs(float(x) - float(y)) > tol:
                    return False
            except ValueError:
                if x != y:
                    return False
    return True


def test_two_processes_equal_one(few, small_model: Path, tmp_path: Path):
    extra = ("--cam-methods", "gradcam,gradcam++", "--sanity", "--sanity-images", "2", "--faithfulness",
             "--faithfulness-images", "2", "--baseline-predictions", str(TEACHER), "--no-plots")  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "cxrdemo"]
    run1 = subprocess.run([*base, *_argv(few, small_model, one, *extra)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run1.returncode == 0, run1.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cxrdemo"]
    run2 = subprocess.run([*torchrun, *_argv(few, small_model, two, *extra)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert run2.stdout.count("report in") == 1  # rank 0 alone prints (and writes)

    a, b = (json.loads((d / "report.json").read_text()) for d in (one, two))
    assert a["timings"]["processes"] == 1 and b["timings"]["processes"] == 2
    assert b["timings"]["images_computed"] == a["n_images"] == 8  # every image exactly once
    for doc in (a, b):
        doc.pop("timings")
    assert json_close(a, b, tol=0.0)
    assert _rows_close(_rows(one / "predictions.csv"), _rows(two / "predictions.csv"))
    assert _rows_close(_rows(one / "cases.csv"), _rows(two / "cases.csv"))
    assert (one / "skipped.csv").read_text() == (two / "skipped.csv").read_text()
    assert sorted(p.name for p in (one / "gallery").iterdir()) == sorted(p.name for p in (two / "gallery").iterdir())
    # each rank cached its own share; together they hold every image once
    parts = sorted((two / "cache").glob("*/part-*.jsonl"))
    names = [json.loads(line)["name"] for p in parts for line in p.read_text().splitlines()]
    assert len(parts) == 2 and len(names) == len(set(names)) == 8
