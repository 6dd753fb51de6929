"""Two batched measurements timed in alternating rounds (the bench's evaluate / bare-forward comparison)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def alternating_rates(
    evaluate: Callable[[], None], bare: Callable[[], None], n: int, rounds: int, sync: Callable[[], None]
) -> tuple[float, float]:
    """Images per second of ``evaluate`` and of ``bare``, each a pass over the same ``n`` images: the median of
    ``rounds`` rounds that alternate between the two (bare first), after one untimed warm-up round; ``sync`` waits
    for the device before and after each pass."""
    times: dict[Callable[[], None], list[float]] = {bare: [], evaluate: []}
    for r in range(rounds + 1):  # round 0 warms up
        for fn in (bare, evaluate):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r:
                times[fn].append(time.perf_counter() - t0)
    return n / float(np.median(times[evaluate])), n / float(np.median(times[bare]))
