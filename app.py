"""cxrdemo's web app (Gradio 6): see what a chest X-ray model does on a radiograph. Research demo, not a diagnostic device.

This file only wires Gradio components to the functions of :mod:`cxrdemo.session`; all logic lives in the package.

Run: ``python app.py`` serves on http://127.0.0.1:7860 (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` override;
a Hugging Face Space sets them). Environment: ``CXRDEMO_WEIGHTS`` (default model), ``CXRDEMO_EXAMPLES_DIR`` (example
images, default ``examples/images``), ``CXRDEMO_MAX_UPLOAD_MB`` (upload limit, default 50), ``CXRDEMO_CONCURRENCY``
(model jobs at once, default 1).

API: ``predict`` (``gradio_client.Client(url).predict(handle_file(path), ..., api_name="/predict")``) returns the
CLI's JSON and the four rendered panels; see README.md.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from cxrdemo import session as s
from cxrdemo.device import available_devices
from cxrdemo.errors import CxrDemoError
from cxrdemo.cams import CAM_METHOD_KEYS as CAM_METHODS, CAM_THRESHOLDS, DEFAULT_CAM_THRESHOLD

try:  # drawing boxes needs the gradio_image_annotation component; typed coordinates work without it
    from gradio_image_annotation import image_annotator
except ImportError:  # pragma: no cover - it is in requirements.txt
    image_annotator = None

REPO = Path(__file__).resolve().parent
LOG = logging.getLogger("cxrdemo.app")
DISCLAIMER = "Research demo, not a diagnostic device: do not use it to make clinical decisions."
TITLE = "cxrdemo: what does your chest X-ray model see?"
PANEL_NAMES = ("(a) Prediction", "(b) Ground truth vs prediction vs CAM", "(c) Probabilities and thresholds", "(d) Grad-CAM")
#: Browser sessions whose state (the current case, a few MB) is kept; the oldest are dropped beyond this.
STATE_SESSIONS = 200
CSS = """
#disclaimer {font-weight: 600; color: var(--body-text-color-subdued);}
#panels {display: grid !important; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;}
#panels > div {min-width: 0 !important;}
@media (max-width: 1100px) {#panels {grid-template-columns: repeat(2, minmax(0, 1fr));}}
@media (max-width: 600px) {#panels {grid-template-columns: minmax(0, 1fr);}}
.panel-title p {margin: 0; font-size: 0.9em;}
#annotator {max-width: 560px; margin: 0 auto;}
#summary table {margin: 0.3em 0;}
"""


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure of a handler into a one-line ``gr.Error`` (the page keeps its inputs, the server runs on)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CxrDemoError as exc:
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except Exception as exc:  # a bug: log the traceback, show one line
            LOG.exception("handler %s failed", fn.__name__)
            raise gr.Error(s.describe_error(exc), title="Unexpected error", print_exception=False) from None

    return wrapper


def progress_reporter(progress: gr.Progress) -> s.Progress:
    """Adapt ``gr.Progress`` to the session's ``report(fraction, message)``."""
    return lambda fraction, message: progress(fraction, desc=message)


def concurrency_limit() -> int:
    """Model jobs run at once (``CXRDEMO_CONCURRENCY``, default 1: see README.md, "Concurrency")."""
    try:
        return max(1, int(os.environ.get("CXRDEMO_CONCURRENCY", "1")))
    except ValueError:
        return 1


def build_app(resources: s.AppResources) -> gr.Blocks:
    """The Blocks of the app, wired to ``resources`` (model cache, examples, export folder)."""
    classes = resources.default_classes()
    heavy = dict(concurrency_id="model", concurrency_limit=concurrency_limit())
    light = dict(queue=False, api_visibility="private")

    # delete_cache: uploads and rendered panels in Gradio's cache older than 2 h are removed every 30 min.
    with gr.Blocks(title="cxrdemo", fill_width=True, delete_cache=(1800, 7200)) as demo:
        # s.Case: the cached forward pass of the current radiograph (a few MB; dropped after 2 h unused)
        case_state = gr.State(None, time_to_live=7200)
        review_state = gr.State(s.ReviewLog())  # s.ReviewLog: this browser session's reviewed cases

        gr.Markdown(f"# {TITLE}")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                upload = gr.File(
                    label="Radiograph (PNG, JPEG or DICOM)",
                    file_types=[".png", ".jpg", ".jpeg", ".dcm"],
                    type="filepath",
                    elem_id="upload",
                )
                analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse")
                source = gr.Textbox(
                    label="Model source",
                    placeholder="empty: default weights; or a folder, or owner/name@rev",
                    value=resources.default.source,
                    elem_id="source",
                )
                device = gr.Dropdown(available_devices(), value=resources.default.device, label="Device", elem_id="device")
            with gr.Column(scale=1, min_width=320):
                method = gr.Dropdown(
                    [(s.CAM_METHOD_NAMES.get(m, m), m) for m in CAM_METHODS],
                    value=resources.default.method,
                    label="CAM method",
                    elem_id="method",
                )
                target = gr.Dropdown(
                    s.target_choices(classes),
                    value=s.TOP1,
                    label="CAM target class",
                    allow_custom_value=True,
                    elem_id="target",
                )
                threshold = gr.Radio(
                    list(CAM_THRESHOLDS),
                    value=DEFAULT_CAM_THRESHOLD,
                    label="CAM box threshold (of 255)",
                    info="CLN studied 127 and 180",
                    elem_id="threshold",
                )
            with gr.Column(scale=2, min_width=320):
                if resources.examples:
                    gallery = gr.Gallery(
                        [(s.thumbnail(ex.path), ex.caption) for ex in resources.examples if ex.path],
                        label="Examples (NIH ChestX-ray14; click one)",
                        columns=4,
                        height=320,
                        allow_preview=False,
                        object_fit="contain",
                        elem_id="examples",
                    )
                else:
                    gallery = None
                    gr.Markdown(
                        f"No example images in `{resources.examples_folder}`: set `CXRDEMO_EXAMPLES_DIR` "
                        "(see examples/README.md)."
                    )

        status = gr.Markdown(
            "Upload a radiograph or click an example.", elem_id="status", min_height=56, container=True, padding=True
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                summary = gr.Markdown("", elem_id="summary")
            with gr.Column(scale=2, min_width=300):
                label = gr.Label(
                    label="Ranked probabilities (top 5; every class in panel c)",
                    num_top_classes=5,
                    show_heading=False,
                    elem_id="probabilities",
                )
        with gr.Row(elem_id="panels"):  # 4 across, 2x2 below 1100 px, one column below 600 px (CSS above)
            panels = []
            for i, name in enumerate(PANEL_NAMES):
                with gr.Column(min_width=200):
                    gr.Markdown(f"**{name}**", elem_classes=["panel-title"])
                    panels.append(
                        gr.Image(
                            show_label=False,
                            type="filepath",
                            interactive=False,
                            buttons=["download", "fullscreen"],
                            elem_id=f"panel-{i}",
                        )
                    )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                gr.Markdown(
                    "**Ground truth.** NIH's box list is used when it knows the image. Otherwise draw a box "
                    "(pick its class in the dialog) or type `x1, y1, x2, y2, Class` per line in original pixels, "
                    "then *Apply ground truth*."
                )
                if image_annotator is not None:
                    annotator = image_annotator(
                        None,
                        label="Draw ground-truth boxes",
                        label_list=list(classes),
                        sources=[],
                        image_type="filepath",
                        show_download_button=False,
                        show_clear_button=False,
                        show_remove_button=False,
                        elem_id="annotator",
                    )
                else:
                    annotator = None
                truth_text = gr.Textbox(
                    label="Ground-truth boxes (x1, y1, x2, y2, Class; one per line)",
                    lines=2,
                    placeholder="149, 519, 262, 564, Atelectasis",
                    value="",
                    elem_id="truth",
                )
                with gr.Row():
                    apply_btn = gr.Button("Apply ground truth", elem_id="apply-truth")
                    nih_btn = gr.Button("Back to NIH's boxes", elem_id="nih-truth")
            with gr.Column(scale=1, min_width=320):
                note = gr.Textbox(label="Review note for this case", lines=3, elem_id="note")
                save_btn = gr.Button("Save review", elem_id="save-review")
                table = gr.Dataframe(
                    headers=["image", "class", "box IoU", "CAM IoU", "note"],
                    value=[],
                    label="Reviewed cases",
                    interactive=False,
                    elem_id="reviewed",
                )
                with gr.Row():
                    csv_btn = gr.Button("Export CSV", elem_id="export-csv")
                    report_btn = gr.Button("Export report (PNG + JSON)", elem_id="export-report")
                downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, height=140, elem_id="downloads"
                )
        with gr.Accordion("Prediction JSON (same as the CLI and the predict API)", open=False):
            json_view = gr.JSON(label="prediction", elem_id="json")
        predict_trigger = gr.Button("predict", visible=False)  # the documented API endpoint, called by clients

        # ------------------------------------------------------------------------------------------ handlers
        controls = [source, device, method, target, threshold]
        view_outputs = [case_state, status, summary, *panels, label, json_view, target]
        full_outputs = view_outputs + ([annotator] if annotator is not None else []) + [truth_text, note]

        def show(view: s.CaseView, log: s.ReviewLog | None, full: bool) -> tuple[Any, ...]:
            for message in view.messages:
                gr.Warning(message)
            # Without a new forward pass, panels (a) and (c) cannot have changed: the browser keeps its copies.
            names = s.PANEL_NAMES if view.forward_ran else ("comparison", "cam")
            p = s.write_panels(view.panels, resources.panel_root, names=names)
            target_update = gr.Dropdown(choices=view.target_choices, value=view.case.settings.target or s.TOP1)
            prediction, probabilities = p.get("prediction", gr.skip()), p.get("probabilities", gr.skip())
            out: tuple[Any, ...] = (
                view.case, view.status, view.summary, prediction, p["comparison"], probabilities, p["cam"],
                view.label, view.json, target_update,
            )  # fmt: skip
            if full:
                if annotator is not None:
                    out += (s.annotator_value(view.case),)
                out += (s.format_boxes_text(view.case.truth or ()), s.note_for(log, view.case))
            return out

        @guarded
        def on_analyse(path, src, dev, meth, tgt, thr, log, progress=gr.Progress()):
            report = progress_reporter(progress)
            report(0.0, "reading the file")
            radiograph = s.read_upload(path)
            settings = s.Settings.from_controls(src, dev, meth, tgt, thr)
            return show(s.analyse_case(resources.cache, radiograph, settings, report=report), log, True)

        @guarded
        def on_settings(case, src, dev, meth, tgt, thr, log, progress=gr.Progress()):
            if case is None:  # nothing analysed yet: the new settings apply to the next analysis
                return (gr.skip(),) * len(view_outputs)
            settings = s.Settings.from_controls(src, dev, meth, tgt, thr)
            view = s.update_case(resources.cache, case, settings, report=progress_reporter(progress))
            return show(view, log, False)

        @guarded
        def on_apply(case, text, log, progress=gr.Progress()):
            return show(s.apply_truth(resources.cache, case, text, report=progress_reporter(progress)), log, True)

        @guarded
        def on_nih(case, log, progress=gr.Progress()):
            return show(s.apply_truth(resources.cache, case, "", report=progress_reporter(progress)), log, True)

        @guarded
        def on_draw(value, case):
            return s.format_boxes_text(s.boxes_from_annotator(value, case))

        @guarded
        def on_save(case, text, log):
            new_log = s.record_review(log, case, text)
            gr.Info(f"saved: {len(new_log)} reviewed case(s)")
            return new_log, s.review_table(new_log)

        @guarded
        def on_export_csv(log):
            return [str(s.export_csv(log, resources.export_root))]

        @guarded
        def on_export_report(case):
            return [str(p) for p in s.export_report(case, resources.export_root)]

        @guarded
        def on_example(evt: gr.SelectData):
            return str(resources.examples[evt.index].path)

        @guarded
        def predict(image, source, device, method, target, threshold, truth, progress=gr.Progress()):
            """Analyse one radiograph (PNG, JPEG or DICOM). Optional: model source, device, CAM method, CAM target
            class (top-1), CAM threshold (127 or 180), ground-truth boxes as 'x1, y1, x2, y2, Class' lines. Returns
            the CLI's JSON (image, model, probabilities, boxes, cam, ground_truth, iou, timings_ms) and the four
            panels as image files (prediction, comparison and CAM as JPEG, probabilities as PNG)."""
            report = progress_reporter(progress)
            radiograph = s.read_upload(image)
            settings = s.Settings.from_controls(source, device, method, target, threshold)
            truth = s.parse_boxes_text(truth) if (truth or "").strip() else None
            view = s.analyse_case(resources.cache, radiograph, settings, truth, report=report)
            return (view.json, *s.write_panels(view.panels, resources.panel_root).values())

        # ------------------------------------------------------------------------------------------- events
        # Progress and error badges go to the status bar only, so a failed step never masks the last result.
        ui_heavy = dict(heavy, api_visibility="private", show_progress_on=[status])
        ui_light = dict(light, show_progress_on=[status])
        analyse_inputs = [upload, *controls, review_state]
        gr.on([analyse_btn.click, upload.upload], on_analyse, analyse_inputs, full_outputs, **ui_heavy)
        gr.on(
            [method.input, target.input, threshold.input],
            on_settings,
            [case_state, *controls, review_state],
            view_outputs,
            trigger_mode="always_last",
            **ui_heavy,
        )
        apply_btn.click(on_apply, [case_state, truth_text, review_state], full_outputs, **ui_heavy)
        nih_btn.click(on_nih, [case_state, review_state], full_outputs, **ui_heavy)
        if annotator is not None:
            annotator.change(on_draw, [annotator, case_state], truth_text, show_progress="hidden", **light)
        save_btn.click(on_save, [case_state, note, review_state], [review_state, table], **ui_light)
        csv_btn.click(on_export_csv, review_state, downloads, **ui_light)
        report_btn.click(on_export_report, case_state, downloads, **ui_heavy)
        if gallery is not None:
            gallery.select(on_example, None, upload, **ui_light).success(
                on_analyse, analyse_inputs, full_outputs, **ui_heavy
            )
        predict_trigger.click(
            predict,
            [upload, *controls, truth_text],
            [json_view, *panels],
            api_name="predict",
            api_description=predict.__doc__,
            **heavy,
        )
    return demo


def launch_options(resources: s.AppResources) -> dict[str, Any]:
    """Keyword arguments of ``launch`` shared by ``main`` and the tests (theme/css live here in Gradio 6)."""
    return dict(
        max_file_size=s.max_upload_bytes(),
        allowed_paths=[str(resources.examples_folder), str(resources.export_root), str(resources.panel_root)],
        theme=gr.themes.Soft(),
        css=CSS,
        footer_links=["api", "gradio"],
        state_session_capacity=STATE_SESSIONS,
    )


def prepare(resources: s.AppResources | None = None, warm: bool = True) -> tuple[gr.Blocks, s.AppResources]:
    """Build the app and its queue; with ``warm``, load the default model in the background meanwhile."""
    resources = resources or s.make_resources(REPO)
    if warm:
        threading.Thread(target=_warm, args=(resources,), name="cxrdemo-warm-up", daemon=True).start()
    demo = build_app(resources)
    # Queue: model jobs wait their turn (see README.md, "Concurrency"); a bounded queue refuses floods.
    demo.queue(default_concurrency_limit=concurrency_limit(), max_size=64)
    return demo, resources


def _warm(resources: s.AppResources) -> None:
    try:
        seconds = s.warm_up(resources.cache, resources.default)
        LOG.info("default model ready in %.1f s", seconds)
    except CxrDemoError as exc:
        LOG.warning("default model not loaded at start-up: %s", exc)
    except Exception:  # never kill the server from the warm-up thread
        LOG.exception("warm-up failed")


def main() -> None:
    """``python app.py``: serve on ``GRADIO_SERVER_NAME``:``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    demo, resources = prepare()
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_options(resources),
    )


if __name__ == "__main__":
    main()
