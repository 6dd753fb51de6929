"""Where an audit run is: named stages with counts and an estimate of the time left (no torch).

The engine calls ``progress(done, total, stage)`` (:data:`cxrdemo.audit.engine.Progress`) with the stages of
:data:`STAGES`: ``loading``; per image ``images`` (forward pass and CAMs), ``road`` and ``sanity`` (these three
interleave batch by batch); then ``statistics`` and ``writing``. A call with ``done == 0`` announces a stage's
total (the plan); a call with ``done > 0`` says that many units are finished.

:class:`ProgressTracker` turns those calls into one line for the page (``ROAD: 3 of 8 images · about 2 min left``)
and a fraction for the progress bar. The time left is measured, never guessed: the seconds between two calls are
charged to the stage of the later call (the engine calls right after each unit of work), each per-image stage's
rate is its seconds over its units done, and the time left is the sum over the per-image stages of units left
times that rate. While a stage with work left has no unit done yet, its rate is unknown and the line says so
instead of showing a number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

#: Stage key -> what the page calls it.
STAGES: dict[str, str] = {
    "loading": "loading the model and the data set",
    "images": "forward pass and CAMs",
    "road": "ROAD (faithfulness)",
    "sanity": "sanity (randomization)",
    "statistics": "statistics (bootstrap CIs, references, verdicts)",
    "writing": "writing the report, plots and gallery",
}
#: The stages counted in images (they have a rate and a time left).
PER_IMAGE = ("images", "road", "sanity")


@dataclass
class StageCount:
    """One stage: units done of ``total`` and the seconds charged to it."""

    done: int = 0
    total: int = 0
    seconds: float = 0.0


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1 h 05 min`` (rounded up to what a reader needs)."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{max(1, round(s))} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{int(s // 3600)} h {round((s % 3600) / 60):02d} min"


@dataclass
class ProgressTracker:
    """The stages of one run (see the module doc); ``clock`` is injectable for tests."""

    clock: Callable[[], float] = time.monotonic
    stages: dict[str, StageCount] = field(default_factory=dict)
    current: str = "loading"
    _last: float | None = None

    def update(self, done: int, total: int, stage: str) -> str:
        """Record one engine call; returns the line for the page."""
        now = self.clock()
        elapsed = 0.0 if self._last is None else now - self._last
        self._last = now
        count = self.stages.setdefault(stage, StageCount())
        count.total = max(int(total), 0)
        if done > 0 or stage not in PER_IMAGE:
            count.done = int(done)
            count.seconds += elapsed
            self.current = stage
        else:  # a plan: the time since the last call belongs to the stage that was running
            self.stages.setdefault(self.current, StageCount()).seconds += elapsed
        return self.line()

    def seconds_left(self) -> float | None:
        """Measured time left of the per-image stages (``None``: a stage with work left has no unit done yet)."""
        left = 0.0
        for key in PER_IMAGE:
            c = self.stages.get(key)
            if c is None or c.done >= c.total:
                continue
            if c.done == 0:
                return None
            left += (c.total - c.done) * c.seconds / c.done
        return left

    def fraction(self) -> float:
        """The share of the run done, for a progress bar: time spent over time spent plus time left once the time
        left is known, else the share of the forward-pass images done (kept below 1 until the writing ends)."""
        spent = sum(c.seconds for c in self.stages.values())
        left = self.seconds_left()
        if self.current in ("statistics", "writing"):
            return 0.95 if self.current == "statistics" else 0.98
        if left is not None and spent + left > 0:
            return min(0.95, spent / (spent + left))
        images = self.stages.get("images")
        return 0.0 if images is None or not images.total else min(0.95, 0.9 * images.done / images.total)

    def line(self) -> str:
        """``ROAD: 3 of 8 images · forward pass and CAMs 8 of 8 · about 2 min left``."""
        name = STAGES.get(self.current, self.current)
        c = self.stages.get(self.current)
        if self.current not in PER_IMAGE or c is None:
            return f"{name[0].upper()}{name[1:]}."
        parts = [f"{name[0].upper()}{name[1:]}: {c.done} of {c.total} images"]
        for key in PER_IMAGE:
            other = self.stages.get(key)
            if key != self.current and other is not None and other.total:
                parts.append(f"{STAGES[key].split(' (')[0]} {other.done} of {other.total}")
        left = self.seconds_left()
        parts.append("time left: measured after the first image of each stage" if left is None else f"about {format_seconds(left)} left")
        return " \u00b7 ".join(parts)
