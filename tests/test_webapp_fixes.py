"""What cxrdemo.webapp fixed after a new user's first session, without a browser (tests/test_browser.py drives the
page): the analysis is never changed after it is built, ground truth is checked once, the drawn-box text follows
the control's final value, class-agnostic CAMs say so, notes are shown once per radiograph, Hub errors in the page's
words, the upload control's suffixes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cxrdemo import compare
from cxrdemo.boxes import Box
from cxrdemo.errors import BoxError, WeightsError
from cxrdemo.imaging import IMAGE_SUFFIXES, Radiograph
from cxrdemo.webapp import actions, boxes_text, state, upload
from cxrdemo.webapp import view as webview

BOXED_IMAGE = "00000468_017.png"  # NIH: one Atelectasis box


@pytest.fixture(scope="module")
def first(boxed_view: state.CaseView) -> state.CaseView:
    return boxed_view


# ------------------------------------------------------------------------------------------ 2a: timings, once
def test_the_analysis_has_every_timing_when_built_and_never_changes(cache, settings, first: state.CaseView) -> None:
    analysis = first.case.analysis
    assert {"preprocess", "forward", "cam", "compare"} <= set(analysis.timings_ms)
    assert "render" not in analysis.timings_ms  # drawing happens after the analysis: its time is the view's
    assert first.json["timings_ms"]["render"] == pytest.approx(first.render_ms, abs=0.01) and first.render_ms > 0
    assert "render" in first.summary and first.timings_ms == {**analysis.timings_ms, "render": first.render_ms}
    before, forward = dict(analysis.timings_ms), dict(first.case.inference.timings_ms)
    again = actions.update_case(cache, first.case, replace(settings, cam=replace(settings.cam, threshold=180)))
    assert analysis.timings_ms == before and first.case.inference.timings_ms == forward  # nothing written back
    assert "cam" not in first.case.inference.timings_ms
    assert again.case.analysis is not analysis and again.redraw == ("comparison", "cam") and first.redraw == webview.PANEL_NAMES


# ------------------------------------------------------------------------------- 2b: ground truth checked once
def test_user_boxes_are_checked_once(cache, first: state.CaseView, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = compare.user_boxes

    def counting(boxes, *args, **kwargs):
        calls.append(1)
        return real(boxes, *args, **kwargs)

    monkeypatch.setattr(compare, "user_boxes", counting)
    mine = actions.apply_truth(cache, first.case, "600, 300, 800, 500, pleural-thickening")
    assert calls == [1]
    assert mine.json["ground_truth"][0]["label"] == "Pleural_Thickening"  # matched by cxrdemo.datasets.nih.match_class
    settings = mine.case.settings
    actions.update_case(cache, mine.case, replace(settings, cam=replace(settings.cam, method="gradcam++")))
    assert calls == [1]  # same model: the checked ground truth is reused
    with pytest.raises(BoxError, match="not one of the model's classes"):
        actions.apply_truth(cache, first.case, "600, 300, 800, 500, Tumour")


def test_typed_classes_are_matched_by_nih_match_class() -> None:
    classes = ["Atelectasis", "Pleural_Thickening"]
    (box,) = boxes_text.parse_boxes_text("1, 2, 30, 40, PLEURAL-THICKENING", classes)
    assert box.label == "Pleural_Thickening"
    assert boxes_text.parse_boxes_text("1, 2, 30, 40, infiltrate")[0].label == "infiltrate"  # syntax only, no classes


# ------------------------------------------------------------------------------------ 5: drawn box, final value
def _drawn(*boxes: tuple[int, int, int, int, str | None]) -> dict:
    return {"image": "x.png", "boxes": [dict(xmin=a, ymin=b, xmax=c, ymax=d, label=e) for a, b, c, d, e in boxes]}


def test_drawn_text_follows_the_final_value_only(first: state.CaseView) -> None:
    case = first.case
    nih_line = "150, 520, 262, 564, Atelectasis"
    synced = (nih_line,)
    # the control reports a new box before its class dialog (no class yet): not final
    pending = _drawn((150, 520, 262, 564, "Atelectasis"), (40, 850, 140, 930, ""))
    assert boxes_text.annotator_pending(pending) and not boxes_text.annotator_pending(_drawn((1, 2, 30, 40, "Nodule")))
    assert not boxes_text.annotator_pending(None)
    with pytest.raises(BoxError, match="no class yet"):
        boxes_text.merge_drawn(nih_line, pending, case, synced)
    # after OK: the drawn box with the class picked in the dialog, after the lines the user typed (kept in place)
    final = _drawn((150, 520, 262, 564, "Atelectasis"), (40, 850, 140, 930, "Nodule"))
    text = f"{nih_line}\n600, 300, 800, 500, Effusion"
    merged, drawn = boxes_text.merge_drawn(text, final, case, synced)
    assert merged.splitlines() == [nih_line, "600, 300, 800, 500, Effusion", "40, 850, 140, 930, Nodule"]
    assert drawn == (nih_line, "40, 850, 140, 930, Nodule")
    # Apply right after OK: the text still holds the earlier copy (the change event has not come back) and the
    # control's current value wins, so the class picked is the one applied; a box deleted in the control goes too
    stale = f"{nih_line}\n40, 850, 140, 930, Atelectasis\n600, 300, 800, 500, Effusion"
    stale_synced = (nih_line, "40, 850, 140, 930, Atelectasis")
    assert boxes_text.merge_drawn(stale, final, case, stale_synced)[0] == merged
    only_new = _drawn((40, 850, 140, 930, "Nodule"))
    assert boxes_text.merge_drawn(stale, only_new, case, stale_synced)[0].splitlines() == [
        "600, 300, 800, 500, Effusion", "40, 850, 140, 930, Nodule"
    ]  # fmt: skip
    assert boxes_text.merge_drawn("1, 2, 3", None, case, ())[0] == "1, 2, 3"  # no control: the text as typed


# ------------------------------------------------------------------------------------- 6: class-agnostic CAMs
def test_class_agnostic_cam_is_not_said_to_explain_a_class(cache, settings, first: state.CaseView) -> None:
    eigen = actions.update_case(cache, first.case, replace(settings, cam=replace(settings.cam, method="eigencam", target="Cardiomegaly")))
    assert "EigenCAM (class-agnostic)" in eigen.summary and "EigenCAM of" not in eigen.summary
    assert "no effect" in eigen.target_info and "no effect" in webview.target_info("eigencam")
    assert "no effect" not in first.target_info and "Grad-CAM of" in first.summary


# ------------------------------------------------------------------------------- 7: notes once per radiograph
def test_each_note_is_shown_once_per_radiograph(cache, settings, images_dir: Path) -> None:
    from PIL import Image

    with Image.open(images_dir / BOXED_IMAGE) as img:  # a 512 px copy in memory: NIH's boxes must be scaled
        half = Radiograph(np.asarray(img.convert("L").resize((512, 512))), BOXED_IMAGE, "png")
    first = actions.analyse_case(cache, half, settings)
    (note,) = [n for n in first.case.analysis.notes if "scaled" in n]
    assert first.messages == [note] and note in first.summary
    again = actions.analyse_case(cache, half, settings, previous=first.case)  # Analyse again, same file
    assert again.messages == [] and note in again.summary
    moved = actions.update_case(cache, again.case, replace(settings, cam=replace(settings.cam, threshold=180)))
    assert moved.messages == [] and note in moved.summary
    # another picture after one that said the same: no second pop-up of the same words (the summary says it)
    other = Radiograph(half.pixels[:, ::-1].copy(), BOXED_IMAGE, "png")
    after = actions.analyse_case(cache, other, settings, previous=moved.case)
    assert after.messages == [] and note in after.summary and note in after.case.shown_notes
    unboxed = actions.analyse_case(cache, upload.read_upload(images_dir / "00000002_000.png"), settings, previous=after.case)
    assert unboxed.messages == [] and not unboxed.case.analysis.notes
    assert actions.analyse_case(cache, other, settings, previous=unboxed.case).messages == [note]


def test_notes_to_show_keeps_what_was_shown(first: state.CaseView) -> None:
    case = replace(first.case, shown_notes=frozenset({"a"}), analysis=replace(first.case.analysis, notes=["a", "c"]))
    assert webview.notes_to_show(case, case.radiograph, ["a", "b", "b"]) == (["b"], frozenset({"a", "b"}))
    blank = Radiograph(np.zeros((8, 8), np.uint8), "blank.png", "png")
    assert webview.notes_to_show(case, blank, ["a", "d"]) == (["d"], frozenset({"a", "d"}))  # "a" was just said
    assert webview.notes_to_show(None, blank, ["a"]) == (["a"], frozenset({"a"}))


# ------------------------------------------------------------------------------- 8: errors in the page's words
def test_hub_errors_use_the_pages_words(monkeypatch: pytest.MonkeyPatch) -> None:
    cli = (
        "the Hugging Face Hub cannot be reached and a/b is not in the local Hub cache; connect to the internet once "
        "(unset HF_HUB_OFFLINE), or download the model folder and pass --weights FOLDER"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    page = webview.describe_error(WeightsError(cli))
    assert "--weights" not in page and "HF_HUB_OFFLINE" not in page and "enter a model folder in Model source" in page
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "unset HF_HUB_OFFLINE" in webview.describe_error(WeightsError(cli))
    later = "could not fetch a/b from the Hugging Face Hub (OSError); check the connection or use a local folder"
    assert webview.describe_error(WeightsError(later)).endswith("enter a model folder in Model source")


def test_a_missing_hub_model_offline_is_one_line_in_the_pages_words(
    cache, settings, first: state.CaseView, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as info:
        actions.update_case(cache, first.case, replace(settings, source="nobody/no-such-model"))
    page = webview.describe_error(info.value)
    assert "nobody/no-such-model" in page and "\n" not in page and "--weights" not in page


# ------------------------------------------------------------------------------- 2d: the upload control
def test_upload_control_offers_every_readable_suffix(tmp_path: Path) -> None:
    import gradio as gr

    import app_server

    module = app_server.load_app_module()
    from cxrdemo.webapp.resources import make_resources

    (tmp_path / "none").mkdir()
    resources = make_resources(app_server.REPO, examples_folder=tmp_path / "none", export_root=tmp_path / "exports")
    with gr.Blocks():
        ui = module.create_ui(resources)
    assert list(ui.upload.file_types) == list(IMAGE_SUFFIXES) and set(upload.UPLOAD_SUFFIXES) == set(IMAGE_SUFFIXES)
    assert ui.gallery is None and set(ui.panels) == set(webview.PANEL_NAMES)


def test_drawn_box_without_class_gets_the_cam_target(first: state.CaseView) -> None:
    (box,) = boxes_text.boxes_from_annotator(_drawn((10, 20, 30, 40, None)), first.case)
    assert box == Box(10, 20, 30, 40, first.case.analysis.cam.target)
