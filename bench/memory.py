"""Resident memory over many sequential predictions with Grad-CAM on one model (issue 5: growth < 50 MB).

    python bench/memory.py [--weights SRC] [--images DIR] [--n 300] [--warmup 20] [--cam gradcam] [--render]
                           [--device cpu] [--threads 1] [--out bench/memory.json] [--max-growth-mb 50]

Each prediction is what the CLI and the app do per image: decode a real radiograph from the shared NIH folder
(``$CXRDEMO_DATA/images``, default ``../shared/data/nih/images``; the images are cycled in name order), the forward
pass, the CAM and the comparison with NIH's boxes (``Predictor.analyse``); ``--render`` adds the four panels.
Resident memory (psutil RSS) is read after ``--warmup`` predictions and after the last one, each after
``gc.collect()``; it is also sampled every 10 predictions (``rss_max_mb``). Hooks registered on the model (and
PyTorch's global module hooks) are counted before and after. The result is written to ``--out`` and printed:
``{n, warmup, rss_start_mb, rss_end_mb, growth_mb, hooks_before, hooks_after, date, command, ...}``.
Exit status 1 when the growth reaches ``--max-growth-mb`` or hooks grew, so the script can gate CI.

Weights: ``--weights`` (a folder or Hub id), else the embedded ``weights/`` folder when it holds a model, else (only
with ``--random ARCH``) a randomly initialised model of that backbone, its batch-norm statistics set from random
batches so that features vary with the image; the JSON says so (memory use depends on the architecture, not on
training, but such a model predicts nothing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def hook_count(model) -> int:
    """Forward/backward hooks on ``model``'s modules plus PyTorch's global module hooks."""
    from torch.nn.modules import module as torch_module

    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    total = sum(len(getattr(m, name, {}) or {}) for m in model.modules() for name in names)
    total += sum(len(getattr(torch_module, f"_global{name}", {}) or {}) for name in names)
    return total


def rss_mb() -> float:
    """This process's resident set size in MB, after a garbage collection."""
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def default_images() -> Path:
    data = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
    return data / "images"


def random_model(folder: Path, architecture: str, input_size: int) -> str:
    """Save a random ``architecture`` model whose batch-norm statistics come from random batches (see module doc)."""
    import torch

    from cxrdemo.models.config import ModelConfig
    from cxrdemo.models.cln import build_model
    from cxrdemo.models.weights import save_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=architecture, input_size=input_size))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, input_size, input_size) * 4 - 2)
    save_model(model.eval(), folder, card="Random weights for a memory benchmark: they predict nothing.\n")
    return str(folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="model folder or Hub id (default: weights/ when it holds a model)")
    p.add_argument("--random", default=None, metavar="ARCH", help="without weights: a random model of this backbone")
    p.add_argument("--input-size", type=int, default=224, help="input size of the --random model (default 224)")
    p.add_argument("--images", type=Path, default=None, help="folder of radiographs (default: $CXRDEMO_DATA/images)")
    p.add_argument("--n", type=int, default=300, help="measured predictions after the warm-up (default 300)")
    p.add_argument("--warmup", type=int, default=20, help="predictions before the first reading (default 20)")
    p.add_argument("--cam", default="gradcam", help="CAM method (default gradcam)")
    p.add_argument("--render", action="store_true", help="also render the four panels per prediction")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "memory.json", help="result file")
    p.add_argument("--max-growth-mb", type=float, default=50.0, help="exit 1 at or above this growth (default 50)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from cxrdemo.errors import CxrDemoError
    from cxrdemo.imaging import load_image
    from cxrdemo.predict import Predictor
    from cxrdemo.models.weights import EMBEDDED_DIR, WEIGHTS_NAME

    if args.threads:
        torch.set_num_threads(args.threads)
    weights, random_weights = args.weights, False
    if weights is None and (EMBEDDED_DIR / WEIGHTS_NAME).is_file():
        weights = str(EMBEDDED_DIR)
    elif weights is None and args.random:
        import tempfile

        weights = random_model(Path(tempfile.mkdtemp(prefix="cxrdemo-memory-")), args.random, args.input_size)
        random_weights = True
    elif weights is None:
        print(f"error: no model in {EMBEDDED_DIR}; pass --weights FOLDER (or --random ARCH)", file=sys.stderr)
        return 2
    folder = args.images or default_images()
    images = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
    if not images:
        print(f"error: no PNG radiographs in {folder}; set CXRDEMO_DATA or pass --images DIR", file=sys.stderr)
        return 2
    try:
        predictor = Predictor.from_source(weights, device=args.device)
    except CxrDemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if random_weights:  # the model is in memory; its temporary folder is not needed any more
            import shutil

            shutil.rmtree(weights, ignore_errors=True)
    render = None
    if args.render:
        from cxrdemo.render import render_panels as render

    def predict(i: int) -> None:
        radiograph = load_image(images[i % len(images)])
        analysis = predictor.analyse(radiograph, cam_method=args.cam)
        if render is not None:
            render(radiograph, analysis)

    hooks_before = hook_count(predictor.model)
    rss_load = rss_mb()
    for i in range(args.warmup):
        predict(i)
    rss_start = rss_mb()
    start = time.perf_counter()
    samples = [rss_start]
    for i in range(args.warmup, args.warmup + args.n):
        predict(i)
        if (i - args.warmup + 1) % 10 == 0:
            samples.append(rss_mb())
    seconds = time.perf_counter() - start
    rss_end = rss_mb()
    hooks_after = hook_count(predictor.model)
    cfg = predictor.config
    result = {
        "n": args.n,
        "warmup": args.warmup,
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "growth_mb": round(rss_end - rss_start, 1),
        "rss_max_mb": round(max(samples), 1),
        "rss_after_load_mb": round(rss_load, 1),
        "hooks_before": hooks_before,
        "hooks_after": hooks_after,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + shlex.join(sys.argv),
        "weights": predictor.model_info | {"random": random_weights},
        "architecture": cfg.architecture,
        "input_size": cfg.input_size,
        "cam": args.cam,
        "render": bool(args.render),
        "images": {"folder": str(folder), "distinct": len(images)},
        "device": str(predictor.device),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "ms_per_prediction": round(1000.0 * seconds / max(args.n, 1), 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    ok = result["growth_mb"] < args.max_growth_mb and hooks_after == hooks_before
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
