"""Error messages cut echoed input to 80 characters; the audit names its folder and zip with the registry's data-set
name, never the request's raw text (issue 19, findings 8 and 9)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cxrdemo.cams import CamRequest, check_method, check_threshold
from cxrdemo.device import pick_device
from cxrdemo.errors import CxrDemoError
from cxrdemo.webapp.boxes_text import parse_boxes_text
from cxrdemo.webapp.datasets import EXAMPLES, parse_entry

REPO = Path(__file__).resolve().parent.parent
HUGE = "A" * 100_000  # what a visitor can paste into a text box
#: A message names the problem and the fix (at most ~160 characters here) plus the input cut to 80 characters.
LONGEST = 400


def _message(fn) -> str:
    with pytest.raises(CxrDemoError) as err:
        fn()
    text = str(err.value)
    assert "\n" not in text and len(text) < LONGEST, text[:500]
    assert "A" * 80 not in text  # cut to clip_text's 80 characters (79 and an ellipsis)
    return text


def test_long_inputs_are_cut_in_every_message(predictor):
    _message(lambda: pick_device(HUGE))
    _message(lambda: check_method(HUGE))
    _message(lambda: check_threshold(HUGE))
    _message(lambda: predictor.class_index(HUGE))
    _message(lambda: parse_boxes_text("1, 2, " + "A" * 7000))  # 7 KB: under the text cap, too few values
    _message(lambda: parse_boxes_text("a, b, c, d, " + "B" * 7000))
    _message(lambda: parse_boxes_text("10, 10, 50, 50, " + "A" * 7000, classes=["Nodule"]))
    _message(lambda: parse_entry(HUGE + "=imgs:labels.csv", REPO))
    _message(lambda: parse_entry("=" + HUGE, REPO))


def test_unknown_data_set_name_is_cut(tmp_path):
    from cxrdemo.webapp.datasets import DatasetRegistry

    (tmp_path / "imgs").mkdir()
    (tmp_path / "labels.csv").write_text("Image Index,Finding Labels\n")
    registry = DatasetRegistry(tmp_path, [], tmp_path / "imgs", tmp_path / "work")
    registry._items = [parse_entry(f"mine={tmp_path / 'imgs'}:{tmp_path / 'labels.csv'}", tmp_path)]  # noqa: SLF001
    text = _message(lambda: registry.get(HUGE))
    assert "choose one of mine" in text


def test_target_class_from_the_page_is_cut(cache, boxed_view, settings):
    from dataclasses import replace

    from cxrdemo.webapp import actions

    request = CamRequest.of(settings.cam.method, HUGE, 127)
    _message(lambda: actions.update_case(cache, boxed_view.case, replace(settings, cam=request)))


def test_audit_folder_and_zip_use_the_registry_name(model_dir: Path, images_dir: Path, tmp_path: Path):
    """A request naming the data set with padding and a newline (stripped for the check) gets folder and zip
    names from the registry's own name: no whitespace, no path separator, nothing the visitor typed."""
    from cxrdemo.webapp.audit_runs import AuditRequest, AuditService
    from cxrdemo.webapp.resources import make_resources

    resources = make_resources(REPO, examples_folder=images_dir, export_root=tmp_path / "exports")
    service = AuditService(resources)
    request = AuditRequest(dataset=f"  {EXAMPLES}\n ", source=str(model_dir), device="cpu", max_images=1)
    run = service.run(request, "me")
    base = run.zip_path.parent
    assert base.parent == service.runs_root and base.name.startswith(f"cxrdemo-audit-{EXAMPLES}-")
    assert run.zip_path.name == f"{base.name}.zip" and run.dataset.name == EXAMPLES
    assert not any(ch.isspace() for ch in base.name)
    with zipfile.ZipFile(run.zip_path) as zf:
        assert all(name.startswith(f"{base.name}/") for name in zf.namelist())


@pytest.mark.parametrize("value", [1e308, 10**400, -1e300, "1e308", "9" * 5000])
def test_huge_thresholds_are_echoed_short(value):
    """Issue 27 E5: 1e308 was echoed as its 309 digits, past the 80-character clip."""
    text = _message(lambda: check_threshold(value))
    assert len(text) < 120 and "outside 1..254" in text or "not a finite number" in text, text


@pytest.mark.parametrize("payload", ["abc", None, float("nan"), float("inf"), -5, [1]])
def test_checked_number_hands_non_numbers_to_the_handler(payload):
    """gr.Number.preprocess raises on text, NaN, infinity and values under its minimum (Gradio's generic error);
    checked_number passes them through so the handler's check answers with the app's one line."""
    from cxrdemo.webapp.audit_limits import parse_count
    from cxrdemo.webapp.ui_common import checked_number

    field = checked_number(0, precision=0, minimum=0)
    assert field.get_block_name() == "number" and field.api_info() == {"type": "integer"}
    value = field.preprocess(payload)
    assert value is payload or value == payload
    if payload is not None:
        for check in (lambda: parse_count(value, "images"), lambda: check_threshold(value)):
            _message(check)
    assert checked_number(0, precision=0).preprocess(7.6) == 8  # numbers are still rounded as before
