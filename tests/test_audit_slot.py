"""The audit slot of a public server (issue 19, finding 6): caps on what one visitor may ask (page and API go
through the same check), bad numbers refused in one line, a cancelled client's audit stopped (its generator
closed), the slot released, and the next visitor told their position."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import REPO
from cxrdemo.errors import InputError
from cxrdemo.webapp.audit_limits import CAP_VARIABLES, AuditLimits, check_request, parse_count
from cxrdemo.webapp.audit_runs import AuditRequest, AuditService, waiting_message
from cxrdemo.webapp.datasets import EXAMPLES

PUBLIC = {"CXRDEMO_PUBLIC": "1"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "images -1 must be 0 or more"),
        (float("nan"), "images nan is not a finite number"),
        (float("inf"), "images inf is not a finite number"),
        ("1e309", "images inf is not a finite number"),
        ("abc", "images 'abc' is not a number"),
        ("x" * 500, "is not a number"),
        (2.5, "images 2.5 is not a whole number"),
        (True, "images must be a whole number, not True"),
    ],
)
def test_bad_counts_are_refused_in_one_line(value, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_count(value, "images")
    assert "\n" not in str(err.value) and len(str(err.value)) < 160  # a 500-character input is not echoed whole


def test_counts_accepted() -> None:
    assert parse_count(None, "images") == 0 and parse_count("", "images") == 0
    assert parse_count(" 12 ", "images") == 12 and parse_count(8.0, "images") == 8 and parse_count("3e1", "images") == 30
    assert parse_count(1e30, "images") == int(1e30)  # a private server takes it: select_names stops at the data set


def test_limits_come_from_the_environment_in_public_mode_only() -> None:
    assert AuditLimits.from_env({}) == AuditLimits()  # private: no cap
    defaults = AuditLimits.from_env(PUBLIC)
    assert (defaults.images, defaults.faithfulness_images, defaults.sanity_images, defaults.methods) == (60, 32, 4, 2)
    assert AuditLimits.from_env({"SPACE_ID": "me/demo", "CXRDEMO_AUDIT_MAX_IMAGES": "20"}).images == 20
    assert AuditLimits.from_env({"SPACE_ID": "me/demo", "CXRDEMO_PUBLIC": "0"}) == AuditLimits()
    with pytest.raises(InputError, match="CXRDEMO_AUDIT_MAX_METHODS='0' is not a whole number of at least 1"):
        AuditLimits.from_env({**PUBLIC, "CXRDEMO_AUDIT_MAX_METHODS": "0"})
    assert set(CAP_VARIABLES) == {"images", "faithfulness_images", "sanity_images", "methods"}


def test_public_caps_clamp_counts_and_refuse_too_many_methods() -> None:
    limits = AuditLimits.from_env(PUBLIC)
    asked = AuditRequest(methods="gradcam,eigencam", max_images=1e30, faithfulness=True, faithfulness_images=0,
                         sanity=False, sanity_images="500")  # fmt: skip
    checked, notes = check_request(asked, limits)
    assert (checked.max_images, checked.faithfulness_images, checked.sanity_images) == (60, 32, 4)
    assert checked.methods == ["gradcam", "eigencam"]
    assert notes == ["images: 1e+30 asked, this server's limit is 60", "ROAD images: every image is capped on this server at 32"]
    with pytest.raises(InputError, match="3 CAM methods asked; this server runs at most 2 per audit"):
        check_request(AuditRequest(methods=["gradcam", "gradcam++", "layercam"]), limits)
    same, none = check_request(AuditRequest(max_images=5, methods=["gradcam"]), limits)
    assert same.max_images == 5 and none == []


# ------------------------------------------------------------------------------------------------ the service
@pytest.fixture(scope="module")
def service(model_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AuditService:
    from cxrdemo.webapp.resources import make_resources

    resources = make_resources(REPO, examples_folder=images_dir, export_root=tmp_path_factory.mktemp("exports"))
    return AuditService(resources)


def test_the_service_applies_the_caps_for_page_and_api(service: AuditService, monkeypatch) -> None:
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    monkeypatch.setenv("CXRDEMO_AUDIT_MAX_IMAGES", "2")
    options = service.options(AuditRequest(dataset=EXAMPLES, max_images="1e30"), service.runs_root / "x")
    assert len(options.names) == 2 and options.extra_notes == ["images: 1e+30 asked, this server's limit is 2"]
    with pytest.raises(InputError, match="images 'lots' is not a number"):
        next(service.stream(AuditRequest(dataset=EXAMPLES, max_images="lots"), "api-client"))
    assert service.board.position("api-client") == 0 and service.board.running() == 0  # refused before the line


def _wait_until(condition, limit_s: float = 300.0) -> bool:
    """Poll ``condition`` (a bound for a test that would otherwise hang, not a speed assertion)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_closing_the_stream_stops_the_audit_and_frees_the_slot(service: AuditService, model_dir: Path) -> None:
    request = AuditRequest(dataset=EXAMPLES, source=str(model_dir), device="cpu", max_images=8)
    stream = service.stream(request, "client", poll_s=0.05)
    for update in stream:  # what gradio_client's job.cancel() does: Gradio closes the handler's generator
        assert update.run is None
        if update.status.startswith("Forward pass and CAMs:"):
            break
    ticket = service.board._tickets["client"]  # noqa: SLF001 - the running ticket
    stream.close()
    assert ticket.stop.is_set()  # the engine's stop event: it ends after its batch
    # Meanwhile the next visitor is told where they stand (the stopped run still holds the slot's lock).
    following = service.stream(request, "next", poll_s=0.05)
    if not ticket.done.is_set():
        first = next(following)
        assert first.status in ("Waiting for the audit slot.", waiting_message(1))
    assert _wait_until(ticket.done.is_set)
    assert service.board.running() <= 1  # only "next" may run now
    following.close()
    assert _wait_until(lambda: service.board.running() == 0)
    assert service._run_lock.acquire(blocking=False)  # noqa: SLF001 - the slot is free
    service._run_lock.release()  # noqa: SLF001
    run = service.board.last_run("client")
    assert run is not None and run.partial and 0 < run.result.partial["images_done"] < 8  # what was done is kept


def test_a_waiting_visitor_reads_their_position(service: AuditService, model_dir: Path) -> None:
    request = AuditRequest(dataset=EXAMPLES, source=str(model_dir), device="cpu", max_images=1)
    assert service._run_lock.acquire(timeout=60)  # noqa: SLF001 - another audit holds the slot
    try:
        holder = service.board.enter("first")
        service.board.start("first")
        stream = service.stream(request, "second", poll_s=0.05)
        seen = []
        for update in stream:  # bounded by _wait_until's limit in practice: the thread reports at once
            seen.append(update.status)
            if update.status == waiting_message(1) or len(seen) > 6000:
                break
        assert seen[-1] == waiting_message(1)
        stream.close()  # the visitor leaves while waiting: out of the line, nothing ran
        assert _wait_until(lambda: service.board.position("second") == 0)
        service.board.finish(holder, "done")
    finally:
        service._run_lock.release()  # noqa: SLF001
    assert _wait_until(lambda: service.board.running() == 0)
    assert service.board.last_run("second") is None


def test_the_api_handler_is_a_generator_gradio_can_close() -> None:
    import inspect

    from cxrdemo.webapp.ui_audit import AuditHandlers

    assert inspect.isgeneratorfunction(AuditHandlers.audit) and inspect.isgeneratorfunction(AuditHandlers.run)
