"""``bench/load.py``: the load/soak script's pieces, and a small end-to-end run against ``python app.py``.

The small run (4 clients x 5 requests, conftest's small random model) checks the plumbing and what must hold at any
speed: no error, no answer that differs from the same request run serially, bounded memory and file descriptors,
the server stopped afterwards. Timings are recorded, never asserted (a shared CI machine). Loopback only.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("cxrdemo_bench_load", REPO / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ pieces
def test_parse_mix(load):
    assert load.parse_mix("predict=0.6,cam=0.3, export=0.1") == {"predict": 0.6, "cam": 0.3, "export": 0.1}
    assert load.parse_mix("predict") == {"predict": 1.0}
    with pytest.raises(ValueError, match="unknown kind 'upload'"):
        load.parse_mix("predict=1,upload=1")
    with pytest.raises(ValueError, match="positive weight"):
        load.parse_mix("predict=0")
    with pytest.raises(SystemExit):
        load.parse_args(["--mix", "nope=1"])


def test_plan_is_seeded_sampled_and_cam_changes_reuse_the_image(load):
    mix = {"predict": 0.5, "cam": 0.4, "export": 0.1}
    images = ["a.png", "b.png", "c.png"]
    plan = load.make_plan(mix, list(mix), 4, 10, images, sample=6, seed=1)
    again = load.make_plan(mix, list(mix), 4, 10, images, sample=6, seed=1)
    assert [[(r.kind, r.image, r.method, r.threshold, r.sample) for r in c] for c in plan] == [
        [(r.kind, r.image, r.method, r.threshold, r.sample) for r in c] for c in again
    ]
    flat = [r for c in plan for r in c]
    assert len(plan) == 4 and len(flat) == 40
    sampled = [r for r in flat if r.sample]
    assert len(sampled) == 6 and len({r.kind for r in sampled}) == len({r.kind for r in flat})
    for c in plan:
        for previous, req in zip(c, c[1:]):
            if req.kind == "cam":
                assert req.image == previous.image and req.method != "gradcam"


def test_endpoints_fall_back_or_skip(load):
    only_predict = {"named_endpoints": {"/predict": {"parameters": []}}}
    mix = {"predict": 1, "cam": 1, "export": 1, "compare_methods": 1}
    ep = load.resolve_endpoints(only_predict, mix)
    assert ep.route["predict"] == ("/predict", "own endpoint")
    assert ep.route["cam"][0] == "/predict" and "CAM" in ep.route["cam"][1]
    assert ep.route["export"][0] == "/predict" and "export" in ep.route["export"][1]
    assert ep.skipped == {"compare_methods": "skipped: no compare_methods endpoint", "audit": "skipped: no audit endpoint"}
    params = [
        {"parameter_name": "image", "component": "File"},
        {"parameter_name": "n", "parameter_has_default": True, "parameter_default": 3},
        {"parameter_name": "truth", "component": "Textbox", "parameter_has_default": False, "example_input": "Hello!!"},
    ]
    full = {"named_endpoints": {"/predict": {}, "/compare_methods": {"parameters": params}, "/audit": {"parameters": []}}}
    ep = load.resolve_endpoints(full, mix)
    assert ep.route["compare_methods"] == ("/compare_methods", "own endpoint") and ep.parameters["compare_methods"] == params
    assert "audit" in ep.route and not ep.skipped
    kwargs = load.generic_arguments(params, str(REPO / "README.md"), {"n": 5})
    assert kwargs["n"] == 5 and kwargs["image"]["path"].endswith("README.md") and kwargs["truth"] == ""


def test_audit_is_skipped_without_endpoint(load):
    result = load.audit_under_load(None, load.Endpoints(route={"predict": ("/predict", "own endpoint")}), [], None, None)
    assert result == {"skipped": "skipped: no audit endpoint"}


def test_fingerprint_drops_timings_and_hashes_files(load, tmp_path):
    from PIL import Image

    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(a)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(b, quality=100)
    paths: list[str] = []
    one = load.fingerprint([{"iou": [1], "timings_ms": {"x": 1}}, str(a)], paths)
    two = load.fingerprint([{"iou": [1], "timings_ms": {"x": 2}}, str(a)], [])
    assert one == two and paths == [str(a)] and one[1].startswith("pixels:")
    assert load.fingerprint({"path": str(b), "orig_name": "b.jpg"}, []).startswith("pixels:")


def test_small_helpers(load):
    assert load.percentiles([]) is None
    p = load.percentiles([float(i) for i in range(1, 101)])
    assert (p["n"], p["p50"], p["p95"], p["p99"], p["max"]) == (100, 50.5, 95.0, 99.0, 100.0)

    class QueueError(Exception):
        pass

    assert load.is_queue_full(QueueError("Queue is full! Please try again."))
    assert not load.is_queue_full(ValueError("corrupt or truncated"))
    summary = {"errors": 0, "rss_growth_mb": 60, "fd_growth": 0, "serial_mismatches": 0, "spawn_to_first_answer_s": None}
    checks = load.check_targets({"summary": summary})
    assert checks["errors"]["met"] and checks["rss_growth_mb"]["met"] is False and checks["spawn_to_first_answer_s"]["met"] is None


# ------------------------------------------------------------------------------------------ small run
def test_small_load_run_against_the_app(load, model_dir, images_dir, tmp_path, capsys):
    import psutil

    out = tmp_path / "load.json"
    argv = ["--clients", "4", "--requests", "5", "--sample", "4", "--warmup", "1", "--weights", str(model_dir)]
    argv += ["--images", str(images_dir), "--timeout", "120", "--max-seconds", "150", "--json", str(out)]
    argv += ["--mix", "predict=0.5,cam=0.3,export=0.2"]  # endpoints the app has today or falls back from
    assert load.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    printed = capsys.readouterr()
    assert "throughput" in printed.out and "target met: errors under load" in printed.out
    assert "load: starting the app" in printed.err  # progress on stderr

    run = result["load"]
    assert run["sent"] == 20 and run["ok"] == 20 and run["errors"] == 0 and run["queue_full"] == 0, run["messages"]
    assert run["latency_s"]["n"] == 20 and run["latency_s"]["p50"] <= run["latency_s"]["p95"] <= run["latency_s"]["p99"]
    assert result["serial_check"]["compared"] == 4 and result["serial_check"]["mismatches"] == 0, result["serial_check"]
    used, skipped = result["endpoints"]["used"], result["endpoints"]["skipped"]
    assert set(used) | set(skipped) >= {"predict", "cam", "export"}
    assert used["predict"]["endpoint"] == "/predict"

    res = result["resources"]
    for reading in (res["before"], res["after"]):
        assert reading["rss_mb"] > 0 and reading["fds"] > 0
        assert set(reading["gradio_cache"]) == {"bytes", "files"}
    assert res["after"]["gradio_cache"]["files"] > res["before"]["gradio_cache"]["files"]  # the panels handed out
    s = result["summary"]
    assert s["errors"] == 0 and s["serial_mismatches"] == 0
    assert s["rss_growth_mb"] < 50 and s["fd_growth"] <= 10
    assert s["spawn_to_page_s"] > 0 and s["spawn_to_first_answer_s"] >= s["spawn_to_page_s"]
    assert set(result["targets"]) == set(load.TARGETS)

    stop = result["stop"]
    assert stop["exit_code"] is not None and not psutil.pid_exists(stop["pid"]), stop  # the app was stopped and reaped
