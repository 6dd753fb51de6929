"""The audit page's logic without a browser (cxrdemo.webapp.datasets, audit_runs, audit_view): the data sets a
visitor may pick, the line of audits, a run into its own folder with its zip, stopping, the gallery's order."""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from cxrdemo.errors import InputError
from cxrdemo.webapp.audit_runs import AuditBoard, AuditCancelled, AuditRequest, AuditService, remove_old_folders, waiting_message
from cxrdemo.webapp.datasets import ENV, EXAMPLES, parse_datasets, select_names


# ------------------------------------------------------------------------------------------------ data sets
def test_datasets_entries_relative_paths_and_what_is_left_out(data_dir: Path) -> None:
    rel = os.path.relpath(data_dir, REPO)
    text = (
        f" nih={rel}/images:{rel}/labels.csv:{rel}/boxes.csv ; nobox={data_dir}/images:{data_dir}/labels.csv::{data_dir}/labels.csv;"
        f"bad=nowhere:x.csv;nih={rel}/images:{rel}/labels.csv;no spec;examples={rel}/images:{rel}/labels.csv;;a b=x:y"
    )  # fmt: skip
    found, notes = parse_datasets(text, REPO)
    assert [d.name for d in found] == ["nih", "nobox"]
    nih, nobox = found
    assert nih.images == (data_dir / "images").resolve() and nih.boxes == (data_dir / "boxes.csv").resolve()
    assert nobox.boxes is None and nobox.baseline == (data_dir / "labels.csv").resolve()
    assert len(notes) == 5 and all(n.endswith("(left out)") and "\n" not in n for n in notes)
    assert any("'bad': image folder" in n for n in notes) and any("already taken" in n for n in notes)
    assert any("name=images_dir:labels_csv" in n for n in notes) and any("'a b'" in n for n in notes)


def test_examples_dataset_from_the_manifest(tmp_path: Path, images_dir: Path, monkeypatch) -> None:
    from cxrdemo.datasets.samples import read_label_csv
    from cxrdemo.datasets.nih import read_box_csv
    from cxrdemo.webapp.resources import make_resources

    monkeypatch.delenv(ENV, raising=False)
    resources = make_resources(REPO, examples_folder=images_dir, export_root=tmp_path)
    service = AuditService(resources)
    (examples,) = service.datasets.all()
    assert examples.name == EXAMPLES and examples.names == tuple(ex.image for ex in resources.examples)
    labels, boxes = read_label_csv(examples.labels), read_box_csv(examples.boxes)
    assert set(labels) == set(examples.names) and labels["00000468_017.png"].labels == ("Atelectasis", "Pneumothorax")
    assert boxes["00026911_000.png"][0].label == "Infiltration"  # NIH's "Infiltrate"
    assert examples.labels.is_relative_to(tmp_path)  # written into the app's work folder, never the repository
    names = select_names(examples, 3)
    assert len(names) == 3 and all(n in boxes for n in names)  # boxed images first
    assert select_names(examples, 0) == list(examples.names)
    with pytest.raises(InputError, match="unknown data set '../../etc'; choose one of examples"):
        service.datasets.get("../../etc")


# ------------------------------------------------------------------------------------------------ the line
def test_the_line_of_audits_positions_and_stop() -> None:
    board = AuditBoard()
    assert board.join("a") == 0
    running = board.start("a")
    assert board.join("b") == 1 and board.join("c") == 2 and board.position("c") == 2
    assert waiting_message(1) == "An audit is running; yours starts when it ends (position 1)."
    with pytest.raises(InputError, match="already queued or running"):
        board.join("b")
    assert board.stop("b") == "Your audit was taken out of the line before it started."
    assert board.position("c") == 1 and board.stop("nobody") == "No audit of yours is running."
    stopped = threading.Thread(target=lambda: (running.stop.wait(10), board.finish(running, "Stopped after 4 of 12 images.")))
    stopped.start()
    assert board.stop("a") == "Stopped after 4 of 12 images."  # waits for the run to end its batch
    stopped.join()
    assert board.running() == 0 and board.position("c") == 0  # nobody runs: c starts now
    board.leave("c")
    assert board.join("c") == 0


def test_a_job_stopped_while_it_waited_never_starts() -> None:
    board = AuditBoard()
    board.join("a")
    board.start("a")
    board.join("b")
    board._tickets["b"].stop.set()  # noqa: SLF001 - Stop arrived while the queue was handing b's job over
    with pytest.raises(AuditCancelled, match="stopped before it started"):
        board.start("b")
    assert board.position("b") == 0 and board.join("b") == 1  # b may start again; a still runs


# ------------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def service(model_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AuditService:
    from cxrdemo.webapp.resources import make_resources

    resources = make_resources(REPO, examples_folder=images_dir, export_root=tmp_path_factory.mktemp("exports"))
    return AuditService(resources)


def test_an_audit_run_its_folder_zip_tables_and_gallery(service: AuditService, model_dir: Path) -> None:
    from cxrdemo.webapp import audit_view

    seen = []
    request = AuditRequest(dataset=EXAMPLES, source=str(model_dir), device="cpu", max_images=3)
    run = service.run(request, "me", lambda fraction, message: seen.append((fraction, message)))
    messages = [m for _, m in seen]
    assert messages[0] == "Loading the model and the data set." and messages[-1] == "Writing the report, plots and gallery."
    assert any(m.startswith("Forward pass and CAMs: 3 of 3 images") for m in messages)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] < 1.0  # the bar never goes back
    assert run.folder.parent.parent == service.runs_root and run.result.evaluation.n_images == 3
    with zipfile.ZipFile(run.zip_path) as zf:
        files = zf.namelist()
    top = run.zip_path.stem
    assert f"{top}/report.json" in files and f"{top}/gallery.html" in files and f"{top}/cases.csv" in files
    assert not any("/cache/" in f for f in files)  # results cache left out
    assert service.board.running() == 0
    # the page's views, from the result itself
    order = audit_view.worst_first(run.result, "cam_iou")
    values = [run.result.cases[i].cam_iou for i in order]
    assert len(order) == 3 and values == sorted(values)
    items = audit_view.gallery_items(run, order, "cam_iou")
    assert all(Path(p).is_file() for p, _ in items)
    first = run.result.cases[order[0]]
    assert items[0][1] == f"{first.image} \u00b7 {first.label} \u00b7 CAM-box IoU {first.cam_iou:.2f}"
    assert "Mean AUC over the classes" in audit_view.summary(run) and "| Grad-CAM |" in audit_view.summary(run)
    assert "95% CI" in audit_view.auc_table(run.result)
    assert audit_view.map_tables(run.result).startswith("3 ground-truth boxes on 3 images")  # the accordion has the title
    assert audit_view.sanity_tables(run.result) == "" and audit_view.figure(run, "sanity.png") is None
    json.dumps(audit_view.report_json(run.result), allow_nan=False)  # plain JSON for any client
    copy = Path(service.case_file(run, order[0]))
    assert copy.name == first.image and copy.is_relative_to(service.cases_root)
    with pytest.raises(InputError, match="unknown metric"):
        audit_view.worst_first(run.result, "accuracy")


def test_stop_ends_a_running_audit_after_its_batch(service: AuditService, model_dir: Path) -> None:
    request = AuditRequest(dataset=EXAMPLES, source=str(model_dir), device="cpu", max_images=6)

    def report(fraction: float, message: str) -> None:
        if message.startswith("Forward pass and CAMs: 4 of 6 images"):  # the first batch is done: Stop
            service.board._tickets["me"].stop.set()  # noqa: SLF001

    service.board.join("me")
    run = service.run(request, "me", report)  # the images done are kept: a partial report
    assert run.partial and run.result.partial is not None and run.result.partial["images_done"] == 4
    assert run.status.startswith("Stopped after 4 of 6 images: the partial report of those 4 is below (marked partial)")
    assert "--" not in run.status  # the page's words, no CLI flag
    assert run.result.evaluation.n_images == 4 and run.zip_path.is_file() and run.zip_path.stem.endswith("-partial")
    assert json.loads((run.folder / "report.json").read_text())["partial"]["images_planned"] == 6
    assert "partial report: 4 of 6 images" in (run.folder / "report.md").read_text()
    from cxrdemo.webapp import audit_view

    shown = audit_view.summary(run).lower()
    assert shown.count("partial report") == 1 and "4 of 6 images" in shown  # once (it was said twice)
    assert service.board.running() == 0 and service.board.position("me") == 0
    resumed = service.run(request, "me")  # the same request again continues the stopped run
    assert not resumed.partial and resumed.result.evaluation.n_images == 6 and resumed.folder == run.folder
    assert resumed.result.evaluation.timings["images_from_cache"] == 4 and "continued" in resumed.status
    md = (resumed.folder / "report.md").read_text()
    assert "4 images' results came from your stopped run (Run audit again" in md and "--resume" not in md


def test_bad_requests_are_one_line_errors(service: AuditService) -> None:
    with pytest.raises(InputError, match="unknown CAM method"):
        service.options(AuditRequest(methods=["scorecam"]), service.runs_root / "x")
    with pytest.raises(InputError, match="outside 1..254"):
        service.options(AuditRequest(threshold=300), service.runs_root / "x")
    with pytest.raises(InputError, match="sanity images -1 must be 0 or more"):
        service.options(AuditRequest(sanity_images=-1), service.runs_root / "x")


def test_old_runs_are_removed(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "report.json").write_text("{}")
    os.utime(old, (time.time() - 3 * 3600,) * 2)
    assert remove_old_folders(tmp_path) == 1 and not old.exists() and new.exists()
