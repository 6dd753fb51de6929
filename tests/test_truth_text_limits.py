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
