"""The audit page (Gradio): pick a data set (by name: only the app's examples and ``CXRDEMO_AUDIT_DATASETS``), the
model, CAM methods and options; run with a progress bar and a Stop button; read the tables, the case gallery
(worst first by a chosen metric; a click opens the case on the single-case page), download the report as a zip.
Also the ``audit`` endpoint. The work is :mod:`.audit_runs`' and :mod:`.audit_view`'s.

Audits have their own concurrency group, limit 1: a second visitor waits in Gradio's queue and reads their position
on the page (:func:`.audit_runs.waiting_message`); Stop stops only their own run (the engine's stop event) or takes
them out of the line. Everything else on the page (choosing, sorting, opening a case) skips the queue. The tab's
content is only drawn by the browser when the tab is opened, and nothing is computed before a run.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, fields
from typing import Any, Callable

import gradio as gr

from ..cams import CAM_METHOD_KEYS, CAM_THRESHOLDS, DEFAULT_CAM_THRESHOLD, method_name
from ..device import available_devices
from ..errors import InputError
from ..render.casepicture import legend_html
from . import audit_view
from .audit_limits import DEFAULT_ROAD_IMAGES, DEFAULT_SANITY_IMAGES, AuditLimits, field_limits
from .audit_runs import AuditCancelled, AuditRequest, AuditRun, AuditService, waiting_message
from .datasets import ENV
from .ui_common import checked_number, guarded, guarded_stream, owner, source_field
from .zerogpu import audit_seconds, on_gpu

INTRO = (
    "Run the model over a data set and judge its explanations: AUC per class, how well each CAM method's map falls "
    "on the radiologists' boxes (every figure with a 95% bootstrap CI), optionally faithfulness (ROAD) and the "
    "randomization sanity check. The gallery lists every boxed case worst first; click one to open it on the "
    "single-case page. One audit runs at a time; yours waits its turn."
)
READY = "Pick a data set and the options, then *Run audit*."


@dataclass
class AuditUI:
    """The audit tab's components (``api``: the endpoint's hidden inputs and outputs)."""

    dataset: gr.Dropdown
    dataset_info: gr.Markdown
    source: gr.Textbox | gr.Dropdown
    device: gr.Dropdown
    methods: gr.CheckboxGroup
    threshold: gr.Radio
    max_images: gr.Number
    faithfulness: gr.Checkbox
    faithfulness_images: gr.Number
    sanity: gr.Checkbox
    sanity_images: gr.Number
    unseen: gr.Checkbox
    run_btn: gr.Button
    stop_btn: gr.Button
    status: gr.Markdown
    progress: gr.Markdown
    download: gr.DownloadButton
    summary: gr.Markdown
    sort: gr.Dropdown
    legend: gr.HTML
    gallery: gr.Gallery
    auc: gr.Markdown
    maps: gr.Markdown
    faith_box: gr.Accordion
    faith: gr.Markdown
    sanity_box: gr.Accordion
    sanity_md: gr.Markdown
    sanity_plot: gr.Image
    baseline_box: gr.Accordion
    baseline_md: gr.Markdown
    baseline_plot: gr.Image
    run_state: gr.State
    order_state: gr.State
    api: dict[str, gr.components.Component]

    @property
    def request_inputs(self) -> list[gr.components.Component]:
        return [self.dataset, self.source, self.device, self.methods, self.threshold, self.max_images, self.faithfulness,
                self.faithfulness_images, self.sanity, self.sanity_images, self.unseen]  # fmt: skip

    @property
    def result_outputs(self) -> list[gr.components.Component]:
        return [self.status, self.download, self.summary, self.gallery, self.run_state, self.order_state, self.auc,
                self.maps, self.faith_box, self.faith, self.sanity_box, self.sanity_md, self.sanity_plot,
                self.baseline_box, self.baseline_md, self.baseline_plot]  # fmt: skip


def create_audit_page(service: AuditService, default_source: str, default_device: str) -> AuditUI:
    """Lay out the audit page (inside its ``gr.Tab``)."""
    names = service.datasets.names()
    notes = service.datasets.notes
    default_dataset = names[0] if names else None
    run_state = gr.State(None, time_to_live=7200)  # AuditRun: the result and where its files are (2 h unused)
    order_state = gr.State([])  # case indices in the gallery's order
    gr.Markdown(INTRO, elem_id="audit-intro")
    with gr.Row(equal_height=False, elem_id="audit-top"):
        with gr.Column(scale=1, min_width=300, elem_id="audit-controls"):
            dataset = gr.Dropdown(names, value=default_dataset, label="Data set", elem_id="audit-dataset",
                                  info=f"the app's examples and the data sets listed in {ENV}")  # fmt: skip
            info = "" if names else f"No data set: set CXRDEMO_EXAMPLES_DIR (example images) or {ENV} (see docs/audit.md)."
            dataset_info = gr.Markdown(info + "".join(f"\n\n> {n}" for n in notes), elem_id="audit-dataset-info")
            source = source_field(default_source, "Model source", "audit-source",
                                  "empty: default weights; or a folder, or owner/name@rev")  # fmt: skip
            device = gr.Dropdown(available_devices(), value=default_device, label="Device", elem_id="audit-device")
            methods = gr.CheckboxGroup([(method_name(m), m) for m in CAM_METHOD_KEYS], value=["gradcam"], label="CAM methods",
                                       elem_id="audit-methods")  # fmt: skip
            threshold = gr.Radio(list(CAM_THRESHOLDS), value=DEFAULT_CAM_THRESHOLD, label="CAM box threshold (of 255)",
                                 elem_id="audit-threshold")  # fmt: skip
            counts = count_fields()  # (default, maximum): on a public server the caps are the maxima
            max_images = checked_number(counts["max_images"][0], precision=0, minimum=0, maximum=counts["max_images"][1],
                                   label="Images (0 = all; boxed images first)", elem_id="audit-max",
                                   info=_cap_info(counts["max_images"][1]))  # fmt: skip
            with gr.Row():
                faithfulness = gr.Checkbox(False, label="Faithfulness (ROAD; slow)", elem_id="audit-faith")
                road, road_cap = counts["faithfulness_images"]
                faithfulness_images = checked_number(road, precision=0, minimum=0, maximum=road_cap, label="ROAD images",
                                                min_width=100, elem_id="audit-road", info=_cap_info(road_cap))  # fmt: skip
            with gr.Row():
                sanity = gr.Checkbox(False, label="Sanity: randomization (slow)", elem_id="audit-sanity")
                few, few_cap = counts["sanity_images"]
                sanity_images = checked_number(few, precision=0, minimum=0, maximum=few_cap, label="Sanity images", min_width=100,
                                          elem_id="audit-sanity-n", info=_cap_info(few_cap))  # fmt: skip
            unseen = gr.Checkbox(False, label="Only images the model never saw", elem_id="audit-unseen",
                                 info="leave out the model's training and validation images (a test, not a re-check)")  # fmt: skip
            with gr.Row():
                run_btn = gr.Button("Run audit", variant="primary", elem_id="audit-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="audit-stop")
        with gr.Column(scale=2, min_width=300, elem_id="audit-results"):
            status = gr.Markdown(READY, elem_id="audit-status", container=True, padding=True)
            progress = gr.Markdown("", elem_id="audit-progress", min_height=40)
            download = gr.DownloadButton("Download the report (zip)", visible=False, elem_id="audit-download")
            summary = gr.Markdown("", elem_id="audit-summary", elem_classes=["wide-tables"])
            choices = [(label, key) for label, key in audit_view.SORT_CHOICES]
            sort = gr.Dropdown(choices, value=audit_view.DEFAULT_SORT, label="Sort the cases by (worst first)",
                               elem_id="audit-sort")  # fmt: skip
            legend = gr.HTML(legend_html(), elem_id="audit-legend")  # the key of the pictures, as in gallery.html
            gallery = gr.Gallery(label="Boxed cases, worst first: click one to open it on the single-case page", columns=3,
                                 height=560, allow_preview=False, object_fit="contain", elem_id="audit-gallery")  # fmt: skip
    tables = dict(elem_classes=["wide-tables"])
    with gr.Accordion("Classification: AUC per class [95% CI]", open=False, elem_id="audit-auc-box"):
        auc = gr.Markdown("", elem_id="audit-auc", **tables)
    with gr.Accordion("Explanations: plausibility (does the map fall on the radiologist's box?) [95% CI]", open=True,
                      elem_id="audit-maps-box"):  # fmt: skip
        maps = gr.Markdown("", elem_id="audit-maps", **tables)
    with gr.Accordion("Explanations: faithfulness (ROAD)", open=True, visible=False, elem_id="audit-faith-box") as faith_box:
        faith = gr.Markdown("", elem_id="audit-faith", **tables)
    with gr.Accordion("Sanity: cascading randomization", open=True, visible=False, elem_id="audit-sanity-box") as sanity_box:
        sanity_plot = gr.Image(show_label=False, type="filepath", interactive=False, elem_id="audit-sanity-plot")
        sanity_md = gr.Markdown("", elem_id="audit-sanity", **tables)
    with gr.Accordion("Classification against the baseline", open=True, visible=False, elem_id="audit-baseline-box") as baseline_box:
        baseline_plot = gr.Image(show_label=False, type="filepath", interactive=False, elem_id="audit-baseline-plot")
        baseline_md = gr.Markdown("", elem_id="audit-baseline", **tables)
    api = dict(
        dataset=gr.Textbox(default_dataset or "", visible=False),
        source=gr.Textbox("", visible=False),
        device=gr.Textbox("auto", visible=False),
        methods=gr.Textbox("gradcam", visible=False),
        threshold=checked_number(DEFAULT_CAM_THRESHOLD, precision=0, visible=False),
        max_images=checked_number(0, precision=0, visible=False),
        faithfulness=gr.Checkbox(False, visible=False),
        faithfulness_images=checked_number(DEFAULT_ROAD_IMAGES, precision=0, visible=False),
        sanity=gr.Checkbox(False, visible=False),
        sanity_images=checked_number(DEFAULT_SANITY_IMAGES, precision=0, visible=False),
        unseen=gr.Checkbox(False, visible=False),
        report=gr.JSON(visible=False),
        zip=gr.File(visible=False),
    )
    scope = locals()
    return AuditUI(**{f.name: scope[f.name] for f in fields(AuditUI)})


def count_fields() -> dict[str, tuple[int, int | None]]:
    """``(default, maximum)`` of the page's count fields on this server (:func:`.audit_limits.field_limits`); with a
    malformed cap variable the fields have no maximum and every run says what is wrong."""
    try:
        limits = AuditLimits.from_env()
    except InputError:
        limits = AuditLimits()
    return field_limits(limits)


def _cap_info(cap: int | None) -> str | None:
    return f"at most {cap} on this server" if cap is not None else None


def _request(dataset, source, device, methods, threshold, max_images, faithfulness, faithfulness_images, sanity, sanity_images,
             unseen=False) -> AuditRequest:  # fmt: skip
    """The request as the controls (or the API) gave it; the counts are checked and capped by the service."""
    return AuditRequest(
        dataset=str(dataset or ""), source=str(source or ""), device=str(device or "auto"),
        methods=methods if not isinstance(methods, str) else [m for m in methods.split(",") if m.strip()],
        threshold=threshold if threshold not in (None, "") else DEFAULT_CAM_THRESHOLD, max_images=max_images,
        faithfulness=bool(faithfulness), faithfulness_images=faithfulness_images, sanity=bool(sanity),
        sanity_images=sanity_images, unseen=bool(unseen),
    )  # fmt: skip


class AuditHandlers:
    """The audit page's handlers and the ``audit`` endpoint."""

    def __init__(self, ui: AuditUI, service: AuditService) -> None:
        self.ui, self.service = ui, service

    @guarded
    def describe(self, dataset):
        notes = "".join(f"\n\n> {n}" for n in self.service.datasets.notes)
        return self.service.datasets.get(dataset).describe() + notes if dataset else notes.strip()

    @guarded
    def announce(self, request: gr.Request):
        position = self.service.board.join(owner(request))
        if position:
            message = waiting_message(position)
            gr.Info(message, duration=4)  # the status line keeps it
            return message
        return "Starting the audit."

    @guarded_stream
    def run(self, dataset, source, device, methods, threshold, max_images, faithfulness, faithfulness_images, sanity,
            sanity_images, unseen, request: gr.Request, progress=gr.Progress()):  # fmt: skip
        """The page's run: the status line follows the run's stages; Stop (or a closed page) closes this generator,
        which stops the audit after its batch and shows what was done (a partial report)."""
        req = _request(dataset, source, device, methods, threshold, max_images, faithfulness, faithfulness_images, sanity,
                       sanity_images, unseen)  # fmt: skip
        ui, shown = self.ui, None
        try:
            for update in self.service.stream(req, owner(request)):
                if update.run is not None:
                    yield self.show(update.run, audit_view.DEFAULT_SORT, update.run.status)
                    return
                progress(update.fraction, desc=update.status)
                yield {ui.status: update.status if update.status != shown else gr.skip()}
                shown = update.status
        except AuditCancelled as exc:
            yield {ui.status: str(exc)}

    def show(self, run: AuditRun, key: str, status: str) -> dict:
        ui, result = self.ui, run.result
        if run.notes:
            status += " " + "; ".join(run.notes) + "."
        order = audit_view.worst_first(result, key)
        faith, sanity, baseline = (audit_view.faithfulness_table(result), audit_view.sanity_tables(result),
                                   audit_view.baseline_tables(result))  # fmt: skip
        if not order:
            status += " No case has a ground-truth box: the gallery is empty."
        return {
            ui.status: status,
            ui.download: gr.DownloadButton(value=str(run.zip_path), visible=True),
            ui.summary: audit_view.summary(run),
            ui.gallery: gr.Gallery(audit_view.gallery_items(run, order, key), selected_index=None),
            ui.run_state: run,
            ui.order_state: order,
            ui.auc: audit_view.auc_table(result),
            ui.maps: audit_view.map_tables(result),
            ui.faith_box: gr.Accordion(visible=bool(faith)),
            ui.faith: faith,
            ui.sanity_box: gr.Accordion(visible=bool(sanity)),
            ui.sanity_md: sanity,
            ui.sanity_plot: audit_view.figure(run, "sanity.png"),
            ui.baseline_box: gr.Accordion(visible=bool(baseline)),
            ui.baseline_md: baseline,
            ui.baseline_plot: audit_view.baseline_figure(run),
        }

    @guarded
    def stop(self, request: gr.Request):
        """Stop: out of the line, or the run ends after its batch; its partial report is shown (kept, resumable)."""
        me = owner(request)
        message = self.service.board.stop(me)
        run = self.service.board.last_run(me)
        if run is not None and run.partial and run.status == message:
            return self.show(run, audit_view.DEFAULT_SORT, run.status)
        return {self.ui.status: message}

    def failed(self, request: gr.Request):
        """After a failed, refused or stopped run: leave the line if still waiting (the run itself always leaves it);
        after a Stop, say what Stop said (this may arrive after it)."""
        board, me = self.service.board, owner(request)
        if board.position(me):
            board.leave(me)
        return board.stopped_message(me) or "The audit did not run to the end (see the message)."

    def left(self, request: gr.Request):
        self.service.board.leave(owner(request))

    @guarded
    def sort(self, run, key):
        if run is None:
            return {self.ui.order_state: [], self.ui.gallery: gr.skip()}
        order = audit_view.worst_first(run.result, key)
        return {self.ui.order_state: order, self.ui.gallery: gr.Gallery(audit_view.gallery_items(run, order, key))}

    @guarded_stream
    def audit(self, dataset, source, device, methods, threshold, max_images, faithfulness, faithfulness_images, sanity,
              sanity_images, unseen=False, request: gr.Request = None, progress=gr.Progress()):  # fmt: skip
        """Audit a data set the app offers (by name). methods: comma-separated CAM methods; max_images: 0 = every
        image, else the first N (boxed images first); faithfulness / sanity: ROAD / the randomization cascade on the
        given number of images; unseen: only images the model never saw. On a public server the counts and the
        number of methods are capped (docs/audit-verdicts.md). Returns report.json's document (null for undefined
        numbers; "partial" is set when the run was stopped) and the report folder as a zip. One audit runs at a
        time; others wait in the queue. Cancelling the job stops the audit."""
        req = _request(dataset, source, device, methods, threshold, max_images, faithfulness, faithfulness_images, sanity,
                       sanity_images, unseen)  # fmt: skip
        # closed explicitly when Gradio closes this generator (a cancelled job, Stop): the stream's clean-up sets the
        # run's stop event at once, never later when the garbage collector happens to finalise it
        with contextlib.closing(self.service.stream(req, owner(request))) as updates:
            for update in updates:
                if update.run is not None:
                    yield audit_view.report_json(update.run.result), str(update.run.zip_path)
                    return
                progress(update.fraction, desc=update.status)
                yield gr.skip(), gr.skip()


def wire_audit(
    ui: AuditUI,
    service: AuditService,
    tab: gr.Tab,
    demo: gr.Blocks,
    open_case: Callable[..., Any],
    open_outputs: list[gr.components.Component],
    analyse: tuple[Callable[..., Any], list, list, dict],
) -> AuditHandlers:
    """Wire the audit page; ``open_case(case_file, run, index)`` fills ``open_outputs`` (the single-case page's
    file, model, method, target, threshold and the tabs), then ``analyse = (fn, inputs, outputs, kwargs)`` runs."""
    h = AuditHandlers(ui, service)
    light = dict(queue=False, api_visibility="private")
    tab.select(h.describe, ui.dataset, ui.dataset_info, show_progress="hidden", **light)
    ui.dataset.input(h.describe, ui.dataset, ui.dataset_info, show_progress="hidden", **light)
    audit_group = dict(concurrency_id="audit", concurrency_limit=1)
    announced = ui.run_btn.click(h.announce, None, ui.status, show_progress="hidden", **light)
    run = on_gpu(h.run, audit_seconds, ui.result_outputs)  # a GPU per audit on a ZeroGPU Space; elsewhere unchanged
    running = announced.success(run, ui.request_inputs, ui.result_outputs, api_visibility="private",
                                show_progress_on=[ui.progress], **audit_group)  # fmt: skip
    running.failure(h.failed, None, ui.status, show_progress="hidden", **light)
    ui.stop_btn.click(h.stop, None, ui.result_outputs, cancels=[running], show_progress="hidden", **light)
    demo.unload(h.left)
    ui.sort.input(h.sort, [ui.run_state, ui.sort], [ui.order_state, ui.gallery], show_progress="hidden", **light)

    @guarded
    def chosen(run, order, evt: gr.SelectData):
        if run is None or evt.index is None or evt.index >= len(order):
            raise gr.Error("run an audit first, then click one of its cases", print_exception=False)
        index = order[evt.index]
        return open_case(service.case_file(run, index), run, index)

    fn, inputs, outputs, kwargs = analyse
    picked = ui.gallery.select(chosen, [ui.run_state, ui.order_state], open_outputs, show_progress="hidden", **light)
    picked.success(None, js="() => window.scrollTo({top: 0})")  # the case page from its top
    picked.success(fn, inputs, outputs, **kwargs)
    api = ui.api
    api_inputs = [api[k] for k in ("dataset", "source", "device", "methods", "threshold", "max_images", "faithfulness",
                                   "faithfulness_images", "sanity", "sanity_images", "unseen")]  # fmt: skip
    trigger = gr.Button("audit", visible=False)
    trigger.click(on_gpu(h.audit, audit_seconds), api_inputs, [api["report"], api["zip"]], api_name="audit", api_description=h.audit.__doc__,
                  **audit_group)  # fmt: skip
    return h
