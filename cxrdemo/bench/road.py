"""Speed and agreement of the torch ROAD (:func:`cxrdemo.audit.faithfulness.road_scores`) vs pytorch-grad-cam's.

``python -m cxrdemo.bench.road --images DIR --n 6 --methods gradcam eigencam --seeds 3 --out bench/road_speed.json``

For ``n`` radiographs spread over ``DIR``, the model's top-1 class and each method's CAM of it, then, per seed:

- the library (``ROADCombined`` through :func:`~cxrdemo.audit.faithfulness.road_scores_library`), one call per
  image and method, as the audit called it before; timed per call;
- the torch implementation, one call for every image and method at once (how the audit calls it now), timed;

the two interleaved seed by seed so both see the same machine load. Written to ``--out`` (JSON): seconds per image
and method of each (median over seeds; wall and process CPU time, the latter less sensitive to other jobs on a
shared machine), their ratios, the scores per seed, the library's seed-to-seed spread
(standard deviation over seeds, per image and method) and the difference of the two means, and ``os.getloadavg``
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEFAULT_IMAGES = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "data" / "nih" / "images"


def _inputs(weights: str | None, files: Sequence[Path], methods: Sequence[str]) -> tuple[Any, Any, dict[str, np.ndarray], list[int]]:
    """The model, the preprocessed batch, each method's top-1 maps and the top-1 classes."""
    import torch

    from ..explain import cam_heatmaps
    from ..imaging import load_image
    from ..preprocess import to_tensor
    from ..models.weights import load_model

    loaded = load_model(weights, device="cpu")
    x = torch.cat([to_tensor(load_image(f), loaded.config) for f in files])
    with torch.no_grad():
        out = loaded.model(x)
    top1 = [int(i) for i in out.logits.argmax(dim=1)]
    maps = {m: cam_heatmaps(loaded.model, out.features.clone(), top1, m) for m in methods}
    return loaded.model, x, maps, top1


def measure(weights: str | None, files: Sequence[Path], methods: Sequence[str], seeds: int, percentiles: Sequence[int]) -> dict[str, Any]:
    """Both implementations on the same inputs, interleaved seed by seed (see the module doc)."""
    import torch

    from ..audit.faithfulness import logits_fn, road_scores, road_scores_library

    model, x, maps, top1 = _inputs(weights, files, methods)
    fn = logits_fn(model)
    n, rows = len(files), len(files) * len(methods)
    lib = np.zeros((seeds, len(methods), n))
    ours = np.zeros((seeds, len(methods), n))
    lib_s, ours_s, lib_cpu, ours_cpu = [], [], [], []
    x_rows = x.repeat(len(methods), 1, 1, 1)
    map_rows = np.concatenate([maps[m] for m in methods])
    for s in range(seeds):
        t0, c0 = time.perf_counter(), time.process_time()
        for k, m in enumerate(methods):
            for j in range(n):
                lib[s, k, j] = road_scores_library(fn, x[j : j + 1], maps[m][j : j + 1], [top1[j]], percentiles, seed=s)[0]
        lib_s.append((time.perf_counter() - t0) / rows)
        lib_cpu.append((time.process_time() - c0) / rows)
        t0, c0 = time.perf_counter(), time.process_time()
        ours[s] = road_scores(fn, x_rows, map_rows, top1 * len(methods), percentiles, seed=s).reshape(len(methods), n)
        ours_s.append((time.perf_counter() - t0) / rows)
        ours_cpu.append((time.process_time() - c0) / rows)
    spread = lib.std(axis=0, ddof=1) if seeds > 1 else np.full(lib.shape[1:], np.nan)
    diff = ours.mean(axis=0) - lib.mean(axis=0)
    return {
        "images": [f.name for f in files],
        "methods": list(methods),
        "percentiles": list(percentiles),
        "seeds": seeds,
        "torch_threads": torch.get_num_threads(),
        "library_seconds_per_image_and_method": round(float(np.median(lib_s)), 4),
        "torch_seconds_per_image_and_method": round(float(np.median(ours_s)), 4),
        "speedup": round(float(np.median(lib_s) / np.median(ours_s)), 2),
        "library_cpu_seconds_per_image_and_method": round(float(np.median(lib_cpu)), 4),
        "torch_cpu_seconds_per_image_and_method": round(float(np.median(ours_cpu)), 4),
        "cpu_speedup": round(float(np.median(lib_cpu) / np.median(ours_cpu)), 2),
        "library_seconds_per_seed": [round(v, 4) for v in lib_s],
        "torch_seconds_per_seed": [round(v, 4) for v in ours_s],
        "library_scores": lib.round(5).tolist(),
        "torch_scores": ours.round(5).tolist(),
        "library_seed_sd": spread.round(5).tolist(),
        "torch_seed_sd": (ours.std(axis=0, ddof=1) if seeds > 1 else spread).round(5).tolist(),
        "mean_difference": diff.round(5).tolist(),
        "max_abs_mean_difference": round(float(np.abs(diff).max()), 5),
        "median_library_seed_sd": round(float(np.nanmedian(spread)), 5),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure and write the JSON (see the module doc)."""
    from .pipeline import pick_images
    from ..errors import CxrDemoError

    p = argparse.ArgumentParser(prog="python -m cxrdemo.bench.road", description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of radiographs (default: %(default)s)")
    p.add_argument("--n", type=int, default=6, help="images (default: %(default)s)")
    p.add_argument("--methods", nargs="+", default=["gradcam", "eigencam"], help="CAM methods (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="noise seeds per implementation (default: %(default)s)")
    p.add_argument("--percentiles", type=int, nargs="+", default=[20, 40, 60, 80], help="ROAD percentiles (default: %(default)s)")
    p.add_argument("--weights", default=None, help="model folder (default: the embedded default model)")
    p.add_argument("--out", default="bench/road_speed.json", help="result file (default: %(default)s)")
    args = p.parse_args(argv)
    if args.n < 1 or args.seeds < 1:
        p.error("--n and --seeds must be at least 1")
    try:
        files = pick_images(args.images, args.n)
        load_before = os.getloadavg()
        result = measure(args.weights, files, args.methods, args.seeds, args.percentiles)
    except CxrDemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update(load_before=[round(v, 2) for v in load_before], load_after=[round(v, 2) for v in os.getloadavg()],
                  cpus=os.cpu_count(), machine=platform.processor() or platform.machine(), command="python -m cxrdemo.bench.road " + " ".join(sys.argv[1:]))  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("library_seconds_per_image_and_method", "torch_seconds_per_image_and_method", "speedup", "cpu_speedup", "max_abs_mean_difference", "median_library_seed_sd")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
