"""Numbers as the report, the gallery and the page print them: a value, a CI, an estimate with its CI, ``-`` when
undefined, and "too few for a CI" where an interval was withheld (:mod:`cxrdemo.audit.verdict`). Torch-free."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table; ``-`` when undefined."""
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def fmt_ci(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``low - high`` of an estimate's JSON (:meth:`cxrdemo.audit.stats.Estimate.to_json`); ``-`` when undefined."""
    if not estimate or estimate.get("low") is None or estimate.get("high") is None:
        return "-"
    return f"{fmt(estimate['low'], digits)} - {fmt(estimate['high'], digits)}"


def fmt_estimate(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``value [low, high]`` of an estimate's JSON; ``-`` when undefined."""
    if not estimate or estimate.get("value") is None:
        return "-"
    if estimate.get("interval"):  # withheld: too few images (cxrdemo.audit.verdict.MIN_IMAGES)
        return f"{fmt(estimate['value'], digits)} (n = {estimate.get('n')}: too few for a CI)"
    if estimate.get("low") is None or estimate.get("high") is None:
        return fmt(estimate["value"], digits)
    return f"{fmt(estimate['value'], digits)} [{fmt(estimate['low'], digits)}, {fmt(estimate['high'], digits)}]"
