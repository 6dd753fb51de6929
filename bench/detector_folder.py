"""A detector folder to time ``python -m cxrdemo bench`` on, without the network. ITS WEIGHTS ARE RANDOM.

    python bench/detector_folder.py OUT_DIR [--min-size 320] [--max-size 640] [--seed 0]

writes a randomly initialised torchvision ``fasterrcnn_mobilenet_v3_large_320_fpn(weights=None,
weights_backbone=None)`` with NIH's 8 box classes (``__background__`` first) into ``OUT_DIR`` as a cxrdemo
torchvision detector folder (docs/models.md): ``config.json`` (builder, classes, min_size, max_size) and
``model.safetensors``, then loads it back with cxrdemo to check it. Nothing is downloaded.

For timings only: a random network costs what the trained one costs per pass, but it predicts nothing, and its
random heads give a different number of candidate boxes than a trained model would (typically the cap of 100 per
film, none scoring above 0.5); ``bench`` reports the median number per film (``detector_boxes``). Never commit the
folder. Research demo, not a diagnostic device.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BUILDER = "fasterrcnn_mobilenet_v3_large_320_fpn"


def write_detector_folder(folder: Path, min_size: int = 320, max_size: int = 640, seed: int = 0) -> Path:
    """Write the random detector (see module doc) into ``folder`` (created) and return it, checked by cxrdemo's
    loader; ``min_size``/``max_size``: torchvision's resize of the film (320/640 are this builder's defaults)."""
    import torch
    from safetensors.torch import save_file

    from cxrdemo.datasets.nih import NIH_BOX_CLASSES
    from cxrdemo.errors import InputError
    from cxrdemo.models.detector_base import MAX_INPUT_SIDE
    from cxrdemo.models.tv_detector import TvDetector, build_detector

    if not 1 <= min_size <= max_size <= MAX_INPUT_SIDE:
        raise InputError(f"--min-size {min_size} --max-size {max_size}: use 1 <= min <= max <= {MAX_INPUT_SIDE}")
    cfg = {"builder": BUILDER, "classes": ["__background__", *NIH_BOX_CLASSES], "min_size": min_size, "max_size": max_size}
    torch.manual_seed(seed)
    net = build_detector(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    TvDetector(folder)  # cxrdemo reads it (one-line error otherwise)
    return folder


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, write the folder, say where it is."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, metavar="OUT_DIR", help="folder to write (outside the repository: never commit it)")
    p.add_argument("--min-size", type=int, default=320, help="torchvision's min_size (default 320)")
    p.add_argument("--max-size", type=int, default=640, help="torchvision's max_size (default 640)")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the random weights (default 0)")
    args = p.parse_args(argv)
    from cxrdemo.errors import CxrDemoError

    try:
        folder = write_detector_folder(args.out, args.min_size, args.max_size, args.seed)
    except CxrDemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {folder} ({BUILDER}, NIH's 8 box classes, RANDOM weights: for timings only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
