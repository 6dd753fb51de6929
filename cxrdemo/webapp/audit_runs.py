"""Audit runs of the web app: who waits, who runs, stopping one, and where each run's report goes.

- :class:`AuditBoard`: the line of audits (one runs at a time: the app gives the audit its own concurrency group
  with limit 1). A visitor who starts an audit while another runs learns their position
  (:func:`waiting_message`); *Stop* stops only their own run, through :func:`cxrdemo.audit.engine.run_audit`'s stop
  event, or takes them out of the line.
- :class:`AuditService`: the data sets (:class:`.datasets.DatasetRegistry`), the board, and :meth:`~AuditService.run`:
  one audit into its own folder under the app's export folder (removed after 2 hours, like the panel files), zipped
  for download. The report tables are built from the :class:`~cxrdemo.evalresult.AuditResult` (:mod:`.audit_view`),
  never read back from the files.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import CxrDemoError, InputError
from ..render.files import remove_older_than
from .datasets import EXAMPLES, AuditDataset, DatasetRegistry, select_names
from .models import model_key
from .state import Progress, no_progress

if TYPE_CHECKING:
    from ..evalresult import AuditResult
    from .resources import AppResources

#: Runs (report folders and zips) and copies of opened cases older than this are removed (seconds).
RUN_MAX_AGE_S = 7200.0
#: Images per batch in the app: small, so that Stop acts within seconds and the progress bar moves on a CPU.
BATCH_SIZE = 4
#: Seconds the Stop handler waits for a running audit to reach the end of its batch.
STOP_WAIT_S = 60.0


class AuditCancelled(CxrDemoError):
    """The visitor stopped the audit (while it ran, or before it started)."""


@dataclass
class Ticket:
    """One visitor's audit, waiting or running: ``owner`` is the browser session, ``stop`` is handed to
    :func:`~cxrdemo.audit.engine.run_audit`, ``done`` is set when the run has ended (``message`` says how)."""

    owner: str
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    images_done: int = 0
    images_total: int = 0
    message: str = ""


def waiting_message(position: int) -> str:
    """What a visitor reads while another audit runs."""
    return f"An audit is running; yours starts when it ends (position {position})."


class AuditBoard:
    """The audits of one app, in arrival order: at most one runs, the others wait (thread-safe)."""

    def __init__(self) -> None:
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._last: dict[str, Ticket] = {}  # each owner's last ended audit (what the page says after a Stop)
        self._lock = threading.Lock()

    def join(self, owner: str) -> int:
        """Put ``owner``'s audit in the line; returns its position among the waiting ones (0: it starts now).

        Raises:
            InputError: ``owner`` already has an audit waiting or running.
        """
        with self._lock:
            mine = self._tickets.get(owner)
            if mine is not None and not mine.done.is_set():
                raise InputError("your audit is already queued or running: wait for it, or Stop it first")
            self._tickets.pop(owner, None)
            ahead = list(self._tickets.values())
            self._tickets[owner] = Ticket(owner)
            running = any(t.started for t in ahead)
            return sum(1 for t in ahead if not t.started) + (1 if running else 0)

    def position(self, owner: str) -> int:
        """``owner``'s position in the line (0: running or not waiting)."""
        with self._lock:
            ahead = []
            for key, t in self._tickets.items():
                if key == owner:
                    if t.started:
                        return 0
                    running = any(a.started for a in ahead)
                    return sum(1 for a in ahead if not a.started) + (1 if running else 0)
                ahead.append(t)
            return 0

    def start(self, owner: str) -> Ticket:
        """Mark ``owner``'s audit as running (an API client's audit joins the line here).

        Raises:
            AuditCancelled: the visitor stopped it while it waited.
        """
        with self._lock:
            ticket = self._tickets.get(owner)
            if ticket is None or ticket.done.is_set():
                ticket = self._tickets[owner] = Ticket(owner)
            if ticket.stop.is_set():
                self._tickets.pop(owner, None)
                raise AuditCancelled("your audit was stopped before it started")
            ticket.started = True
            return ticket

    def finish(self, ticket: Ticket, message: str) -> None:
        """The run of ``ticket`` has ended (``message``: how); it leaves the line."""
        ticket.message = message
        ticket.done.set()
        with self._lock:
            self._last[ticket.owner] = ticket
            if self._tickets.get(ticket.owner) is ticket:
                del self._tickets[ticket.owner]

    def stopped_message(self, owner: str) -> str | None:
        """What ``owner``'s last audit ended with when it was stopped (``None``: not stopped, or none ended)."""
        with self._lock:
            last = self._last.get(owner)
            return last.message if last is not None and last.stop.is_set() and last.message else None

    def stop(self, owner: str, wait_s: float = STOP_WAIT_S) -> str:
        """Stop ``owner``'s audit: take it out of the line, or stop it after its current batch (waiting up to
        ``wait_s`` for that); returns what happened, in one line."""
        with self._lock:
            ticket = self._tickets.get(owner)
            if ticket is None or ticket.done.is_set():
                return "No audit of yours is running."
            ticket.stop.set()
            if not ticket.started:
                del self._tickets[owner]
                ticket.message = "Your audit was taken out of the line before it started."
                ticket.done.set()
                self._last[owner] = ticket
                return ticket.message
        if ticket.done.wait(wait_s):
            return ticket.message or "Stopped."
        return "Stopping: the audit ends after the images it is working on."

    def leave(self, owner: str) -> None:
        """The visitor left (closed the page): stop their audit, waiting or running, without waiting for it."""
        with self._lock:
            ticket = self._tickets.get(owner)
            if ticket is None:
                return
            ticket.stop.set()
            if not ticket.started:
                del self._tickets[owner]
                ticket.done.set()

    def running(self) -> int:
        """How many audits run now (0 or 1)."""
        with self._lock:
            return sum(1 for t in self._tickets.values() if t.started and not t.done.is_set())


@dataclass(frozen=True)
class AuditRequest:
    """What a visitor asked for (the audit page's controls, or the ``audit`` endpoint's arguments)."""

    dataset: str = EXAMPLES
    source: str = ""
    device: str = "auto"
    methods: Sequence[str] = ("gradcam",)
    threshold: int = 127
    max_images: int = 0
    faithfulness: bool = False
    faithfulness_images: int = 64
    sanity: bool = False
    sanity_images: int = 4


@dataclass
class AuditRun:
    """A finished audit: what was asked, the data set, the result, and where its report and zip are."""

    request: AuditRequest
    dataset: AuditDataset
    result: "AuditResult"
    folder: Path
    zip_path: Path
    source: str
    device: str
    seconds: float


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def remove_old_folders(root: Path, max_age_s: float = RUN_MAX_AGE_S) -> int:
    """Remove the subfolders of ``root`` last modified more than ``max_age_s`` ago; how many went."""
    return remove_older_than(root, max_age_s, folders=True)


def zip_report(folder: Path, archive: Path) -> Path:
    """``folder`` (the report: tables, CSVs, plots, gallery; not the per-image cache) as one zip at ``archive``,
    every file under a top folder named like the archive."""
    top = archive.stem
    tmp = archive.with_name(f".{archive.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and rel.parts[0] != "cache":
                zf.write(path, f"{top}/{rel.as_posix()}")
    os.replace(tmp, archive)
    return archive


class AuditService:
    """The audit side of one app: data sets, the line of audits, runs into the export folder."""

    def __init__(self, resources: "AppResources", root: str | os.PathLike) -> None:
        self.resources = resources
        self.datasets = DatasetRegistry(root, resources.examples, resources.examples_folder, resources.export_root)
        self.board = AuditBoard()
        self.runs_root = resources.export_root / "audits"
        self.cases_root = resources.export_root / "cases"
        self._run_lock = threading.Lock()

    def options(self, request: AuditRequest, out: Path):
        """The engine's :class:`~cxrdemo.audit.engine.AuditOptions` for ``request`` (checked: one-line errors)."""
        from ..audit.engine import AuditOptions, check_methods
        from ..cams import check_threshold

        dataset = self.datasets.get(request.dataset)
        methods = check_methods(list(request.methods) if not isinstance(request.methods, str) else request.methods)
        threshold = check_threshold(request.threshold)
        for what, n in (("images", request.max_images), ("ROAD images", request.faithfulness_images), ("sanity images", request.sanity_images)):
            if int(n) < 0:
                raise InputError(f"{what} {n} must be 0 or more")
        key = model_key(request.source, request.device)
        return AuditOptions(
            images=dataset.images, labels=dataset.labels, boxes=dataset.boxes, weights=key.source, out=out,
            names=select_names(dataset, int(request.max_images)), cam_methods=methods, cam_threshold=threshold,
            faithfulness=bool(request.faithfulness), faithfulness_images=int(request.faithfulness_images),
            sanity=bool(request.sanity), sanity_images=int(request.sanity_images),
            baseline_predictions=dataset.baseline, batch_size=BATCH_SIZE, workers=0, device=key.device,
            title=f"cxrdemo audit: {dataset.name}",
        )  # fmt: skip

    def run(self, request: AuditRequest, owner: str, report: Progress = no_progress) -> AuditRun:
        """Run ``request`` for ``owner`` (a browser or API session) into a new folder, zip it; one at a time.

        Raises:
            AuditCancelled: stopped by the visitor (the message says after how many images).
            InputError (and other :class:`CxrDemoError`): bad choices or inputs, one line.
        """
        from ..audit.engine import AuditStopped, run_audit

        ticket = self.board.start(owner)
        message = "The audit failed."
        try:
            with self._run_lock:  # one audit at a time, also if a cancelled run's thread is still finishing
                report(0.0, "preparing the audit")
                remove_old_folders(self.runs_root)
                remove_old_folders(self.cases_root)
                name = f"cxrdemo-audit-{request.dataset}-{_stamp()}-{uuid.uuid4().hex[:6]}"
                base = self.runs_root / name
                folder = base / "report"
                options = self.options(request, folder)
                start = time.perf_counter()

                def progress(done: int, total: int, stage: str) -> None:
                    if stage == "images":
                        ticket.images_done, ticket.images_total = done, total
                        report(0.05 + 0.8 * done / max(total, 1), f"{done} of {total} images")
                    else:
                        report(0.9, "bootstrap CIs, plots and the gallery")

                report(0.02, "loading the model and the data set")
                try:
                    result = run_audit(options, progress=progress, stop=ticket.stop)
                except AuditStopped:
                    done = f"{ticket.images_done} of {ticket.images_total} images" if ticket.images_total else "loading"
                    message = f"Stopped after {done}; nothing was kept."
                    shutil.rmtree(base, ignore_errors=True)
                    raise AuditCancelled(message) from None
                archive = zip_report(folder, base / f"{name}.zip")
                seconds = time.perf_counter() - start
                message = f"Finished in {seconds:.0f} s."
                return AuditRun(request, self.datasets.get(request.dataset), result, folder, archive,
                                str(options.weights), str(options.device), seconds)  # fmt: skip
        except AuditCancelled as exc:
            message = str(exc)
            raise
        finally:
            self.board.finish(ticket, message)

    def case_file(self, run: AuditRun, index: int) -> str:
        """A copy of the radiograph of ``run``'s case ``index`` in the export folder (what the single-case page
        opens: the data set's folder itself is never served)."""
        case = run.result.cases[index]
        source = run.dataset.images / case.image
        if not source.is_file():
            raise InputError(f"{case.image} is no longer in {run.dataset.images}")
        folder = self.cases_root / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / case.image
        shutil.copyfile(source, target)
        return str(target)
