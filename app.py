"""cxrdemo's web app (Gradio 6): what a chest X-ray model does on a radiograph. Research demo, not a diagnostic device.

This file only lays out Gradio components (:func:`create_ui`) and wires them to the functions of
:mod:`cxrdemo.webapp` (:func:`create_event_handlers`); all logic lives in the package.

Two pages (tabs): the single case (upload or example, four panels, every CAM method side by side, a second model
side by side) and the audit of a data set (:mod:`cxrdemo.webapp.ui_side` and :mod:`cxrdemo.webapp.ui_audit` lay
out and wire those parts).

Run: ``python app.py`` serves on http://127.0.0.1:7860 (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` override;
a Hugging Face Space sets them). Environment: ``CXRDEMO_WEIGHTS`` (default model), ``CXRDEMO_EXAMPLES_DIR`` (example
images, default ``examples/images``), ``CXRDEMO_MAX_UPLOAD_MB`` (upload limit, default 50), ``CXRDEMO_CONCURRENCY``
(model jobs at once, default 1), ``CXRDEMO_AUDIT_DATASETS`` (data sets the audit page offers), ``CXRDEMO_MODELS``
(named models), ``CXRDEMO_PUBLIC`` (public mode: named models and Hub ids only; see docs/security.md).

API: ``predict``, ``compare_methods``, ``compare_models`` and ``audit``
(``gradio_client.Client(url).predict(..., api_name="/predict")``); see docs/api.md.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from cxrdemo.cams import CAM_METHOD_KEYS, CAM_THRESHOLDS, DEFAULT_CAM_THRESHOLD, method_name
from cxrdemo.device import available_devices
from cxrdemo.errors import CxrDemoError
from cxrdemo.imaging import IMAGE_SUFFIXES
from cxrdemo.publicmode import is_public
from cxrdemo.datasets.nih import TOP1
from cxrdemo.render import PANEL_NAMES, PANEL_TITLES
from cxrdemo.webapp import actions, boxes_text, housekeeping, review, view, zerogpu
from cxrdemo.webapp import resources as res
from cxrdemo.webapp.audit_runs import AuditRun, AuditService
from cxrdemo.webapp.case_store import CaseHandle
from cxrdemo.webapp.models import warm_up
from cxrdemo.webapp.page_style import CSS, HEAD
from cxrdemo.webapp.state import CaseView, Settings
from cxrdemo.webapp.ui_audit import create_audit_page, wire_audit
from cxrdemo.webapp.ui_common import checked_number, guarded, progress_reporter, source_field
from cxrdemo.webapp.ui_side import SideUI, create_side, wire_side
from cxrdemo.webapp.upload import max_upload_bytes, read_upload

try:  # drawing boxes needs the gradio_image_annotation component; typed coordinates work without it
    from gradio_image_annotation import image_annotator
except ImportError:  # pragma: no cover - it is in requirements.txt
    image_annotator = None

REPO = Path(__file__).resolve().parent
LOG = logging.getLogger("cxrdemo.app")
DISCLAIMER = "Research demo, not a diagnostic device: do not use it to make clinical decisions."
TITLE = "cxrdemo: what does your chest X-ray model see?"
#: Browser sessions whose state (a case handle, the review log) is kept; the oldest are dropped beyond this.
STATE_SESSIONS = 200
#: Seconds a note (e.g. "one of this model's training images") stays on screen; the summary keeps it. Short: the
#: toast sits over the example gallery (top right) while it shows.
NOTE_SECONDS = 3
START = "Upload a radiograph or click an example."
RANKED = "Ranked probabilities (top 5; every class in panel c)"
TRUTH_HELP = (
    "**Ground truth.** NIH's box list is used when it knows the image. Otherwise draw a box (pick its class in the "
    "dialog) or type `x1, y1, x2, y2, Class` per line in original pixels, then *Apply ground truth*. The text is the "
    "whole ground truth: delete a line to drop its box (NIH's too); an empty text means none."
)
FAILED = "The last step failed (see the message); the result below is the previous one, and the inputs are kept."
# ------------------------------------------------------------------------------------------------------ layout
@dataclass
class UI:
    """The page's components (``None``: not on this page, e.g. no examples or no box-drawing component)."""

    case_state: gr.State
    review_state: gr.State
    drawn_state: gr.Textbox
    upload: gr.File
    analyse_btn: gr.Button
    source: gr.Textbox | gr.Dropdown
    device: gr.Dropdown
    method: gr.Dropdown
    target: gr.Dropdown
    threshold: gr.Radio
    score: gr.Textbox
    gallery: gr.Gallery | None
    status: gr.Markdown
    summary: gr.Markdown
    label: gr.Label
    panels: dict[str, gr.Image]
    annotator: Any
    truth_text: gr.Textbox
    apply_btn: gr.Button
    nih_btn: gr.Button
    truth_result: gr.Markdown
    note: gr.Textbox
    save_btn: gr.Button
    table: gr.Dataframe
    csv_btn: gr.Button
    report_btn: gr.Button
    downloads: gr.File
    json_view: gr.JSON
    side: SideUI
    api: dict[str, gr.components.Component]

    @property
    def controls(self) -> list[gr.components.Component]:
        return [self.source, self.device, self.method, self.target, self.threshold, self.score]

    @property
    def view_outputs(self) -> list[gr.components.Component]:
        """What a CAM or ground-truth change may update."""
        return [self.case_state, self.status, self.summary, *self.panels.values(), self.label, self.json_view,
                self.target, self.truth_result]  # fmt: skip

    @property
    def case_outputs(self) -> list[gr.components.Component]:
        """What a new case may update: the view, and the ground-truth and note fields."""
        extra = [self.annotator] if self.annotator is not None else []
        side = [self.side.methods_box, self.side.models_box]  # hidden again: they showed the previous case
        return self.view_outputs + extra + [self.truth_text, self.drawn_state, self.note, *side]


def create_ui(resources: res.AppResources) -> UI:
    """Lay out the page (inside a ``gr.Blocks``) and return its components."""
    classes, default = resources.default_classes(), resources.default
    # A CaseHandle; the case (radiograph, forward pass) lives in resources.cases, one memory budget for all sessions.
    case_state = gr.State(None, time_to_live=7200, delete_callback=resources.cases.drop)
    review_state = gr.State(review.ReviewLog())  # this browser session's reviewed cases
    # The box-drawing control's lines that the text has taken in (boxes_text.merge_drawn). Kept in the browser, not
    # in a gr.State: it must travel with the text it describes (a State changed on the server while the browser
    # still sent the text before that change, and a box drawn just before Apply was lost).
    drawn_state = gr.Textbox("", visible=False, elem_id="drawn-lines")
    with gr.Column(elem_id="page"):
        # One compact row of inputs, so that at 1440x900 the top finding and the four panels are on the first screen.
        with gr.Row(equal_height=False, elem_id="inputs"):
            with gr.Column(scale=1, min_width=300, elem_id="model-col"):
                with gr.Column(elem_id="upload-col"):
                    upload = gr.File(label="Radiograph (PNG, JPEG or DICOM)", file_types=list(IMAGE_SUFFIXES),
                                     type="filepath", height=110, elem_id="upload")  # fmt: skip
                    analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse")
                with gr.Row(elem_id="source-col"):
                    source = source_field(default.source, "Model source", "source",
                                          "empty: default weights; a folder; owner/name@rev", scale=2, max_lines=1)  # fmt: skip
                    device = gr.Dropdown(available_devices(), value=default.device, label="Device", elem_id="device",
                                         scale=1, min_width=90)  # fmt: skip
            with gr.Column(scale=1, min_width=300, elem_id="cam-col"):
                with gr.Row():
                    methods = [(method_name(m), m) for m in CAM_METHOD_KEYS]
                    method = gr.Dropdown(methods, value=default.cam.method, label="CAM method", elem_id="method",
                                         min_width=140)  # fmt: skip
                    threshold = gr.Radio(list(CAM_THRESHOLDS), value=DEFAULT_CAM_THRESHOLD, label="CAM threshold",
                                         info="box cut, of 255 (CLN)", elem_id="threshold", min_width=140)  # fmt: skip
                with gr.Row():  # side by side: the column stays as tall as its neighbours (panels on the first screen)
                    target = gr.Dropdown(view.target_choices(classes), value=TOP1, label="CAM target class", elem_id="target",
                                         info=view.target_info(default.cam.method), allow_custom_value=True, scale=2,
                                         min_width=150)  # fmt: skip
                    # a text field: blank must reach the handler as blank (the model's own threshold); a gr.Number
                    # without a value shows and sends 0, which would show every candidate box of a detector
                    score = gr.Textbox("", label="Detector score", elem_id="score-threshold", max_lines=1,
                                       placeholder="auto", scale=1, min_width=110)  # fmt: skip
            with gr.Column(scale=2, min_width=300, elem_id="gallery-col"):
                gallery = None
                if resources.examples:
                    thumbnails = [(res.thumbnail(ex.path), ex.caption) for ex in resources.examples if ex.path]
                    gallery = gr.Gallery(thumbnails, label="Examples: click one", columns=4, height=200,
                                         allow_preview=False, object_fit="contain", elem_id="examples")  # fmt: skip
                else:
                    where = "on this server" if is_public() else f"in `{resources.examples_folder}`"  # no server path
                    gr.Markdown(f"No example images {where}: set `CXRDEMO_EXAMPLES_DIR` (see examples/README.md).")
                status = gr.Markdown(START, elem_id="status", min_height=48, container=True, padding=True)  # top finding
        with gr.Row(elem_id="panels"):  # 4 across, 2x2 below 1100 px, one column below 700 px (CSS above)
            panels = {}
            for i, name in enumerate(PANEL_NAMES):
                with gr.Column(min_width=160):
                    gr.Markdown(f"**{PANEL_TITLES[name]}**", elem_classes=["panel-title"])
                    panels[name] = gr.Image(show_label=False, type="filepath", interactive=False,
                                            buttons=["download", "fullscreen"], elem_id=f"panel-{i}")  # fmt: skip
        with gr.Row(equal_height=False, elem_id="results"):
            with gr.Column(scale=3, min_width=300):
                summary = gr.Markdown("", elem_id="summary")
            with gr.Column(scale=2, min_width=280):
                label = gr.Label(label=RANKED, num_top_classes=5, show_heading=False, elem_id="probabilities")
        side = create_side()  # every CAM method, a second model: below the panels, drawn on request
        with gr.Row(equal_height=False, elem_id="below"):
            with gr.Column(scale=1, min_width=300):
                gr.Markdown(TRUTH_HELP)
                annotator = None
                if image_annotator is not None:
                    annotator = image_annotator(None, label="Draw ground-truth boxes", label_list=list(classes), sources=[],
                                                image_type="filepath", show_download_button=False, show_clear_button=False,
                                                show_remove_button=False, elem_id="annotator")  # fmt: skip
                truth_text = gr.Textbox(label="Ground-truth boxes (x1, y1, x2, y2, Class; one per line)", lines=2,
                                        placeholder="149, 519, 262, 564, Atelectasis", elem_id="truth")  # fmt: skip
                with gr.Row():
                    apply_btn = gr.Button("Apply ground truth", elem_id="apply-truth")
                    nih_btn = gr.Button("Back to NIH's boxes", elem_id="nih-truth")
                truth_result = gr.Markdown("", elem_id="truth-result")  # the IoU table again, beside the buttons
            with gr.Column(scale=1, min_width=300):
                note = gr.Textbox(label="Review note for this case", lines=3, elem_id="note")
                save_btn = gr.Button("Save review", elem_id="save-review")
                headers = ["image", "class", "box IoU", "CAM IoU", "note"]
                table = gr.Dataframe(headers=headers, value=[], label="Reviewed cases", interactive=False,
                                     elem_id="reviewed")  # fmt: skip
                with gr.Row():
                    csv_btn = gr.Button("Export CSV", elem_id="export-csv")
                    report_btn = gr.Button("Export report (PNG + JSON)", elem_id="export-report")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, height=140,
                                    elem_id="downloads")  # fmt: skip
        with gr.Accordion("Prediction JSON (same as the CLI and the predict API)", open=False, elem_id="json-box"):
            json_view = gr.JSON(label="prediction", elem_id="json")
    # The predict API's own inputs: free values, checked by the package with one-line errors (the page's radio
    # and dropdowns would refuse anything off their lists with Gradio's raw "not in the list of choices").
    api = dict(
        trigger=gr.Button("predict", visible=False),
        device=gr.Textbox("auto", visible=False),
        method=gr.Textbox(default.cam.method, visible=False),
        target=gr.Textbox(TOP1, visible=False),
        threshold=checked_number(DEFAULT_CAM_THRESHOLD, precision=0, visible=False),
        score=gr.Textbox("", visible=False),  # a detector's score threshold as text: "" = the model's own
    )
    scope = locals()
    return UI(**{f.name: scope[f.name] for f in fields(UI)})


# ---------------------------------------------------------------------------------------------------- handlers
class Handlers:
    """The page's event handlers: each takes the components' values, calls the package, and returns the updates
    keyed by component (``{ui.summary: ..., ui.panels["cam"]: ...}``); every failure is one ``gr.Error`` line."""

    def __init__(self, ui: UI, resources: res.AppResources) -> None:
        self.ui, self.resources, self.cache = ui, resources, resources.cache
        #: ``(fn, inputs, outputs, event settings)`` of the analysis, for pages that open a case here.
        self.analyse_event: tuple[Any, list, list, dict] | None = None

    def show(self, result: CaseView, log: review.ReviewLog | None, full: bool, handle: CaseHandle | None) -> dict:
        """The page's update for ``result``: only the panels it redraws; with ``full``, the ground-truth and note
        fields too (a new case). Notes not yet shown for this radiograph pop up once, briefly (the summary keeps
        them). The case goes to the server's store under the session's ``handle`` (one entry per session)."""
        ui, case = self.ui, result.case
        if result.messages:
            gr.Warning(" ".join(view.sentence(m) for m in result.messages), duration=NOTE_SECONDS)
        paths = view.write_page_panels(result.panels, self.resources.panel_root, names=result.redraw)
        target = view.target_value(case.settings.cam)
        out: dict = {
            ui.case_state: self.resources.cases.put(case, handle),
            ui.status: result.status,
            ui.summary: result.summary,
            ui.truth_result: result.truth_table,
            ui.label: result.label,
            ui.json_view: result.json,
            ui.target: gr.Dropdown(choices=result.target_choices, value=target, info=result.target_info),
            **{ui.panels[name]: path for name, path in paths.items()},
        }
        if full:
            text = boxes_text.format_boxes_text(case.analysis.ground_truth)  # the whole ground truth, NIH's too
            synced: tuple[str, ...] = ()  # the control's boxes the text has taken in (boxes_text.merge_drawn)
            if ui.annotator is not None:
                out[ui.annotator] = value = boxes_text.annotator_value(case)
                synced = boxes_text.drawn_lines(value, case)
            out.update({ui.truth_text: text, ui.drawn_state: "\n".join(synced), ui.note: review.note_for(log, case)})
            out.update({ui.side.methods_box: gr.Column(visible=False), ui.side.models_box: gr.Column(visible=False)})
        return out

    @guarded
    def analyse(self, path, src, dev, meth, tgt, thr, score, handle, log, progress=gr.Progress()):
        step = progress_reporter(progress)
        step(0.0, "reading the file")
        radiograph = read_upload(path)
        settings = Settings.from_controls(src, dev, meth, tgt, thr, score)
        prev = self.resources.cases.peek(handle)  # an expired one only means its notes show again
        return self.show(actions.analyse_case(self.cache, radiograph, settings, progress=step, previous=prev, lookup=self.resources.truth_lookup), log, True, handle)

    @guarded
    def settings(self, handle, src, dev, meth, tgt, thr, score, log, progress=gr.Progress()):
        case = self.resources.cases.get(handle)
        if case is None:  # nothing analysed yet: the new settings apply to the next analysis
            return {self.ui.target: gr.Dropdown(info=view.target_info(meth))}
        settings = Settings.from_controls(src, dev, meth, tgt, thr, score)
        return self.show(actions.update_case(self.cache, case, settings, progress=progress_reporter(progress), lookup=self.resources.truth_lookup), log, False, handle)

    @guarded
    def apply(self, handle, text, drawn, synced, log, progress=gr.Progress()):
        case = self.resources.cases.get(handle)  # the control's current boxes count, not the text's last copy
        lines = boxes_text.text_lines(synced)
        step = progress_reporter(progress)
        return self.show(actions.apply_truth(self.cache, case, text, step, drawn=drawn, synced=lines, lookup=self.resources.truth_lookup), log, True, handle)

    @guarded
    def nih(self, handle, log, progress=gr.Progress()):
        case = self.resources.cases.get(handle)
        return self.show(actions.restore_nih_truth(self.cache, case, progress=progress_reporter(progress), lookup=self.resources.truth_lookup), log, True, handle)

    @guarded
    def draw(self, drawn, handle, text, synced):
        if boxes_text.annotator_pending(drawn):  # its class dialog is open: wait for the final value
            return {self.ui.truth_text: gr.skip()}
        case = self.resources.cases.get(handle)
        if not boxes_text.control_changed(drawn, case, boxes_text.text_lines(synced)):  # the page redrew it
            return {self.ui.truth_text: gr.skip(), self.ui.drawn_state: gr.skip()}
        text, lines = boxes_text.merge_drawn(text, drawn, case, boxes_text.text_lines(synced))
        return {self.ui.truth_text: text, self.ui.drawn_state: "\n".join(lines)}

    @guarded
    def save(self, handle, text, log):
        case = self.resources.cases.get(handle)
        new_log = review.record_review(log, case, text)
        gr.Info(f"saved: {len(new_log)} reviewed case(s)", duration=4)
        return {self.ui.review_state: new_log, self.ui.table: review.review_table(new_log)}

    @guarded
    def export_csv(self, log):
        return [str(review.export_csv(log, self.resources.export_root))]

    @guarded
    def export_report(self, handle):
        case = self.resources.cases.get(handle)
        return [str(p) for p in review.export_report(case, self.resources.export_root)]

    @guarded
    def example(self, evt: gr.SelectData):
        return str(self.resources.examples[evt.index].path)

    def open_case(self, path: str, run: AuditRun, index: int) -> dict:
        """An audit's case on this page: its file, the audit's model and device, the case's method, class and
        threshold (then the page analyses it)."""
        ui, case = self.ui, run.result.cases[index]
        return {
            ui.upload: path,
            ui.source: run.request.source,
            ui.device: run.device if run.device in available_devices() else "auto",
            ui.method: case.method,
            ui.target: case.label,
            ui.threshold: run.result.evaluation.cam_threshold,
        }

    def failed(self) -> dict:
        return {self.ui.status: FAILED}

    @guarded
    def predict(self, image, source, device, method, target, threshold, truth, score_threshold="", progress=gr.Progress()):
        """Analyse one radiograph (PNG, JPEG or DICOM). Optional: model source, device, CAM method, CAM target
        class (top-1), CAM threshold (127 or 180; any of 1..254), ground-truth boxes as 'x1, y1, x2, y2, Class'
        lines, a detector's score threshold (0..1; "" = the model's own, else 0.5; ignored for a classifier). Returns the CLI's JSON (image, model, probabilities, boxes, cam, ground_truth, iou, timings_ms) and
        the four panels as image files (prediction, comparison and CAM as JPEG, probabilities as PNG)."""
        radiograph = read_upload(image)
        settings = Settings.from_controls(source, device, method, target, threshold, score_threshold)
        boxes = boxes_text.parse_boxes_text(truth) or None
        result = actions.analyse_case(self.cache, radiograph, settings, boxes, progress=progress_reporter(progress), lookup=self.resources.truth_lookup)
        return (result.json, *view.write_page_panels(result.panels, self.resources.panel_root).values())


def create_event_handlers(ui: UI, resources: res.AppResources) -> Handlers:
    """Wire the components of ``ui`` to :class:`Handlers` (call inside the same ``gr.Blocks``)."""
    h = Handlers(ui, resources)
    heavy = dict(concurrency_id="model", concurrency_limit=res.concurrency_limit())
    # Progress and error badges go to the status bar only, so a failed step never masks the last result; after a
    # failure the status bar says so instead of keeping the last success under the red badge.
    ui_heavy = dict(heavy, api_visibility="private", show_progress_on=[ui.status])
    ui_light = dict(queue=False, api_visibility="private", show_progress_on=[ui.status])
    quiet = dict(queue=False, api_visibility="private", show_progress="hidden")

    def then_say_failures(dependency: Any) -> None:
        dependency.failure(h.failed, None, ui.status, **quiet)

    # On a ZeroGPU Space the handlers that run the model borrow a GPU per call (zerogpu.on_gpu; elsewhere unchanged).
    gpu = zerogpu.on_gpu
    analyse = gpu(h.analyse, zerogpu.CASE_SECONDS, ui.case_outputs)
    analyse_inputs = [ui.upload, *ui.controls, ui.case_state, ui.review_state]
    analyse_triggers = [ui.analyse_btn.click, ui.upload.upload]
    then_say_failures(gr.on(analyse_triggers, analyse, analyse_inputs, ui.case_outputs, **ui_heavy))
    cam_triggers = [ui.method.input, ui.target.input, ui.threshold.input, ui.score.submit]
    settings_inputs = [ui.case_state, *ui.controls, ui.review_state]
    settings = gpu(h.settings, zerogpu.CASE_SECONDS, ui.view_outputs)
    settings_event = gr.on(cam_triggers, settings, settings_inputs, ui.view_outputs, trigger_mode="always_last", **ui_heavy)
    then_say_failures(settings_event)
    drawn = ui.annotator if ui.annotator is not None else gr.State(None)
    apply_inputs = [ui.case_state, ui.truth_text, drawn, ui.drawn_state, ui.review_state]
    apply, nih = (gpu(fn, zerogpu.CASE_SECONDS, ui.case_outputs) for fn in (h.apply, h.nih))
    then_say_failures(ui.apply_btn.click(apply, apply_inputs, ui.case_outputs, **ui_heavy))
    then_say_failures(ui.nih_btn.click(nih, [ui.case_state, ui.review_state], ui.case_outputs, **ui_heavy))
    if ui.annotator is not None:
        draw_inputs = [ui.annotator, ui.case_state, ui.truth_text, ui.drawn_state]
        ui.annotator.change(h.draw, draw_inputs, [ui.truth_text, ui.drawn_state], **quiet)
    save_io = [ui.case_state, ui.note, ui.review_state], [ui.review_state, ui.table]
    then_say_failures(ui.save_btn.click(h.save, *save_io, **ui_light))
    then_say_failures(ui.csv_btn.click(h.export_csv, ui.review_state, ui.downloads, **ui_light))
    then_say_failures(ui.report_btn.click(h.export_report, ui.case_state, ui.downloads, **ui_heavy))
    if ui.gallery is not None:
        chosen = ui.gallery.select(h.example, None, ui.upload, **ui_light)
        then_say_failures(chosen.success(analyse, analyse_inputs, ui.case_outputs, **ui_heavy))
    api = ui.api
    api_inputs = [ui.upload, ui.source, api["device"], api["method"], api["target"], api["threshold"], ui.truth_text, api["score"]]
    api_outputs = [ui.json_view, *ui.panels.values()]
    predict = gpu(h.predict, zerogpu.CASE_SECONDS)
    api["trigger"].click(predict, api_inputs, api_outputs, api_name="predict", api_description=h.predict.__doc__, **heavy)
    wire_side(ui.side, ui, resources, heavy, then_say_failures)
    h.analyse_event = (analyse, analyse_inputs, ui.case_outputs, ui_heavy)
    return h


# -------------------------------------------------------------------------------------------------------- app
def build_app(resources: res.AppResources) -> gr.Blocks:
    """The Blocks of the app, wired to ``resources`` (model cache, examples, export folder): the single-case page
    and the audit page, in two tabs."""
    service = AuditService(resources)
    # delete_cache: uploads and rendered panels in Gradio's cache older than 2 h are removed every 30 min.
    with gr.Blocks(title="cxrdemo", fill_width=True, delete_cache=(1800, 7200)) as demo:
        gr.Markdown(f"# {TITLE}", elem_id="title")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Tabs(selected="case", elem_id="tabs") as tabs:
            with gr.Tab("Single case", id="case", elem_id="case-tab"):
                ui = create_ui(resources)
            # The audit page's content is drawn by the browser only when the tab is opened (render_children=False).
            with gr.Tab("Audit a data set", id="audit", elem_id="audit-tab") as audit_tab:
                audit = create_audit_page(service, resources.default.source, resources.default.device)
        h = create_event_handlers(ui, resources)

        def open_case(path: str, run: AuditRun, index: int) -> dict:
            return {**h.open_case(path, run, index), tabs: gr.Tabs(selected="case")}

        outputs = [ui.upload, ui.source, ui.device, ui.method, ui.target, ui.threshold, tabs]
        wire_audit(audit, service, audit_tab, demo, open_case, outputs, h.analyse_event)
    return demo


def launch_options(resources: res.AppResources) -> dict[str, Any]:
    """Keyword arguments of ``launch`` shared by ``main`` and the tests (theme/css live here in Gradio 6)."""
    return dict(
        max_file_size=max_upload_bytes(),
        allowed_paths=[str(resources.examples_folder), str(resources.export_root), str(resources.panel_root)],
        theme=gr.themes.Soft(),
        css=CSS,
        head=HEAD,
        footer_links=["api", "gradio"],
        state_session_capacity=STATE_SESSIONS,
    )


def prepare(resources: res.AppResources | None = None, warm: bool = True) -> tuple[gr.Blocks, res.AppResources]:
    """Build the app and its queue; with ``warm``, load the default model in the background meanwhile."""
    # A server that runs for days stays flat (cxrdemo.webapp.housekeeping; measured by bench/load.py): malloc
    # arenas capped, and Gradio's scheduled cache clean-up made safe against files added while it runs.
    housekeeping.limit_malloc_arenas(2)
    housekeeping.harden_gradio_cache_cleanup()
    res.check_settings()  # every numeric setting, once, before anything is built
    resources = resources or res.make_resources(REPO)
    # On a ZeroGPU Space, spaces is imported before any layout asks torch for devices (it emulates CUDA there), and
    # the model is loaded by the first GPU call (in ZeroGPU's worker process), not by a warm-up in this one.
    zero_gpu = zerogpu.load_spaces() is not None
    # Gradio sets matplotlib's backend around every queued event; with the backend set to "agg" now (what it sets)
    # that is a no-op, and never races the warm-up thread while it imports grad-cam with matplotlib stood in for
    # (cxrdemo.lazy_imports): a first request during the warm-up otherwise failed with a RecursionError.
    import matplotlib

    matplotlib.use("agg")
    if warm and not zero_gpu:
        threading.Thread(target=_warm, args=(resources,), name="cxrdemo-warm-up", daemon=True).start()
    demo = build_app(resources)
    # Queue: model jobs wait their turn (see docs/app.md, "Concurrency"); a bounded queue refuses floods.
    demo.queue(default_concurrency_limit=res.concurrency_limit(), max_size=64)
    return demo, resources


def _warm(resources: res.AppResources) -> None:
    try:
        seconds = warm_up(resources.cache, resources.default)
        LOG.info("default model ready in %.1f s", seconds)
    except CxrDemoError as exc:
        LOG.warning("default model not loaded at start-up: %s", view.describe_error(exc))
    except Exception:  # never kill the server from the warm-up thread
        LOG.exception("warm-up failed")


def main() -> None:
    """``python app.py``: serve on ``GRADIO_SERVER_NAME``:``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        res.check_settings()  # a bad numeric setting stops the app here, with one line naming the variable
    except CxrDemoError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo, resources = prepare()
    housekeeping.remove_on_exit(resources.export_root)  # a temporary folder of this process (panels, exports, audits)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=res.server_port(),
        **launch_options(resources),
    )


if __name__ == "__main__":
    main()
