"""What ``python -m cxrdemo bench`` prints: the table of a result and one line per target met or missed.

The targets are the issues' (:data:`TARGETS`); :func:`check_targets` puts them into the result's ``targets`` key.
Research demo, not a diagnostic device.
"""

from __future__ import annotations

from typing import Any

#: The issues' targets: result key -> (comparison, bound, what it is).
TARGETS: dict[str, tuple[str, float, str]] = {
    "pipeline_ratio": ("<=", 1.5, "pipeline / forward+backward"),
    "evaluate_ratio": (">=", 0.8, "evaluate / bare batched forward"),
    "cold_start_s": ("<", 5.0, "cold start of the CLI (s)"),
    "peer_ratio": (">=", 5.0, "peer pipeline / ours"),
}

def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"value", "target", "met"}}`` for every :data:`TARGETS` key (``met`` is ``None`` when not measured)."""
    out = {}
    for key, (op, bound, _) in TARGETS.items():
        value = result.get(key)
        met = None if value is None else bool(value <= bound if op == "<=" else value >= bound if op == ">=" else value < bound)
        out[key] = {"value": value, "target": f"{op} {bound:g}", "met": met}
    return out


def target_lines(targets: dict[str, dict[str, Any]]) -> list[str]:
    """One line per target: ``target met: ...``, ``target MISSED: ...`` or ``target not measured: ...``."""
    lines = []
    for key, check in targets.items():
        what = TARGETS[key][2] if key in TARGETS else key
        if check["met"] is None:
            lines.append(f"target not measured: {what} (target {check['target']})")
        else:
            word = "met" if check["met"] else "MISSED"
            lines.append(f"target {word}: {what} = {check['value']:g} (target {check['target']})")
    return lines


def format_table(result: dict[str, Any]) -> str:
    """A short plain-text table of a result, then one line per target."""
    f, fb, p, pe = result["forward_ms"], result["forward_backward_ms"], result["pipeline_ms"], result["pipeline_encoded_ms"]
    cold, peer = result["cold_start_s"], result["peer_ms"]
    lines = [
        f"cxrdemo bench: {result['architecture']} on {result['device']}, {result['threads']} thread(s), n={result['n']}",
        f"{'measure':<34}{'median':>10}{'p90':>10}",
        f"{'bare forward (ms)':<34}{f['median']:>10.2f}{f['p90']:>10.2f}",
        f"{'bare forward+backward to CAM (ms)':<34}{fb['median']:>10.2f}{fb['p90']:>10.2f}",
        f"{'full pipeline (ms)':<34}{p['median']:>10.2f}{p['p90']:>10.2f}",
    ]
    lines += [f"  {stage:<32}{ms:>10.2f}" for stage, ms in result["stages_ms"].items()]
    lines += [
        f"{'pipeline + app encoding (ms)':<34}{pe['median']:>10.2f}{pe['p90']:>10.2f}",
        f"{'pipeline / forward+backward':<34}{result['pipeline_ratio']:>10.3f}",
        f"{'evaluate (images/s)':<34}{result['evaluate_images_per_s']:>10.2f}",
        f"{'bare batched forward (images/s)':<34}{result['bare_forward_images_per_s']:>10.2f}",
        f"{'evaluate / bare batched':<34}{result['evaluate_ratio']:>10.3f}",
        f"{'cold start (s)':<34}{'skipped' if cold is None else format(cold, '.3f'):>10}",
    ]
    if peer is not None:
        lines.append(f"{'peer pipeline (ms)':<34}{peer['median']:>10.2f}{peer['p90']:>10.2f}")
        lines += [f"  {stage:<32}{ms:>10.2f}" for stage, ms in result["peer_stages_ms"].items()]
        lines.append(f"{'peer / ours (with encoding)':<34}{result['peer_ratio']:>10.3f}")
        lines.append(f"{'peer vs ours: max |prob diff|':<34}{result['peer_prob_diff_max']:>10.4f}")
    else:
        lines.append(f"{'peer pipeline (ms)':<34}{'skipped':>10}")
    return "\n".join(lines + target_lines(result["targets"]))
