"""Server memory after N browser sessions each analysed a 7000x7000 radiograph (issue 19, finding 5: 200 sessions
took a server from 1.45 GB to 10.75 GB).

    python bench/session_memory.py --mode store|keep [--sessions 30] [--side 7000] [--budget-mb 256]
                                   [--out bench/session_memory_<mode>.json]

Each session is what the page's *Analyse* does, without Gradio: ``actions.analyse_case`` (embedded weights, CPU: the
forward pass, the CAM, the comparison, the four panels) on a ``--side`` px radiograph made in memory from a shared
NIH film (enlarged, never written to disk), a different film per session. Then the session's state is kept:

- ``keep``: the :class:`~cxrdemo.webapp.state.Case` itself, as ``gr.State`` held it before (one per session, for
  as long as the session lives);
- ``store``: a :class:`~cxrdemo.webapp.case_store.CaseHandle` from the app's
  :class:`~cxrdemo.webapp.case_store.CaseStore` (``--budget-mb``), as now.

Resident memory (psutil RSS, after ``gc.collect()``) is read once the model is loaded and warmed up on one session
(``rss_start_mb``) and after the last session (``rss_end_mb``); also the store's own byte count and evictions. Written
to ``--out`` and printed, with the load average and the command.
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
IMAGES = REPO.parent / "shared" / "data" / "nih" / "images"


def big_radiograph(path: Path, side: int):
    """The NIH film at ``path`` enlarged to ``side x side`` px, in memory."""
    from PIL import Image

    from cxrdemo.imaging import Radiograph, load_image

    film = load_image(path)
    pixels = Image.fromarray(film.pixels).resize((side, side), Image.Resampling.BILINEAR)
    import numpy as np

    return Radiograph(np.asarray(pixels).copy(), film.name, "png")


def rss_mb() -> float:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("store", "keep"), required=True)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--budget-mb", type=float, default=256)
    parser.add_argument("--weights", default=str(REPO / "weights"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or REPO / "bench" / f"session_memory_{args.mode}.json"

    import torch

    from cxrdemo.webapp import actions
    from cxrdemo.webapp.case_store import CaseStore
    from cxrdemo.webapp.housekeeping import limit_malloc_arenas
    from cxrdemo.webapp.models import ModelCache
    from cxrdemo.webapp.state import Settings

    limit_malloc_arenas(2)  # as the app does at start-up
    films = sorted(IMAGES.glob("*.png"))[: args.sessions + 1]
    cache, settings = ModelCache(capacity=1), Settings(source=args.weights, device="cpu")
    store = CaseStore(budget_bytes=int(args.budget_mb * 2**20))
    actions.analyse_case(cache, big_radiograph(films[0], args.side), settings)  # load and warm up
    start_mb = rss_mb()
    began = time.perf_counter()
    sessions: list[object] = []  # what each session keeps: its Case (keep) or its handle (store)
    for path in films[1:]:
        view = actions.analyse_case(cache, big_radiograph(path, args.side), settings)
        sessions.append(view.case if args.mode == "keep" else store.put(view.case))
        del view
    end_mb = rss_mb()
    result = {
        "mode": args.mode,
        "sessions": len(sessions),
        "side": args.side,
        "budget_mb": args.budget_mb if args.mode == "store" else None,
        "rss_start_mb": round(start_mb, 1),
        "rss_end_mb": round(end_mb, 1),
        "growth_mb": round(end_mb - start_mb, 1),
        "store_mb": round(store.bytes / 2**20, 1),
        "store_cases": len(store),
        "evicted": store.evicted,
        "seconds": round(time.perf_counter() - began, 1),
        "threads": torch.get_num_threads(),
        "load_1min": os.getloadavg()[0],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    print(json.dumps(result, indent=1))
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
