"""Audit runs of the web app: who waits, who runs, stopping one, and where each run's report goes.

- :class:`AuditBoard`: the line of audits (one runs at a time: the app gives the audit its own concurrency group
  with limit 1). A visitor who starts an audit while another runs learns their position
  (:func:`waiting_message`); *Stop* stops only their own run, through :func:`cxrdemo.audit.engine.run_audit`'s stop
  event, or takes them out of the line.
- :class:`AuditService`: the data sets (:class:`.datasets.DatasetRegistry`), the board, and :meth:`~AuditService.run`:
  one audit into its own folder under the app's export folder (removed after 2 hours, like the panel files), zipped
  for download. The report tables are built from the :class:`~cxrdemo.audit.result.AuditResult` (:mod:`.audit_view`),
  never read back from the files. Every request goes through :func:`.audit_limits.check_request` (public-mode caps).
- :meth:`AuditService.stream`: the run in a worker thread, seen as a generator of :class:`AuditUpdate` s (what the
  page's and the API's handlers are). When the client goes (Stop, ``job.cancel()``, a closed page) Gradio closes
  the generator: that sets the run's stop event, the engine ends after its batch, and Gradio's slot is free at once;
  the next visitor reads their position while the stopped run finishes its batch.
- Stop keeps what is done: the engine writes a partial report of the finished images (marked partial) and the
  visitor's next *Run audit* with the same settings resumes from the per-image cache.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import CxrDemoError, InputError
from ..render.files import remove_older_than
from .audit_limits import DEFAULT_ROAD_IMAGES, DEFAULT_SANITY_IMAGES, AuditLimits, check_request
from .datasets import EXAMPLES, AuditDataset, DatasetRegistry, select_names
from .models import model_key
from .state import Progress, no_progress

if TYPE_CHECKING:
    from ..audit.result import AuditResult
    from .resources import AppResources

#: Runs (report folders and zips) and copies of opened cases older than this are removed (seconds).
RUN_MAX_AGE_S = 7200.0
#: Images per batch in the app: small, so that Stop acts within seconds and the progress bar moves on a CPU.
BATCH_SIZE = 4
#: Seconds the Stop handler waits for a running audit to reach the end of its batch.
STOP_WAIT_S = 60.0
#: Seconds between two updates of a streamed run (and between two looks at the lock while waiting for it): how
#: soon a cancelled client's run is told to stop.
POLL_S = 0.5
#: What the page tells a visitor to do after a Stop (the engine's ``resume_hint``).
RESUME_HINT = "click Run audit again with the same settings to continue from the next image"
#: Where report.md says earlier images' results came from in a page's run (the engine's ``cache_words``).
CACHE_WORDS = "your stopped run (Run audit again with the same settings continued it)"
#: What the page tells a visitor about images the model has seen (the engine's ``unseen_hint``).
UNSEEN_HINT = "tick 'Only images the model never saw' to leave them out"


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
    run: Any = None  # the AuditRun it ended with (a stopped run's partial report), if any


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

    def enter(self, owner: str) -> Ticket:
        """``owner``'s ticket in the line: the one the page's announce made, or a new one (an API client).

        Raises:
            InputError: ``owner`` already has an audit running.
        """
        with self._lock:
            mine = self._tickets.get(owner)
            if mine is not None and not mine.done.is_set():
                if mine.started:
                    raise InputError("your audit is already running: wait for it, or Stop it first")
                return mine
            ticket = self._tickets[owner] = Ticket(owner)
            return ticket

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

    def last_run(self, owner: str) -> Any:
        """The :class:`AuditRun` ``owner``'s last ended audit produced (``None``: none, or it failed)."""
        with self._lock:
            last = self._last.get(owner)
            return last.run if last is not None else None

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
    max_images: Any = 0
    faithfulness: bool = False
    faithfulness_images: Any = DEFAULT_ROAD_IMAGES
    sanity: bool = False
    sanity_images: Any = DEFAULT_SANITY_IMAGES
    unseen: bool = False


@dataclass
class AuditRun:
    """An audit that ended with a report: what was asked, the data set, the result, where its report and zip are.

    ``partial``: it was stopped; the report covers the images done (``result.partial``) and ``status`` says how
    to continue. ``notes``: the caps this server applied to the request (public mode).
    """

    request: AuditRequest
    dataset: AuditDataset
    result: "AuditResult"
    folder: Path
    zip_path: Path
    source: str
    device: str
    seconds: float
    partial: bool = False
    status: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditUpdate:
    """One step of :meth:`AuditService.stream`: a status line and a progress fraction, and at the end the run."""

    status: str
    fraction: float = 0.0
    run: AuditRun | None = None


@dataclass
class _Resumable:
    """A stopped run of one visitor that the same request continues: its folder and zip name."""

    request: AuditRequest
    base: Path
    name: str


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

    def __init__(self, resources: "AppResources") -> None:
        self.resources = resources
        if resources.datasets is None:
            raise ValueError("resources without a data set registry: build them with make_resources")
        self.datasets: DatasetRegistry = resources.datasets
        self.board = AuditBoard()
        self.runs_root = resources.export_root / "audits"
        self.cases_root = resources.export_root / "cases"
        self._run_lock = threading.Lock()
        self._resumable: dict[str, _Resumable] = {}  # owner -> their last stopped run (guarded by _run_lock)

    def checked(self, request: AuditRequest) -> tuple[AuditRequest, list[str]]:
        """``request`` checked and capped for this server (:func:`.audit_limits.check_request`), and the caps'
        notes. Raises :class:`InputError` (one line)."""
        return check_request(request, AuditLimits.from_env())

    def options(self, request: AuditRequest, out: Path, notes: Sequence[str] = ()):
        """The engine's :class:`~cxrdemo.audit.engine.AuditOptions` for ``request`` (checked: one-line errors)."""
        from ..audit.engine import AuditOptions, check_methods
        from ..cams import check_threshold

        request, capped = self.checked(request)
        capped = list(dict.fromkeys([*capped, *notes]))
        dataset = self.datasets.get(request.dataset)
        capped += list(dataset.notes)  # what the conversion of its ground truth did (docs/datasets.md)
        methods = check_methods(list(request.methods))
        threshold = check_threshold(request.threshold)
        key = model_key(request.source, request.device)
        return AuditOptions(
            images=dataset.images, labels=dataset.labels, boxes=dataset.boxes, weights=key.source, out=out,
            names=select_names(dataset, int(request.max_images)), unseen=bool(request.unseen), cam_methods=methods,
            cam_threshold=threshold, faithfulness=bool(request.faithfulness),
            faithfulness_images=int(request.faithfulness_images), sanity=bool(request.sanity),
            sanity_images=int(request.sanity_images), baseline_predictions=dataset.baseline, batch_size=BATCH_SIZE,
            workers=0, device=key.device, title=f"cxrdemo audit: {dataset.name}", extra_notes=capped,
            resume_hint=RESUME_HINT, unseen_hint=UNSEEN_HINT, cache_words=CACHE_WORDS, regions=dataset.regions,
        )  # fmt: skip

    def _wait_turn(self, ticket: Ticket, report: Progress) -> None:
        """Take the run lock (one audit at a time, also while a stopped run ends its batch), telling ``report`` the
        visitor's position meanwhile. Raises :class:`AuditCancelled` when the visitor stops or leaves first."""
        if self._run_lock.acquire(blocking=False):
            return
        while True:
            if ticket.stop.is_set():
                raise AuditCancelled("your audit was stopped before it started")
            report(0.0, waiting_message(max(1, self.board.position(ticket.owner))))
            if self._run_lock.acquire(timeout=POLL_S):
                return

    def run(self, request: AuditRequest, owner: str, report: Progress = no_progress, ticket: Ticket | None = None) -> AuditRun:
        """Run ``request`` for ``owner`` (a browser or API session) into a new folder, zip it; one at a time.

        A stopped run returns its partial report (``AuditRun.partial``); the owner's next run of the same request
        continues it.

        Raises:
            AuditCancelled: stopped before any image was done, or before it started.
            InputError (and other :class:`CxrDemoError`): bad choices or inputs, one line.
        """
        request, capped = self.checked(request)  # bad numbers fail here, before the visitor waits
        ticket = ticket or self.board.enter(owner)
        message = "The audit failed."
        try:
            self._wait_turn(ticket, report)
            try:
                self.board.start(owner)
                run = self._run(request, owner, ticket, report, capped)
                message, ticket.run = run.status, run
                return run
            finally:
                self._run_lock.release()
        except AuditCancelled as exc:
            message = str(exc)
            raise
        finally:
            self.board.finish(ticket, message)

    def _run(self, request: AuditRequest, owner: str, ticket: Ticket, report: Progress, capped: list[str]) -> AuditRun:
        """The run itself (the caller holds the run lock)."""
        from ..audit.engine import AuditStopped, run_audit
        from ..audit.progress import ProgressTracker

        remove_old_folders(self.runs_root)
        remove_old_folders(self.cases_root)
        dataset = self.datasets.get(request.dataset)  # the registry's checked name, never the raw text
        previous = self._resumable.pop(owner, None)
        resume = previous is not None and previous.request == request and previous.base.is_dir()
        if resume:
            base, name = previous.base, previous.name
        else:
            name = f"cxrdemo-audit-{dataset.name}-{_stamp()}-{uuid.uuid4().hex[:6]}"
            base = self.runs_root / name
        folder = base / "report"
        options = self.options(request, folder, capped)
        options.resume = resume
        tracker = ProgressTracker()

        def progress(done: int, total: int, stage: str) -> None:
            line = tracker.update(done, total, stage)
            if stage == "images":
                ticket.images_done, ticket.images_total = done, total
            report(tracker.fraction(), line)

        start = time.perf_counter()
        partial = False
        try:
            result = run_audit(options, progress=progress, stop=ticket.stop)
        except AuditStopped as exc:
            if exc.result is None:
                shutil.rmtree(base, ignore_errors=True)
                raise AuditCancelled("Stopped before the first image was done; nothing to keep.") from None
            result, partial = exc.result, True
            self._resumable[owner] = _Resumable(request, base, name)
        for stale in base.glob("*.zip"):
            stale.unlink()
        archive = zip_report(folder, base / f"{name}{'-partial' if partial else ''}.zip")
        seconds = time.perf_counter() - start
        if partial:
            assert result.partial is not None
            done, planned = result.partial["images_done"], result.partial["images_planned"]
            status = f"Stopped after {done} of {planned} images: the partial report of those {done} is below (marked partial); {RESUME_HINT}."
        else:
            status = f"{dataset.name}: audit finished in {seconds:.0f} s" + (" (continued from the stopped run)." if resume else ".")
        return AuditRun(request, dataset, result, folder, archive, str(options.weights), str(options.device), seconds,
                        partial=partial, status=status, notes=capped)  # fmt: skip

    def stream(self, request: AuditRequest, owner: str, poll_s: float = POLL_S) -> Iterator[AuditUpdate]:
        """:meth:`run` in a worker thread, as updates every ``poll_s`` seconds, then one with the run.

        Closing the generator (Gradio does when the client cancels or Stop is clicked) sets the run's stop event:
        the engine ends after its current batch and keeps a partial report; the line moves on.

        Raises:
            AuditCancelled, InputError, ...: what :meth:`run` raised, in the caller's thread.
        """
        request, _ = self.checked(request)
        # The run draws its plots with pyplot in the worker thread; import it here first, so that the worker's first
        # import never races Gradio's per-call backend switch (which imports pyplot too) into a half-made module.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401

        ticket = self.board.enter(owner)
        latest = AuditUpdate("Waiting for the audit slot.", 0.0)
        box: dict[str, Any] = {}

        def report(fraction: float, message: str) -> None:
            nonlocal latest
            latest = AuditUpdate(message, float(fraction))

        def work() -> None:
            try:
                box["run"] = self.run(request, owner, report, ticket)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                box["error"] = exc

        thread = threading.Thread(target=work, name=f"audit-{owner[:12]}", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(poll_s)
                if thread.is_alive():
                    yield latest
            if "error" in box:
                raise box["error"]
            run: AuditRun = box["run"]
            yield AuditUpdate(run.status, 1.0, run)
        finally:
            if thread.is_alive():  # the client went: stop the engine after its batch
                ticket.stop.set()

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
