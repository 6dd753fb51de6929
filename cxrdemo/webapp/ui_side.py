"""The single-case page's "Side by side" section (Gradio): every CAM method on the case, and the case through a
second model B; and the ``compare_methods`` / ``compare_models`` endpoints. The work is :mod:`.side`'s.

Both buttons run on the model queue (they run CAMs or a model) and show their progress on the page's status bar,
like a CAM change; their results appear below the panels, one picture per method tile (or panel) in a grid like the
panels' (4 across, 2 below 1100 px, 1 below 700 px: see ``app.py``'s CSS), hidden until first drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from ..cams import CAM_METHOD_KEYS, DEFAULT_CAM_THRESHOLD, method_name
from ..datasets.nih import TOP1
from ..render import PANEL_NAMES, model_heading
from . import side
from .boxes_text import parse_boxes_text
from .resources import AppResources
from .state import Settings
from .ui_common import checked_number, guarded, progress_reporter, source_field
from .upload import read_upload
from .view import sentence
from .zerogpu import CASE_SECONDS, COMPARE_MODELS_SECONDS, on_gpu

METHODS_HELP = "Every CAM method for this case's target class and threshold, from the cached forward pass (no network pass)."
MODELS_HELP = "The same radiograph through a second model B, with the same CAM settings and ground truth."


@dataclass
class SideUI:
    """The section's components (the API's hidden inputs in ``api``)."""

    methods_btn: gr.Button
    methods_box: gr.Column
    methods_title: gr.Markdown
    methods_images: list[gr.Image]
    source_b: gr.Textbox | gr.Dropdown
    models_btn: gr.Button
    models_box: gr.Column
    models_summary: gr.Markdown
    models_titles: list[gr.Markdown]
    models_images: list[gr.Image]
    api: dict[str, gr.components.Component]

    @property
    def methods_outputs(self) -> list[gr.components.Component]:
        return [self.methods_box, self.methods_title, *self.methods_images]

    @property
    def models_outputs(self) -> list[gr.components.Component]:
        return [self.models_box, self.models_summary, *self.models_titles, *self.models_images]


def _picture(elem_id: str) -> gr.Image:
    return gr.Image(show_label=False, type="filepath", interactive=False, buttons=["download", "fullscreen"], elem_id=elem_id)


def create_side() -> SideUI:
    """Lay out the section (inside the single-case page's column)."""
    with gr.Column(elem_id="side"):
        gr.Markdown("### Side by side", elem_id="side-title")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                gr.Markdown(METHODS_HELP)
                methods_btn = gr.Button("Every CAM method side by side", elem_id="compare-methods")
            with gr.Column(scale=1, min_width=280):
                source_b = source_field("", "Model B source", "source-b",
                                        "a folder or owner/name@rev; empty: the default model", MODELS_HELP)  # fmt: skip
                models_btn = gr.Button("Compare with model B", elem_id="compare-models")
        with gr.Column(visible=False, elem_id="method-box") as methods_box:
            methods_title = gr.Markdown(elem_id="method-title")
            with gr.Row(elem_id="method-grid", elem_classes=["side-grid"]):
                methods_images = [_picture(f"method-{i}") for i, _ in enumerate(CAM_METHOD_KEYS)]
        with gr.Column(visible=False, elem_id="ab-box") as models_box:
            models_summary = gr.Markdown(elem_id="ab-summary", elem_classes=["wide-tables"])
            models_titles, models_images = [], []
            for tag in ("a", "b"):
                models_titles.append(gr.Markdown(elem_id=f"ab-title-{tag}"))
                with gr.Row(elem_id=f"ab-panels-{tag}", elem_classes=["side-grid"]):
                    models_images += [_picture(f"ab-{tag}-{i}") for i, _ in enumerate(PANEL_NAMES)]
    api = dict(
        source_b=gr.Textbox("", visible=False),
        device=gr.Textbox("auto", visible=False),
        method=gr.Textbox("gradcam", visible=False),
        target=gr.Textbox(TOP1, visible=False),
        threshold=checked_number(DEFAULT_CAM_THRESHOLD, precision=0, visible=False),
        score=gr.Textbox("", visible=False),  # detectors' score threshold as text: "" = each model's own
        methods_json=gr.JSON(visible=False),
        models_json=gr.JSON(visible=False),
        picture=gr.File(visible=False),
    )
    return SideUI(methods_btn, methods_box, methods_title, methods_images, source_b, models_btn, models_box, models_summary, models_titles,
                  models_images, api)  # fmt: skip


class SideHandlers:
    """The section's handlers and its two endpoints."""

    def __init__(self, side_ui: SideUI, resources: AppResources, status: gr.Markdown) -> None:
        self.ui, self.resources, self.cache, self.status = side_ui, resources, resources.cache, status

    @guarded
    def methods(self, handle, progress=gr.Progress()):
        case = self.resources.cases.get(handle)
        progress(0.2, desc="every CAM method from the cached forward pass")
        view = side.case_methods(self.cache, case, lookup=self.resources.truth_lookup)
        paths = side.write_pictures(view.tiles, self.resources.panel_root)
        ms = sum(view.doc["timings_ms"].values())
        status = f"{case.analysis.image}: every CAM method redone from the cached forward pass, {ms:.0f} ms of computation."
        title = (f"**Every CAM method on {case.analysis.image}**, map of {view.doc['target']}, box threshold "
                 f"{view.doc['threshold']} (ground truth solid, CAM box dotted; each IoU is that of the box cut from the map "
                 "of the ground-truth box's own class, as CLN scores it).")  # fmt: skip
        out = {self.ui.methods_box: gr.Column(visible=True), self.ui.methods_title: title, self.status: status}
        by_method = dict(zip((c.method for c in view.cells), paths))
        for key, image in zip(CAM_METHOD_KEYS, self.ui.methods_images):
            out[image] = gr.Image(by_method.get(key), label=method_name(key))
        return out

    @guarded
    def models(self, handle, source_b, device, progress=gr.Progress()):
        case = self.resources.cases.get(handle)
        step = progress_reporter(progress)
        step(0.1, "running model B")
        view = side.case_models(self.cache, case, source_b, device, lookup=self.resources.truth_lookup)
        paths = side.write_pictures([img for img, _ in view.panels], self.resources.panel_root)
        status = f"{case.analysis.image}: model B run; A and B side by side below the panels."
        if view.notes:  # in the status line, not a toast over the example gallery
            status += " Note: " + " ".join(sentence(n) for n in view.notes)
        comparison = view.comparison
        titles = [f"**{heading}**" for heading in (model_heading(comparison.a, "Model A"), model_heading(comparison.b, "Model B"))]
        return {
            self.ui.models_box: gr.Column(visible=True),
            self.ui.models_summary: view.summary,
            **dict(zip(self.ui.models_titles, titles)),
            **dict(zip(self.ui.models_images, paths)),
            self.status: status,
        }

    @guarded
    def compare_methods(self, image, source, device, target, threshold, truth, progress=gr.Progress()):
        """Every CAM method on one radiograph (one forward pass, then the CAMs). Inputs as predict's, without the
        CAM method. Returns the JSON (image, model, target, threshold, ground_truth, methods, timings_ms; each
        method: method, name, target, class_agnostic, threshold, box, iou) and the grid of every method as a JPEG."""
        progress(0.1, desc="running the model")
        settings = Settings.from_controls(source, device, None, target, threshold)
        view = side.api_methods(self.cache, read_upload(image), settings, parse_boxes_text(truth) or None,
                                 lookup=self.resources.truth_lookup)
        return view.doc, side.write_picture(view.grid, self.resources.panel_root)

    @guarded
    def compare_models(self, image, source, source_b, device, method, target, threshold, truth, score_threshold="",
                       progress=gr.Progress()):
        """One radiograph through two models, A (source) and B (source_b), with the same CAM settings, ground
        truth and detector score threshold ("" = each model's own). Returns the JSON {a, b, top_changed, differences} (a and b: predict's JSON) and both rows of panels
        as one JPEG."""
        progress(0.1, desc="running models A and B")
        settings = Settings.from_controls(source, device, method, target, threshold, score_threshold)
        view = side.api_models(self.cache, read_upload(image), settings, source_b, parse_boxes_text(truth) or None,
                               lookup=self.resources.truth_lookup)
        return view.doc, side.write_picture(view.rows, self.resources.panel_root)


def wire_side(side_ui: SideUI, ui: Any, resources: AppResources, heavy: dict, on_failure: Callable[[Any], None]) -> SideHandlers:
    """Wire the section to the single-case page ``ui`` (its case state, status bar, source and device) and
    register the two endpoints; ``heavy``: the model queue's concurrency settings."""
    h = SideHandlers(side_ui, resources, ui.status)
    ui_heavy = dict(heavy, api_visibility="private", show_progress_on=[ui.status])
    outputs = [*side_ui.methods_outputs, ui.status]
    methods = on_gpu(h.methods, CASE_SECONDS, outputs)  # a GPU per call on a ZeroGPU Space; elsewhere unchanged
    on_failure(side_ui.methods_btn.click(methods, [ui.case_state], outputs, **ui_heavy))
    models_outputs = [*side_ui.models_outputs, ui.status]
    models = on_gpu(h.models, COMPARE_MODELS_SECONDS, models_outputs)
    on_failure(side_ui.models_btn.click(models, [ui.case_state, side_ui.source_b, ui.device], models_outputs, **ui_heavy))
    api = side_ui.api
    trigger = gr.Button("compare", visible=False)
    methods_in = [ui.upload, ui.source, api["device"], api["target"], api["threshold"], ui.truth_text]
    trigger.click(on_gpu(h.compare_methods, CASE_SECONDS), methods_in, [api["methods_json"], api["picture"]], api_name="compare_methods",
                  api_description=h.compare_methods.__doc__, **heavy)  # fmt: skip
    models_in = [ui.upload, ui.source, api["source_b"], api["device"], api["method"], api["target"], api["threshold"], ui.truth_text, api["score"]]
    trigger.click(on_gpu(h.compare_models, COMPARE_MODELS_SECONDS), models_in, [api["models_json"], api["picture"]], api_name="compare_models",
                  api_description=h.compare_models.__doc__, **heavy)  # fmt: skip
    return h
