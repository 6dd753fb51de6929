"""Time of *Apply ground truth* with a hostile ground-truth text (issue 19, finding 4: 100,000 lines held the model
slot for 604 s).

    python bench/truth_text.py [--lines 100000] [--image PATH] [--weights SRC] [--out bench/truth_text.json]

The page's own code path, without Gradio: one radiograph is analysed (``actions.analyse_case``, embedded weights,
CPU), then the text field is merged with the drawing control (``boxes_text.merge_drawn``) and applied
(``actions.apply_truth``), as the page's *Apply ground truth* handler does. The text holds ``--lines`` valid boxes
(``x1, y1, x2, y2, Nodule``, each inside the 1024 px NIH film, all different). Printed and written to ``--out``:
``{lines, bytes, seconds, outcome, message, date, command, threads}``; ``outcome`` is ``refused`` (one-line error)
or ``applied``. Run it from the checkout to measure (``PYTHONPATH`` picks which checkout's ``cxrdemo`` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "nih" / "images" / "00000468_017.png"


def hostile_text(lines: int) -> str:
    """``lines`` different, valid box lines inside a 1024 px film."""
    out = []
    for i in range(lines):
        x, y = 10 + i % 900, 10 + (i // 900) % 900
        out.append(f"{x}, {y}, {x + 50}, {y + 50}, Nodule")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--weights", default=str(REPO / "weights"))
    parser.add_argument("--out", default=str(REPO / "bench" / "truth_text.json"))
    args = parser.parse_args(argv)

    import torch

    from cxrdemo.errors import CxrDemoError
    from cxrdemo.imaging import load_image
    from cxrdemo.webapp import actions, boxes_text
    from cxrdemo.webapp.models import ModelCache
    from cxrdemo.webapp.state import Settings

    cache = ModelCache(capacity=1)
    case = actions.analyse_case(cache, load_image(args.image), Settings(source=args.weights, device="cpu")).case
    text = hostile_text(args.lines)
    start = time.perf_counter()
    try:
        merged = boxes_text.merge_drawn(text, None, case, ())[0]
        actions.apply_truth(cache, case, merged)
        outcome, message = "applied", ""
    except CxrDemoError as exc:
        outcome, message = "refused", str(exc)
    seconds = time.perf_counter() - start
    result = {
        "lines": args.lines,
        "bytes": len(text.encode()),
        "seconds": round(seconds, 3),
        "outcome": outcome,
        "message": message,
        "cxrdemo": str(Path(sys.modules["cxrdemo"].__file__).parent),
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
