"""What ``python -m cxrdemo bench`` prints: the table of a result and one line per target met or missed.

The targets are the issues' (:data:`TARGETS`); :func:`check_targets` puts them into the result's ``targets`` key.
Research demo, not a diagnostic device.
"""

from __future__ import annotations

from typing import Any

#: The issues' targets: result key -> (comparison, bound, what it is).
TARGETS: dict[str, tuple[str, float, str]] = {
    "pipeline_ratio": ("<=", 1.5, "pipeline / bare network (see ratio_basis)"),
    "evaluate_ratio": (">=", 0.8, "evaluate / bare forward"),
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


#: ``ratio_basis`` -> how the table names the pipeline ratio's denominator.
RATIO_BASIS_WORDS: dict[str, str] = {
    "forward_backward_ms": "forward+backward",
    "forward_ms": "forward",
    "forward_ms + forward_backward_ms": "(fwd + fwd+bwd)",
}


def format_table(result: dict[str, Any]) -> str:
    """A short plain-text table of a result, then one line per target."""
    f, fb, p, pe = result["forward_ms"], result["forward_backward_ms"], result["pipeline_ms"], result["pipeline_encoded_ms"]
    cold, peer, boxes = result["cold_start_s"], result["peer_ms"], result["detector_boxes"]
    bare_label, ratio_label = (("bare forward per film (images/s)", "evaluate / bare per film") if boxes is not None
                               else ("bare batched forward (images/s)", "evaluate / bare batched"))
    lines = [
        f"cxrdemo bench: {result['architecture']} on {result['device']}, {result['threads']} thread(s), n={result['n']}, "
        f"CAM {result['cam_method']}",
        f"{'measure':<34}{'median':>10}{'p90':>10}",
        f"{'bare forward (ms)':<34}{f['median']:>10.2f}{f['p90']:>10.2f}",
        f"{'bare forward+backward to CAM (ms)':<34}" + (f"{fb['median']:>10.2f}{fb['p90']:>10.2f}" if fb else f"{'skipped':>10}"),
        f"{'full pipeline (ms)':<34}{p['median']:>10.2f}{p['p90']:>10.2f}",
    ]
    lines += [f"  {stage:<32}{ms:>10.2f}" for stage, ms in result["stages_ms"].items()]
    lines += [
        f"{'pipeline + app encoding (ms)':<34}{pe['median']:>10.2f}{pe['p90']:>10.2f}",
        f"{'pipeline / ' + RATIO_BASIS_WORDS[result['ratio_basis']]:<34}{result['pipeline_ratio']:>10.3f}",
    ]
    if boxes is not None:
        lines.append(f"{'detector boxes per film (median)':<34}{boxes['candidates']:>10g} candidates, {boxes['shown']:g} shown"
                     + (f"; {boxes['films_left_out']} film(s) without a box left out" if boxes["films_left_out"] else ""))
    lines += [
        f"{'evaluate (images/s)':<34}{result['evaluate_images_per_s']:>10.2f}",
        f"{bare_label:<34}{result['bare_forward_images_per_s']:>10.2f}",
        f"{ratio_label:<34}{result['evaluate_ratio']:>10.3f}",
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
