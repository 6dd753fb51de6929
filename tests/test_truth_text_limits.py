"""Ground-truth text is capped before parsing, and handled in linear time (issue 19, finding 4)."""

from __future__ import annotations

import tracemalloc

import pytest

from cxrdemo.errors import BoxError
from cxrdemo.webapp import actions, boxes_text
from cxrdemo.webapp.boxes_text import MAX_TRUTH_BYTES, MAX_TRUTH_LINES, check_truth_text


def _lines(n: int, label: str = "Nodule") -> str:
    return "\n".join(f"{10 + i % 500}, {10 + i // 500}, {60 + i % 500}, {60 + i // 500}, {label}" for i in range(n))


def test_the_100000_line_attack_is_refused_in_one_line_without_parsing():
    text = _lines(100_000)  # 2.5 MB, as in the issue
    tracemalloc.start()
    try:
        with pytest.raises(BoxError) as err:
            boxes_text.parse_boxes_text(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "\n" not in message and len(message) < 200 and "limit is 8 KB" in message
    # The refusal reads only the text's length: no copy, encoding or split of the 2.5 MB. Splitting it into lines
    # would allocate ~100,000 strings (> 5 MB); 64 KB covers the exception and its message many times over.
    assert peak < 64 * 1024


def test_line_cap_and_byte_cap():
    assert len(boxes_text.parse_boxes_text(_lines(MAX_TRUTH_LINES))) == MAX_TRUTH_LINES
    with pytest.raises(BoxError, match=f"has {MAX_TRUTH_LINES + 1} lines; the limit is {MAX_TRUTH_LINES}"):
        boxes_text.parse_boxes_text(_lines(MAX_TRUTH_LINES + 1))
    blank = "\n" * (MAX_TRUTH_LINES + 10)  # blank lines count too: they cost a parse each
    with pytest.raises(BoxError, match="lines; the limit"):
        check_truth_text(blank)
    # Bytes, not characters: 2,731 three-byte characters are 8,193 bytes in 2,731 characters.
    wide = "€" * (MAX_TRUTH_BYTES // 3 + 1)
    assert len(wide) < MAX_TRUTH_BYTES < len(wide.encode())
    with pytest.raises(BoxError, match="the limit is 8 KB"):
        check_truth_text(wide)
    assert check_truth_text(None) == ""


def test_merge_and_text_lines_refuse_too_long_text_too():
    with pytest.raises(BoxError, match="limit"):
        boxes_text.merge_drawn(_lines(5000), None, None, ())
    with pytest.raises(BoxError, match="limit"):
        boxes_text.text_lines(_lines(5000))


def test_too_many_drawn_boxes_are_refused(boxed_view):
    drawn = {"image": None, "boxes": [{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9, "label": "Nodule"}] * 65}
    with pytest.raises(BoxError, match="65 boxes were drawn; the limit is 64"):
        boxes_text.merge_drawn("", drawn, boxed_view.case, ())
    with pytest.raises(BoxError, match="no list of boxes"):
        boxes_text.boxes_from_annotator({"boxes": "x" * 10}, boxed_view.case)


def test_apply_truth_refuses_then_works(cache, boxed_view):
    """The hostile text is refused by the page's path, and the same case takes a normal text afterwards."""
    case = boxed_view.case
    with pytest.raises(BoxError, match="limit"):
        actions.apply_truth(cache, case, _lines(100_000))
    classes = case.analysis.probabilities
    label = classes[0].label
    view = actions.apply_truth(cache, case, f"100, 100, 300, 300, {label}\n400, 400, 600, 600, {label}")
    assert view.case.truth_source == "user" and len(view.case.truth) == 2


def test_duplicate_classes_are_numbered_in_order(cache, boxed_view):
    """The comparison legend numbers boxes of one class #1, #2 (now counted with a Counter, in one pass)."""
    from cxrdemo.render.panels import _comparison_rows

    label = boxed_view.case.analysis.probabilities[0].label
    text = f"100, 100, 300, 300, {label}\n400, 400, 600, 600, {label}"
    analysis = actions.apply_truth(cache, boxed_view.case, text).case.analysis
    rows = [r.text for r in _comparison_rows(analysis) if "IoU model" in r.text]
    assert len(rows) == 2 and "#1:" in rows[0] and "#2:" in rows[1]


# ------------------------------------------------------------ issue 27 C4: the typed text is the whole ground truth
def _nih_setup(boxed_view):
    """The boxed example as the page shows it: the text holds NIH's box (exact), the control its display copy."""
    case = boxed_view.case
    assert case.truth_source == "NIH" and len(case.analysis.ground_truth) == 1
    text = boxes_text.format_boxes_text(case.analysis.ground_truth)
    value = boxes_text.annotator_value(case)
    return case, text, value, boxes_text.drawn_lines(value, case)


def test_replacing_nihs_line_leaves_only_the_typed_box(cache, boxed_view):
    """The new user replaced the text with one box: the ground truth is that box alone (NIH's box was added back
    from the control before), also when Apply reads the control, which still shows NIH's box."""
    case, text, value, synced = _nih_setup(boxed_view)
    label = case.analysis.ground_truth[0].label
    mine = f"600, 300, 800, 500, {label}"
    assert boxes_text.merge_drawn(mine, value, case, synced)[0] == mine  # the control did not change: text as typed
    view = actions.apply_truth(cache, case, mine, drawn=value, synced=synced)
    assert view.case.truth_source == "user"
    assert [g["xyxy"] for g in view.json["ground_truth"]] == [[600.0, 300.0, 800.0, 500.0]]
    # the control now shows exactly the applied box
    assert [(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in boxes_text.annotator_value(view.case)["boxes"]] == [
        (600, 300, 800, 500)
    ]  # 1024 px image: display scale 1  # fmt: skip
    # unchanged text (NIH's line) stays NIH's ground truth, exactly
    same = actions.apply_truth(cache, case, text, drawn=value, synced=synced)
    assert same.case.truth is None and same.json["ground_truth"] == boxed_view.json["ground_truth"]


def test_empty_text_means_no_ground_truth_and_says_so(cache, boxed_view):
    case, _, value, synced = _nih_setup(boxed_view)
    cleared = actions.apply_truth(cache, case, "", drawn=value, synced=synced)
    assert cleared.case.truth == () and cleared.json["ground_truth"] == [] and cleared.json["iou"] == []
    assert "you applied an empty box list" in cleared.summary and "you applied an empty box list" in cleared.truth_table
    assert boxes_text.annotator_value(cleared.case)["boxes"] == []
    from cxrdemo.render.panels import _comparison_rows

    assert _comparison_rows(cleared.case.analysis)[0].text == "no ground truth: you applied none"  # panel (b)
    # the user's word holds across a CAM change; the NIH button brings NIH's list back
    from dataclasses import replace

    settings = cleared.case.settings
    kept = actions.update_case(cache, cleared.case, replace(settings, cam=replace(settings.cam, threshold=180)))
    assert kept.case.truth == () and kept.json["ground_truth"] == []
    back = actions.restore_nih_truth(cache, kept.case)
    assert back.case.truth is None and back.json["ground_truth"] == boxed_view.json["ground_truth"]


def test_errors_count_the_users_own_lines(cache, boxed_view):
    """Merged with the control's box, the old message said "line 4" for the user's second line."""
    case, _, value, synced = _nih_setup(boxed_view)
    label = case.analysis.ground_truth[0].label
    with pytest.raises(BoxError, match=r"^line 2: class 'Tumour' is not one of"):
        actions.apply_truth(cache, case, f"600, 300, 800, 500, {label}\n1, 2, 30, 40, Tumour", drawn=value, synced=synced)
    with pytest.raises(BoxError, match=r"^line 3: box .* lies outside the 1024x1024 image"):
        actions.apply_truth(cache, case, f"# mine\n600, 300, 800, 500, {label}\n2000, 2000, 2100, 2100, {label}", drawn=value, synced=synced)
    with pytest.raises(BoxError, match=r"^line 2: box .* wrong order"):
        actions.apply_truth(cache, case, f"\n300, 300, 100, 100, {label}", drawn=value, synced=synced)


def test_control_changes_reach_the_text_and_user_deletions_stay(boxed_view):
    """A box drawn in the control is added, one deleted there goes; a line the user deleted stays deleted; lines
    the user typed stay as typed (comments and spacing too)."""
    case, text, value, synced = _nih_setup(boxed_view)
    nih = value["boxes"][0]
    drawn = {"image": None, "boxes": [nih, {"xmin": 40, "ymin": 850, "xmax": 140, "ymax": 930, "label": "Nodule"}]}
    typed = "# my reading\n600,300,800,500, Effusion"
    merged, now = boxes_text.merge_drawn(typed, drawn, case, synced)  # NIH's line deleted by the user, a box drawn
    assert merged.splitlines() == ["# my reading", "600,300,800,500, Effusion", "40, 850, 140, 930, Nodule"]
    assert now == boxes_text.drawn_lines(drawn, case)
    # the box deleted in the control goes from the text (matched within one display pixel of its exact line)
    merged2, _ = boxes_text.merge_drawn(f"{text}\n{merged}", {"image": None, "boxes": [drawn["boxes"][1]]}, case, now)
    assert merged2.splitlines() == ["# my reading", "600,300,800,500, Effusion", "40, 850, 140, 930, Nodule"]


def test_a_redraw_of_the_control_by_the_page_does_not_answer_the_text(boxed_view) -> None:
    """Issue 27 C4 (a race found in the browser): *Apply* redraws the box-drawing control, whose change event carries
    the text as it was when it fired; answered later, it overwrote what the user had typed meanwhile. A control
    holding exactly the boxes the text took in is no change: the handler must not answer the text."""
    case = boxed_view.case
    value = boxes_text.annotator_value(case)
    lines = boxes_text.drawn_lines(value, case)
    assert lines  # the NIH-boxed image: its box is in the control
    assert not boxes_text.control_changed(value, case, lines)  # the page's own redraw: nothing to merge
    assert boxes_text.control_changed(value, case, ())  # boxes the text has not taken in: a drawing to merge
    assert not boxes_text.control_changed(None, case, lines)  # no control value (no image)
