"""``bench``'s cold start: a fresh ``python -m cxrdemo predict IMAGE`` process, from spawn to its JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

#: The checkout (or installed tree) whose ``cxrdemo`` the child imports.
REPO = Path(__file__).resolve().parent.parent.parent


def measure_cold_start(
    image: Path,
    weights: str | None,
    device: str,
    threads: int | None,
    runs: int,
    progress: Callable[[str], None],
    cam: str = "gradcam",
) -> float | None:
    """Median seconds from spawning ``python -m cxrdemo predict IMAGE --cam CAM`` to its JSON answer on stdout
    (``progress``: one line per process, :data:`cxrdemo.bench.pipeline.StageLog`)."""
    from ..errors import CxrDemoError

    if runs <= 0:
        return None
    cmd = [sys.executable, "-m", "cxrdemo", "predict", str(image), "--json", "-", "--device", device, "--cam", cam]
    if weights:
        cmd += ["--weights", str(weights)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's default thread count in the child
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    seconds = []
    for run in range(runs):
        progress(f"cold start: fresh process {run + 1}/{runs}")
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        elapsed = time.perf_counter() - start
        _, err = proc.communicate()
        if proc.returncode != 0 or not line.strip():
            raise CxrDemoError(f"cold start: {' '.join(cmd)} failed (exit {proc.returncode}): {err.strip().splitlines()[-1:] or ''}")
        json.loads(line)  # a real answer
        seconds.append(elapsed)
    return round(float(np.median(seconds)), 3)
