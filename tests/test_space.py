"""Issue 27, B: the Space. ZeroGPU (``cxrdemo.webapp.zerogpu``): without ``SPACES_ZERO_GPU`` nothing changes (the
handlers are the very functions), with it every handler that runs the model goes through ``spaces.GPU`` with its
duration and answers with values that cross a process boundary (pickle). The rehearsal's checks
(``bench/space_rehearsal.py``) on the real page config of a public and a private app. A stand-in ``spaces`` module
records the decorations (the real one needs Hugging Face's GPU scheduler)."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import pickle
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO
from cxrdemo.webapp import zerogpu

#: The handlers that run the model, and the duration each must ask for (``audit_seconds``: a function).
GPU_HANDLERS = {
    "analyse": zerogpu.CASE_SECONDS,
    "settings": zerogpu.CASE_SECONDS,
    "apply": zerogpu.CASE_SECONDS,
    "nih": zerogpu.CASE_SECONDS,
    "predict": zerogpu.CASE_SECONDS,
    "methods": zerogpu.CASE_SECONDS,
    "compare_methods": zerogpu.CASE_SECONDS,
    "models": zerogpu.COMPARE_MODELS_SECONDS,
    "compare_models": zerogpu.COMPARE_MODELS_SECONDS,
    "run": zerogpu.audit_seconds,
    "audit": zerogpu.audit_seconds,
}


class FakeSpaces(types.ModuleType):
    """``spaces`` as far as the app uses it: ``GPU(duration=...)(fn)`` records ``(fn, duration)`` and returns a new
    function (so a wrapped handler is told from an unwrapped one)."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.decorated: list[tuple[object, object]] = []

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 - the package's name
        def decorate(fn):
            self.decorated.append((fn, duration))
            if inspect.isgeneratorfunction(fn):

                def on_gpu(*args, **kwargs):
                    yield from fn(*args, **kwargs)

            else:

                def on_gpu(*args, **kwargs):
                    return fn(*args, **kwargs)

            return functools.update_wrapper(on_gpu, fn)

        return decorate(task) if callable(task) else decorate

    def by_name(self) -> dict[str, tuple[object, object]]:
        return {getattr(fn, "__name__", ""): (fn, duration) for fn, duration in self.decorated}


@pytest.fixture()
def fake_spaces(monkeypatch) -> FakeSpaces:
    module = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", module)
    return module


def build(model_dir: Path, tmp_path: Path, examples: Path | None = None):
    """The app's Blocks (not served) on ``model_dir`` (CPU), its examples from ``examples`` (default: the
    repository's), a fresh export folder."""
    from app_server import load_app_module
    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.state import Settings

    app = load_app_module()
    resources = make_resources(REPO, examples_folder=examples, export_root=tmp_path / "exports")
    resources.default = Settings(source=str(model_dir), device="cpu")
    return app.build_app(resources), resources


# ------------------------------------------------------------------------------------------------------ ZeroGPU
@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_without_zero_gpu_every_handler_is_the_function_itself(monkeypatch, fake_spaces, value):
    monkeypatch.setenv(zerogpu.ENV, value)

    def handler(x):
        return x

    assert zerogpu.load_spaces() is None
    assert zerogpu.on_gpu(handler, 60) is handler
    assert zerogpu.on_gpu(handler, zerogpu.audit_seconds, outputs=["a"]) is handler
    assert fake_spaces.decorated == []


def test_without_spaces_installed_nothing_wraps(monkeypatch):
    """SPACES_ZERO_GPU set but no ``spaces`` package: the app runs unwrapped (and says so in its log)."""
    monkeypatch.setenv(zerogpu.ENV, "true")
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes ``import spaces`` raise ImportError

    def handler():
        return 1

    assert zerogpu.load_spaces() is None and zerogpu.on_gpu(handler, 60) is handler


def test_the_app_unchanged_without_zero_gpu(monkeypatch, fake_spaces, model_dir, tmp_path):
    monkeypatch.delenv(zerogpu.ENV, raising=False)
    demo, _ = build(model_dir, tmp_path)
    assert fake_spaces.decorated == []
    # the events run the handlers' own methods (bound), not a wrapper of ours
    app = sys.modules["app"]
    methods = {getattr(f.fn, "__func__", None) for f in demo.fns.values()}
    assert {app.Handlers.analyse, app.Handlers.settings, app.Handlers.apply, app.Handlers.predict} <= methods


def test_zero_gpu_wraps_every_model_handler_with_its_duration(monkeypatch, fake_spaces, model_dir, tmp_path):
    monkeypatch.setenv(zerogpu.ENV, "true")
    demo, _ = build(model_dir, tmp_path)
    found = fake_spaces.by_name()
    assert set(found) == set(GPU_HANDLERS)
    assert {name: duration for name, (_, duration) in found.items()} == GPU_HANDLERS
    assert len(fake_spaces.decorated) == len(GPU_HANDLERS)  # each once: the light handlers stay on the main process
    assert inspect.isgeneratorfunction(found["run"][0]) and inspect.isgeneratorfunction(found["audit"][0])
    # the events run the wrapped functions
    wrapped = {getattr(f.fn, "__wrapped__", None) for f in demo.fns.values()}
    assert all(fn in wrapped for fn, _ in fake_spaces.decorated)


def test_page_handlers_answer_with_picklable_tuples_on_zero_gpu(monkeypatch, fake_spaces, model_dir, tmp_path, images_dir):
    """ZeroGPU pickles a GPU function's answer back from its worker process; Gradio components do not pickle, so
    the page's handlers answer in their outputs' order."""
    import gradio as gr

    monkeypatch.setenv(zerogpu.ENV, "true")
    build(model_dir, tmp_path)
    found = fake_spaces.by_name()
    # The CAM-change handler without a case: one update (the target field), the other outputs skipped.
    answer = found["settings"][0](None, "", "cpu", "gradcam", "top-1", 127, None, None)  # ..., score, log
    assert isinstance(answer, tuple) and pickle.loads(pickle.dumps(answer)) is not None
    assert sum(1 for a in answer if a != gr.skip()) == 1
    # A real analysis of a real radiograph: every output in order, and all of it picklable.
    image = next(p for p in sorted(images_dir.glob("*.png")))
    answer = found["analyse"][0](str(image), "", "cpu", "gradcam", "top-1", 127, None, None, None)  # score, case, log
    assert isinstance(answer, tuple) and len(answer) > 10
    assert all(a != gr.skip() for a in answer)  # a new case updates every output
    back = pickle.loads(pickle.dumps(answer))
    assert any(isinstance(a, dict) and a.get("probabilities") for a in back)  # the prediction JSON came across


def test_audit_duration_follows_the_request(monkeypatch):
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    for variable in ("CXRDEMO_AUDIT_MAX_IMAGES", "CXRDEMO_AUDIT_MAX_ROAD_IMAGES", "CXRDEMO_AUDIT_MAX_SANITY_IMAGES"):
        monkeypatch.delenv(variable, raising=False)
    base, image, road, sanity = (zerogpu.AUDIT_BASE_SECONDS, zerogpu.AUDIT_IMAGE_SECONDS, zerogpu.AUDIT_ROAD_SECONDS,
                                 zerogpu.AUDIT_SANITY_SECONDS)  # fmt: skip
    # 11 images, one method, nothing slow
    assert zerogpu.audit_seconds("examples", "", "auto", ["gradcam"], 127, 11, False, 8, False, 4) == base + 11 * image
    # two methods (comma-separated, as the endpoint takes them), ROAD on 8 of 11, sanity on 4
    expected = base + 2 * (11 * image + 8 * road + 4 * sanity)
    assert zerogpu.audit_seconds("examples", "", "auto", "gradcam,gradcam++", 127, 11, True, 8, True, 4, False, None) == expected
    # 0 images = all = the public cap (60), ROAD 0 = its cap (32); never above the ceiling
    assert zerogpu.audit_seconds("x", "", "auto", ["gradcam"], 127, 0, True, 0, False, 0) == base + 60 * image + 32 * road
    assert zerogpu.audit_seconds("x", "", "auto", ["a", "b"], 127, 10**9, True, 10**9, True, 10**9) <= zerogpu.AUDIT_MAX_SECONDS
    # text where a count goes counts as the cap (the audit itself refuses it at once)
    assert zerogpu.audit_seconds("x", "", "auto", ["gradcam"], 127, "lots") == base + 60 * image
    # a public audit at every cap (2 methods, 60 images, ROAD 32, sanity 4) stays under the ceiling
    at_caps = base + 2 * (60 * image + 32 * road + 4 * sanity)
    assert zerogpu.audit_seconds("x", "", "auto", ["a", "b"], 127, 0, True, 0, True, 0) == at_caps < zerogpu.AUDIT_MAX_SECONDS
    # without caps (a server out of public mode) "all" counts AUDIT_ALL_IMAGES, and the ceiling holds
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    assert zerogpu.audit_seconds("x", "", "auto", ["gradcam"], 127, 0) == base + zerogpu.AUDIT_ALL_IMAGES * image
    assert zerogpu.audit_seconds("x", "", "auto", ["a", "b"], 127, 0, True, 0, True, 0) == zerogpu.AUDIT_MAX_SECONDS


# ---------------------------------------------------------------------------------------------------- rehearsal
def _rehearsal():
    path = REPO / "bench" / "space_rehearsal.py"
    spec = importlib.util.spec_from_file_location("space_rehearsal", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_rehearsal_checks_pass_on_the_public_page_and_fail_on_a_private_one(monkeypatch, model_dir, tmp_path):
    rehearsal = _rehearsal()
    expected = len(rehearsal.manifest_images(REPO))
    assert expected == 11  # examples/manifest.csv's images, all shipped in examples/images
    monkeypatch.delenv("CXRDEMO_PUBLIC", raising=False)
    monkeypatch.setenv("SPACE_ID", "rehearsal/cxrdemo")
    demo, resources = build(model_dir, tmp_path)
    config = json.loads(json.dumps(demo.get_config_file(), default=str))
    forbidden = [str(REPO), str(resources.export_root), str(model_dir)]
    checks = {c.name: c for c in rehearsal.check_page(config, "<html></html>", forbidden, expected)}
    assert all(c.ok for c in checks.values()), checks
    # the same checks fail where they should: a private page (text fields), a path in the page, a missing example
    monkeypatch.delenv("SPACE_ID")
    private, _ = build(model_dir, tmp_path / "private")
    config = json.loads(json.dumps(private.get_config_file(), default=str))
    failed = {c.name for c in rehearsal.check_page(config, f"<p>{REPO}/weights</p>", forbidden, expected + 1) if not c.ok}
    assert failed == {"public mode: model fields list the server's models", "no server path in the page or its config",
                      "the examples show"}  # fmt: skip


def test_rehearsal_reads_the_front_matter_and_the_answer(tmp_path):
    rehearsal = _rehearsal()
    assert all(c.ok for c in rehearsal.check_space_files(REPO))
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nsdk_version: 6.0.0\napp_file: app.py\n---\n# x\n")
    (tmp_path / "requirements.txt").write_text("torch==2.14.1\ngradio[oauth]==6.31.0\n")
    (tmp_path / "app.py").write_text("")
    checks = rehearsal.check_space_files(tmp_path)
    assert [c.ok for c in checks] == [True, False] and "6.31.0" in checks[1].detail
    assert rehearsal.pinned_version("gradio==6.31.0 ; python_version>'3'", "gradio") == "6.31.0"
    assert rehearsal.pinned_version("gradio-image-annotation==0.5.6\n", "gradio") is None
    panels = []
    for i in range(4):
        panel = tmp_path / f"p{i}.png"
        panel.write_bytes(b"x")
        panels.append(str(panel))
    doc = {"probabilities": [{"label": "Atelectasis", "probability": 0.7}, {"label": "Mass", "probability": 0.1}]}
    ok = rehearsal.check_answer((doc, *panels))
    assert ok.ok and "top Atelectasis" in ok.detail
    assert not rehearsal.check_answer((doc, *panels[:3], None)).ok
    assert not rehearsal.check_answer(({"probabilities": []}, *panels)).ok
    assert not rehearsal.check_answer("error").ok


def test_zero_gpu_skips_the_start_up_warm_up(monkeypatch, fake_spaces, model_dir, tmp_path):
    """On ZeroGPU the model is loaded by the first GPU call (in ZeroGPU's worker), not by a warm-up thread here."""
    import threading

    from app_server import load_app_module
    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.state import Settings

    app = load_app_module()
    started: list[str] = []
    real_start = threading.Thread.start

    def record(thread):
        started.append(thread.name)
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", record)
    monkeypatch.setattr(app, "_warm", lambda resources: None)  # a warm-up thread, if started, does nothing here
    for value, warm_threads in (("true", 0), ("", 1)):
        monkeypatch.setenv(zerogpu.ENV, value)
        started.clear()
        resources = make_resources(REPO, export_root=tmp_path / f"exports{value}")
        resources.default = Settings(source=str(model_dir), device="cpu")
        app.prepare(resources, warm=True)
        assert started.count("cxrdemo-warm-up") == warm_threads
