"""Load and soak test of the app: a burst of visitors against ``python app.py`` on loopback, through gradio_client.

    python bench/load.py [--clients 16] [--requests 25] [--mix predict=0.5,cam=0.3,export=0.1,compare_methods=0.1]
                         [--weights SRC] [--images DIR] [--n-images 8] [--concurrency N] [--timeout 300]
                         [--max-seconds 900] [--sample 8] [--warmup 3] [--flood 0] [--with-audit]
                         [--audit-args JSON] [--endpoint-args JSON] [--cache-ttl FREQ,AGE] [--seed 0]
                         [--json bench/load.json] [--quiet] [--strict]

What it does, in order (every phase bounded in count and time; nothing listens or is called beyond 127.0.0.1):

1. **Cold start**: spawns ``python app.py`` on a free loopback port (its own ``GRADIO_TEMP_DIR`` and ``TMPDIR`` in a
   fresh run folder, so Gradio's cache and the app's own temporary files can be measured) and times spawn -> the
   page answers HTTP 200, and spawn -> the first ``predict`` answer (a fresh client).
2. **Warm-up**: ``--warmup`` serial ``predict`` calls (their median is the unloaded answer time) and one request of
   every other kind in the mix. Then the server's RSS (psutil, with its children), open file descriptors, threads,
   and the size and file count of Gradio's cache folder and of the app's temporary folder are read ("before").
3. **Load**: ``--clients`` threads, each its own ``gradio_client.Client`` (one visitor, one session), start together
   and send ``--requests`` requests each, back to back, drawn from ``--mix`` over the shared images (seeded plan).
   Request kinds: ``predict`` (gradcam, threshold 127); ``cam`` (a CAM change: another method/threshold on the
   client's previous image); ``export``; ``compare_methods``; ``compare_models``; ``audit``. A kind is sent to its own
   endpoint only when the app lists it (``Client.view_api``); ``cam`` and ``export`` fall back to ``predict`` (from a
   client's view a CAM change is a predict with another method or threshold, and an export is the predict answer's
   JSON and panel files), and the other kinds are skipped; the report says which. Latency = submit -> answer
   downloaded. Outcomes: ok, queue full (Gradio's refusal: a message, counted apart), error (anything else,
   including timeouts; target 0). Server RSS and FDs are sampled every 0.5 s meanwhile.
4. **After**: clients closed, up to ``--settle`` seconds for the open FDs to come back, the same readings ("after";
   RSS growth target < 50 MB). ``--bursts B`` repeats phases 3-4 (a soak: is the growth a plateau or a slope?).
5. **Serial check**: a sample of ``--sample`` load requests is sent again one by one; every answer (JSON without
   timings, image files pixel for pixel) must equal the one given under load.
6. **Flood** (``--flood N``): N ``predict`` jobs joined at once through Gradio's documented HTTP API (the file
   uploaded once, ``POST /gradio_api/call/predict``), faster than the queue drains: beyond the app's queue
   (``max_size``) Gradio must refuse them with a clear message (HTTP 503), every accepted job must finish, and the
   server must then still answer.
7. **Audit under load** (``--with-audit``): the ``audit`` endpoint runs (by default on the shared NIH folder, offered
   to the app as ``CXRDEMO_AUDIT_DATASETS=nih=...``, 40 images: ``--audit-args``) while two clients keep sending
   ``predict``; reports the predict answers' p50/p95 during the audit, that the audit finished and that no predict
   was lost (``skipped: no audit endpoint`` when the app has none).
8. **Stop**: SIGINT (Gradio's clean shutdown), then the folders are measured once more and the app log's error lines
   are counted.

``--cache-ttl FREQ,AGE`` starts the app through a small launcher that sets ``gr.Blocks(delete_cache=(FREQ, AGE))``
instead of the app's own value and waits FREQ + AGE seconds after the load, to watch Gradio's clean-up remove what the
burst left. Without it the app runs exactly as ``python app.py``.

Writes ``--json`` (default ``bench/load.json``) and prints a summary with one line per target met or missed.
Exit 0; 3 with ``--strict`` when a target is missed; 2 when the app cannot be started or the arguments are wrong.
Research demo, not a diagnostic device.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python bench/load.py`` from a checkout that did not ``pip install .``
    sys.path.insert(0, str(REPO))
from cxrdemo.cams import CAM_METHOD_KEYS as METHODS  # noqa: E402  (torch-free; the one list of CAM methods)

DATA = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
#: Shared NIH images used first: five with a radiologist's box, then others (all read by path, never copied).
PREFERRED_IMAGES = (
    "00013125_000.png", "00000468_017.png", "00022084_000.png", "00013911_000.png", "00026911_000.png",
    "00000001_000.png", "00000001_001.png", "00000001_002.png",
)  # fmt: skip
KINDS = ("predict", "cam", "export", "compare_methods", "compare_models", "audit")
#: Endpoint names a kind is sent to, first listed wins.
KIND_ENDPOINTS = {
    "predict": ("/predict",),
    "cam": ("/update_cam", "/recam", "/cam"),
    "export": ("/export_report", "/export"),
    "compare_methods": ("/compare_methods",),
    "compare_models": ("/compare_models",),
    "audit": ("/audit",),
}
FALLBACK_TO_PREDICT = {
    "cam": "no public CAM-change endpoint: sent as predict with another CAM method/threshold on the client's "
    "previous image (a CAM change from the client's view; the server runs the network again)",
    "export": "no public export endpoint: sent as predict (its JSON and four panel files are what a client exports); "
    "the page's report export is private",
}
VOLATILE_KEYS = {"timings_ms", "timings", "seconds", "elapsed_s", "wall_s", "duration_s"}
#: The audit under load: the shared NIH set (``CXRDEMO_AUDIT_DATASETS=nih=...``, set by this script), 40 images.
AUDIT_DEFAULTS = {"dataset": "nih", "max_images": 40, "device": "cpu"}
DEFAULT_MIX = "predict=0.5,cam=0.3,export=0.1,compare_methods=0.1"
TARGETS = {
    "errors": ("==", 0, "errors under load"),
    "rss_growth_mb": ("<", 50, "server RSS growth after the burst (MB)"),
    "fd_growth": ("<=", 10, "open file descriptors growth after the burst"),
    "serial_mismatches": ("==", 0, "answers differing from the same requests run serially"),
    "spawn_to_first_answer_s": ("<=", 8, "cold start: spawn -> first answer (s)"),
    "first_answer_errors": ("==", 0, "cold start: failed requests before the first answer"),
    "gradio_cleanup_worked": ("==", True, "Gradio's delete_cache removed the burst's files (--cache-ttl)"),
}


# ================================================================================================ small helpers
def log(message: str) -> None:
    if not QUIET:
        print(f"load: {message}", file=sys.stderr, flush=True)


QUIET = False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float] | None:
    """``{n, p50, p95, p99, max, mean}`` of seconds (``None`` when empty); nearest-rank percentiles."""
    if not values:
        return None
    data = sorted(values)

    def rank(q: float) -> float:
        return data[min(len(data) - 1, max(0, int(-(-q * len(data) // 1)) - 1))]

    return {
        "n": len(data),
        "p50": round(statistics.median(data), 3),
        "p95": round(rank(0.95), 3),
        "p99": round(rank(0.99), 3),
        "max": round(data[-1], 3),
        "mean": round(statistics.fmean(data), 3),
    }


def parse_mix(text: str) -> dict[str, float]:
    """``"predict=0.6,cam=0.3"`` -> weights (unknown kinds and bad numbers raise ``ValueError``)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"--mix: unknown kind {name!r}; use {', '.join(KINDS)}")
        weight = float(value) if value.strip() else 1.0
        if weight < 0:
            raise ValueError(f"--mix: negative weight for {name}")
        mix[name] = mix.get(name, 0.0) + weight
    if not any(mix.values()):
        raise ValueError("--mix: give at least one kind a positive weight")
    return mix


def folder_usage(folder: Path, exclude: Path | None = None) -> dict[str, int]:
    """``{"bytes", "files"}`` under ``folder`` (0 when missing), leaving out ``exclude``."""
    total = files = 0
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if exclude is None or Path(entry.path) != exclude:
                        stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    files += 1
            except OSError:
                continue  # removed meanwhile (the app's or Gradio's clean-up)
    return {"bytes": total, "files": files}


def file_digest(path: str) -> str:
    """Pixels of an image file (mode, size, bytes), else the file's bytes, as a sha256."""
    from PIL import Image

    digest = hashlib.sha256()
    try:
        with Image.open(path) as img:
            img.load()
            digest.update(f"{img.mode}{img.size}".encode())
            digest.update(img.tobytes())
            return "pixels:" + digest.hexdigest()[:16]
    except Exception:  # noqa: BLE001 - not an image: compare bytes
        digest.update(Path(path).read_bytes())
        return "bytes:" + digest.hexdigest()[:16]


def fingerprint(value: Any, downloads: list[str]) -> Any:
    """An answer made comparable: timings dropped, downloaded files replaced by their digest (paths collected)."""
    if isinstance(value, (list, tuple)):
        return [fingerprint(v, downloads) for v in value]
    if isinstance(value, dict):
        if "path" in value and isinstance(value.get("path"), str) and os.path.isfile(value["path"]):
            downloads.append(value["path"])
            return file_digest(value["path"])
        return {k: fingerprint(v, downloads) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
    if isinstance(value, str) and len(value) < 4096 and os.path.isabs(value) and os.path.isfile(value):
        downloads.append(value)
        return file_digest(value)
    return value


def is_queue_full(exc: BaseException) -> bool:
    text = f"{exc.__class__.__name__}: {exc}".lower()
    return "queue is full" in text or "queue_full" in text or exc.__class__.__name__ == "QueueError"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"[:300]


# ============================================================================================= the server
@dataclass
class Server:
    """``python app.py`` in a subprocess, with its run folder and psutil handle."""

    proc: subprocess.Popen
    url: str
    run_dir: Path
    gradio_dir: Path
    tmp_dir: Path
    log_path: Path
    spawned: float
    launcher: str

    def process(self):
        import psutil

        return psutil.Process(self.proc.pid)

    def readings(self) -> dict[str, Any]:
        """RSS (MB, server + children), FDs, threads, and the two folders' sizes."""
        import psutil

        try:
            main = self.process()
            procs = [main] + main.children(recursive=True)
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
            fds = main.num_fds()
            threads = main.num_threads()
        except psutil.Error:
            rss, fds, threads = 0, -1, -1
        return {
            "rss_mb": round(rss / 2**20, 1),
            "fds": fds,
            "threads": threads,
            "gradio_cache": folder_usage(self.gradio_dir),
            "app_tmp": folder_usage(self.tmp_dir),
        }


LAUNCHER = """
import runpy, sys
import gradio as gr
freq, age = int(sys.argv[2]), int(sys.argv[3])
original = gr.Blocks.__init__
def init(self, *args, **kwargs):
    kwargs["delete_cache"] = (freq, age)
    original(self, *args, **kwargs)
gr.Blocks.__init__ = init
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_server(args: argparse.Namespace, run_dir: Path) -> Server:
    gradio_dir, tmp_dir = run_dir / "gradio", run_dir / "tmp"
    gradio_dir.mkdir()
    tmp_dir.mkdir()
    port = free_port()
    env = dict(os.environ)
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(gradio_dir),
        TMPDIR=str(tmp_dir),
        HF_HUB_OFFLINE="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    if args.weights:
        env["CXRDEMO_WEIGHTS"] = str(args.weights)
    if args.concurrency:
        env["CXRDEMO_CONCURRENCY"] = str(args.concurrency)
    if args.with_audit and (DATA / "labels.csv").is_file() and "CXRDEMO_AUDIT_DATASETS" not in os.environ:
        # The shared NIH folder as the audit's data set, by path (names and numbers are read there, no pixel copied).
        env["CXRDEMO_AUDIT_DATASETS"] = f"nih={args.images}:{DATA / 'labels.csv'}:{DATA / 'boxes.csv'}"
    env.update(item.split("=", 1) for item in args.app_env)
    app = str(REPO / "app.py")
    if args.cache_ttl:
        cmd = [sys.executable, "-c", LAUNCHER, app, *map(str, args.cache_ttl)]
        launcher = f"launcher with delete_cache={tuple(args.cache_ttl)}"
    else:
        cmd = [sys.executable, app]
        launcher = "python app.py"
    log_path = run_dir / "app.log"
    with open(log_path, "w") as out:
        spawned = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(proc, f"http://127.0.0.1:{port}/", run_dir, gradio_dir, tmp_dir, log_path, spawned, launcher)


def wait_page(server: Server, timeout: float) -> float:
    """Seconds from spawn to the page answering HTTP 200 (raises ``SystemExit`` on timeout or an early exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"the app exited with {server.proc.returncode} before serving; see {server.log_path}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - server.spawned
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the app did not answer at {server.url} within {timeout:.0f} s; see {server.log_path}")


def stop_server(server: Server, timeout: float = 30.0) -> dict[str, Any]:
    """SIGINT (clean shutdown: Gradio deletes its cache), SIGKILL after ``timeout``; what was left."""
    how = "SIGINT"
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            how = "SIGKILL after SIGINT timed out"
            server.proc.kill()
            server.proc.wait(timeout=timeout)
    else:
        how = f"had already exited ({server.proc.returncode})"
    text = server.log_path.read_text(errors="replace") if server.log_path.is_file() else ""
    errors: dict[str, int] = {}
    for line in text.splitlines():  # the last line of each traceback: "SomeError: message"
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line):
            errors[line[:200]] = errors.get(line[:200], 0) + 1
    return {
        "pid": server.proc.pid,
        "stopped_by": how,
        "exit_code": server.proc.returncode,
        "tracebacks_in_log": text.count("Traceback (most recent call last)"),
        "errors_in_log": errors,
        "gradio_cache_after_stop": folder_usage(server.gradio_dir),
        "app_tmp_after_stop": folder_usage(server.tmp_dir),
    }


def settle(server: Server, fds_before: int, limit: float) -> float:
    """Wait (at most ``limit`` s) for the server's open FDs to come back to ``fds_before`` after the visitors left."""
    start = time.monotonic()
    time.sleep(1.0)
    while time.monotonic() - start < limit:
        if server.readings()["fds"] <= fds_before:
            break
        time.sleep(1.0)
    return round(time.monotonic() - start, 1)


class Monitor(threading.Thread):
    """Samples the server's RSS and FDs every ``period`` seconds until stopped."""

    def __init__(self, server: Server, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.period = server, period
        self.rss: list[float] = []
        self.fds: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.halt.is_set():
            try:
                main = self.server.process()
                self.rss.append(sum(p.memory_info().rss for p in [main] + main.children(recursive=True)) / 2**20)
                self.fds.append(main.num_fds())
            except psutil.Error:
                pass
            self.halt.wait(self.period)

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        self.join(timeout=5)
        return {"rss_max_mb": round(max(self.rss), 1) if self.rss else None, "fds_max": max(self.fds) if self.fds else None}


# ============================================================================================ the requests
@dataclass
class Request:
    client: int
    index: int
    kind: str
    image: str
    method: str = "gradcam"
    threshold: int = 127
    sample: bool = False


@dataclass
class Outcome:
    request: Request
    endpoint: str
    start: float
    seconds: float
    status: str  # ok | queue_full | error
    message: str = ""
    answer: Any = None


@dataclass
class Endpoints:
    """How each kind is sent: ``route[kind] = (api_name, via)``, and the endpoints' parameter lists."""

    route: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)


def resolve_endpoints(info: dict[str, Any], mix: dict[str, float]) -> Endpoints:
    """Map each kind of ``mix`` (and ``audit``) to an endpoint the app lists, a predict fallback, or a skip."""
    named = info.get("named_endpoints", {})
    out = Endpoints(listed=sorted(named))
    for kind in dict.fromkeys([*mix, "audit"]):
        found = next((name for name in KIND_ENDPOINTS[kind] if name in named), None)
        if found:
            out.route[kind] = (found, "own endpoint")
            out.parameters[kind] = named[found].get("parameters", [])
        elif kind in FALLBACK_TO_PREDICT and "/predict" in named:
            out.route[kind] = ("/predict", FALLBACK_TO_PREDICT[kind])
        else:
            out.skipped[kind] = f"skipped: no {KIND_ENDPOINTS[kind][0].lstrip('/')} endpoint"
    return out


def make_plan(mix: dict[str, float], kinds: list[str], clients: int, per_client: int, images: list[str], sample: int, seed: int) -> list[list[Request]]:
    """The requests of every client (seeded); ``sample`` of them, spread over clients and kinds, are marked."""
    weights = [mix[k] for k in kinds]
    plan: list[list[Request]] = []
    for c in range(clients):
        rng = random.Random(f"{seed}:{c}")
        previous: str | None = None
        requests = []
        for r in range(per_client):
            kind = rng.choices(kinds, weights)[0]
            if kind == "cam" and previous is not None:
                image = previous
                method = rng.choice(METHODS[1:])
                threshold = rng.choice((127, 180))
            else:
                image, method, threshold = rng.choice(images), "gradcam", 127
            previous = image
            requests.append(Request(c, r, kind, image, method, threshold))
        plan.append(requests)
    flat = [req for requests in plan for req in requests if req.kind != "audit"]
    if sample > 0 and flat:
        by_kind: dict[str, list[Request]] = {}
        for req in flat:
            by_kind.setdefault(req.kind, []).append(req)
        chosen: list[Request] = []
        rng = random.Random(f"{seed}:sample")
        pools = [rng.sample(v, len(v)) for v in by_kind.values()]
        while len(chosen) < min(sample, len(flat)):
            for pool in pools:
                if pool and len(chosen) < sample:
                    chosen.append(pool.pop())
        for req in chosen:
            req.sample = True
    return plan


def generic_arguments(parameters: list[dict[str, Any]], image: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for an endpoint known only by ``view_api``: files get ``image``, the rest their default
    (else an empty text, or Gradio's example value), ``overrides`` win."""
    from gradio_client import handle_file

    kwargs: dict[str, Any] = {}
    for p in parameters:
        name = p.get("parameter_name") or p.get("label")
        if name in overrides:
            kwargs[name] = overrides[name]
        elif str(p.get("component", "")).lower() in ("file", "image", "uploadbutton", "imageeditor", "files"):
            kwargs[name] = handle_file(image)
        elif p.get("parameter_has_default"):
            kwargs[name] = p.get("parameter_default")
        elif str(p.get("component", "")).lower() in ("textbox", "code", "markdown"):
            kwargs[name] = ""  # an empty text field (Gradio's example text would be typed input)
        else:
            kwargs[name] = p.get("example_input")
    return kwargs


class Caller:
    """Sends a :class:`Request` through one client and turns the answer into an :class:`Outcome`."""

    def __init__(self, client: Any, endpoints: Endpoints, images_dir: Path, timeout: float, extra_args: dict[str, dict]) -> None:
        self.client, self.endpoints, self.images_dir = client, endpoints, images_dir
        self.timeout, self.extra_args = timeout, extra_args

    def submit(self, req: Request):
        from gradio_client import handle_file

        api_name = self.endpoints.route[req.kind][0]
        path = str(self.images_dir / req.image)
        if api_name == "/predict":
            job = self.client.submit(handle_file(path), "", "cpu", req.method, "top-1", req.threshold, "", api_name="/predict")
        else:
            kwargs = generic_arguments(self.endpoints.parameters.get(req.kind, []), path, self.extra_args.get(req.kind, {}))
            job = self.client.submit(api_name=api_name, **kwargs)
        return api_name, job

    def __call__(self, req: Request, keep: bool = False) -> Outcome:
        start = time.monotonic()
        api_name = self.endpoints.route[req.kind][0]
        try:
            api_name, job = self.submit(req)
            try:
                answer = job.result(timeout=self.timeout)
            except TimeoutError:
                job.cancel()
                raise TimeoutError(f"no answer within {self.timeout:.0f} s") from None
            seconds = time.monotonic() - start
            downloads: list[str] = []
            printed = fingerprint(answer, downloads)
            for path in downloads:  # the client's copies: compared, not kept
                Path(path).unlink(missing_ok=True)
            return Outcome(req, api_name, start, seconds, "ok", answer=printed if (keep or req.sample) else None)
        except Exception as exc:  # noqa: BLE001 - classified
            status = "queue_full" if is_queue_full(exc) else "error"
            return Outcome(req, api_name, start, time.monotonic() - start, status, one_line(exc))


def new_client(url: str, download_dir: Path):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(download_dir), analytics_enabled=False)


# ================================================================================================ phases
def run_load(server: Server, plan: list[list[Request]], endpoints: Endpoints, args: argparse.Namespace, downloads: Path) -> tuple[list[Outcome], float, int]:
    """All clients at once; ``(outcomes, wall seconds, requests not sent because of --max-seconds)``."""
    barrier = threading.Barrier(len(plan) + 1)
    deadline_box: list[float] = []
    results: list[list[Outcome]] = [[] for _ in plan]
    not_sent = [0] * len(plan)
    failures: list[str] = []

    def visitor(c: int) -> None:
        client = None
        try:
            client = new_client(server.url, downloads / f"c{c}")
            caller = Caller(client, endpoints, args.images, args.timeout, args.endpoint_args)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"client {c}: {one_line(exc)}")
            barrier.wait()
            not_sent[c] = len(plan[c])
            return
        barrier.wait()
        for i, req in enumerate(plan[c]):
            if time.monotonic() > deadline_box[0]:
                not_sent[c] = len(plan[c]) - i
                break
            results[c].append(caller(req))
        client.close()

    threads = [threading.Thread(target=visitor, args=(c,), daemon=True) for c in range(len(plan))]
    for t in threads:
        t.start()
    deadline_box.append(time.monotonic() + args.max_seconds)
    barrier.wait()
    start = time.monotonic()
    deadline_box[0] = start + args.max_seconds
    total = sum(len(p) for p in plan)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=5)
            if t.is_alive():
                break
        done = sum(len(r) for r in results)
        log(f"burst: {done}/{total} answered, {time.monotonic() - start:.0f} s")
        if time.monotonic() > deadline_box[0] + args.timeout + 30:
            failures.append("clients still busy long after --max-seconds: abandoned")
            break
    wall = time.monotonic() - start
    for message in failures:
        log(message)
    outcomes = [o for r in results for o in r]
    return outcomes, wall, sum(not_sent)


def summarise_outcomes(outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == "ok"]
    errors = [o for o in outcomes if o.status == "error"]
    full = [o for o in outcomes if o.status == "queue_full"]
    per_kind = {}
    for kind in dict.fromkeys(o.request.kind for o in outcomes):
        mine = [o for o in outcomes if o.request.kind == kind]
        per_kind[kind] = {
            "endpoint": mine[0].endpoint,
            "sent": len(mine),
            "ok": sum(o.status == "ok" for o in mine),
            "latency_s": percentiles([o.seconds for o in mine if o.status == "ok"]),
        }
    messages: dict[str, int] = {}
    for o in errors + full:
        messages[o.message] = messages.get(o.message, 0) + 1
    return {
        "sent": len(outcomes),
        "ok": len(ok),
        "errors": len(errors),
        "queue_full": len(full),
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "latency_s": percentiles([o.seconds for o in ok]),
        "per_kind": per_kind,
        "messages": dict(sorted(messages.items(), key=lambda kv: -kv[1])[:10]),
    }


def serial_check(server: Server, outcomes: list[Outcome], endpoints: Endpoints, args: argparse.Namespace, downloads: Path) -> dict[str, Any]:
    """The sampled requests again, one by one; their answers must equal those given under load."""
    sampled = [o for o in outcomes if o.request.sample and o.status == "ok"]
    client = new_client(server.url, downloads / "serial")
    caller = Caller(client, endpoints, args.images, args.timeout, args.endpoint_args)
    mismatches, failed = [], []
    for o in sampled:
        again = caller(o.request, keep=True)
        if again.status != "ok":
            failed.append(f"{o.request.kind} {o.request.image}: {again.message}")
        elif again.answer != o.answer:
            mismatches.append(f"{o.request.kind} {o.request.image} {o.request.method}/{o.request.threshold}")
    client.close()
    return {
        "compared": len(sampled) - len(failed),
        "mismatches": len(mismatches),
        "mismatched": mismatches,
        "failed": failed,
        "kinds": sorted({o.request.kind for o in sampled}),
    }


def flood(server: Server, n: int, images: list[str], args: argparse.Namespace, downloads: Path) -> dict[str, Any]:
    """``n`` predict jobs joined at once through Gradio's documented HTTP API (``POST /gradio_api/call/predict``,
    the file uploaded once), so that they reach the queue faster than it drains: beyond its ``max_size`` Gradio must
    refuse them with a message (HTTP 503; gradio_client turns it into ``QueueError``). Every accepted job's stream is
    read to its end; then the server must still answer a predict."""
    import httpx

    base = server.url + "gradio_api/"
    name = images[0]
    with httpx.Client(timeout=httpx.Timeout(args.timeout), trust_env=False, limits=httpx.Limits(max_connections=64)) as http:
        with open(args.images / name, "rb") as fh:
            uploaded = http.post(base + "upload", files={"files": (name, fh, "image/png")})
        uploaded.raise_for_status()
        filedata = {"path": uploaded.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}
        body = {"data": [filedata, "", "cpu", "gradcam", "top-1", 127, ""]}

        def join(_: int) -> tuple[int, str]:
            try:
                r = http.post(base + "call/predict", json=body)
                return r.status_code, r.text
            except httpx.HTTPError as exc:
                return -1, one_line(exc)

        def read(event_id: str) -> str:
            try:
                with http.stream("GET", f"{base}call/predict/{event_id}") as r:
                    for line in r.iter_lines():
                        if line.startswith("event:") and line.split(":", 1)[1].strip() in ("complete", "error"):
                            return line.split(":", 1)[1].strip()
                return "no end"
            except httpx.HTTPError as exc:
                return one_line(exc)

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            joins = list(pool.map(join, range(n)))
        joined_s = time.monotonic() - start
        accepted = [json.loads(text)["event_id"] for code, text in joins if code == 200]
        refused: dict[str, int] = {}
        for code, text in joins:
            if code != 200:
                key = f"HTTP {code}: {text[:200]}"
                refused[key] = refused.get(key, 0) + 1
        with ThreadPoolExecutor(max_workers=64) as pool:
            ends = list(pool.map(read, accepted))
    seconds = time.monotonic() - start
    client = new_client(server.url, downloads / "flood")
    alive = Caller(client, Endpoints(route={"predict": ("/predict", "own endpoint")}), args.images, args.timeout, {})(
        Request(0, 0, "predict", name)
    )
    client.close()
    queue_full = sum(count for key, count in refused.items() if "queue is full" in key.lower())
    return {
        "submitted": n,
        "joined_in_s": round(joined_s, 2),
        "accepted": len(accepted),
        "completed_ok": ends.count("complete"),
        "completed_error": len(ends) - ends.count("complete"),
        "queue_full": queue_full,
        "other_refusals": sum(refused.values()) - queue_full,
        "refusal_messages": refused,
        "seconds": round(seconds, 1),
        "server_answers_after": alive.status == "ok",
    }


def audit_under_load(server: Server, endpoints: Endpoints, images: list[str], args: argparse.Namespace, downloads: Path) -> dict[str, Any]:
    """The audit endpoint runs while two clients keep sending predict requests."""
    if "audit" not in endpoints.route or endpoints.route["audit"][1] != "own endpoint":
        return {"skipped": "skipped: no audit endpoint"}
    audit_client = new_client(server.url, downloads / "audit")
    overrides = {**AUDIT_DEFAULTS, **args.audit_args}
    kwargs = generic_arguments(endpoints.parameters.get("audit", []), str(args.images / images[0]), overrides)
    start = time.monotonic()
    job = audit_client.submit(api_name=endpoints.route["audit"][0], **kwargs)
    predicts: list[Outcome] = []
    sent = [0]

    def keep_predicting(i: int) -> None:
        client = new_client(server.url, downloads / f"audit-predict{i}")
        caller = Caller(client, Endpoints(route={"predict": ("/predict", "own endpoint")}), args.images, args.timeout, {})
        k = 0
        while not job.done() and time.monotonic() - start < args.audit_timeout:
            sent[0] += 1
            predicts.append(caller(Request(100 + i, k, "predict", images[(k + i) % len(images)])))
            k += 1
        client.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(keep_predicting, i) for i in range(2)]
        try:
            answer = job.result(timeout=args.audit_timeout)
            status, message = "finished", ""
        except Exception as exc:  # noqa: BLE001
            answer, status, message = None, "queue_full" if is_queue_full(exc) else "error", one_line(exc)
        audit_seconds = time.monotonic() - start
        for f in futures:
            f.result(timeout=args.timeout + 30)
    during = [o for o in predicts if o.start < start + audit_seconds]
    paths: list[str] = []
    printed = fingerprint(answer, paths) if answer is not None else None
    audit_client.close()
    return {
        "endpoint": endpoints.route["audit"][0],
        "arguments": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(type(v).__name__)) for k, v in kwargs.items()},
        "status": status,
        "message": message,
        "seconds": round(audit_seconds, 1),
        "intermediate_outputs": len(job.outputs()),
        "answer_summary": _summarise_answer(printed),
        "predict_sent": sent[0],
        "predict_answered_ok": sum(o.status == "ok" for o in predicts),
        "predict_lost": sent[0] - len(predicts) + sum(o.status != "ok" for o in predicts),
        "predict_during_audit_s": percentiles([o.seconds for o in during if o.status == "ok"]),
    }


def _summarise_answer(value: Any, depth: int = 0) -> Any:
    """Shape of an answer for the report: numbers and short strings kept, containers summarised."""
    if isinstance(value, dict):
        if depth >= 2:
            return f"dict({len(value)})"
        return {k: _summarise_answer(v, depth + 1) for k, v in list(value.items())[:20]}
    if isinstance(value, list):
        return [_summarise_answer(v, depth + 1) for v in value[:6]] + ([f"... {len(value)} items"] if len(value) > 6 else [])
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


# ================================================================================================== main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16, help="simultaneous clients (default 16)")
    p.add_argument("--requests", type=int, default=25, help="requests per client (default 25)")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"request kinds and weights (default {DEFAULT_MIX}); kinds: {', '.join(KINDS)}")
    p.add_argument("--weights", default=None, help="model source for the app (CXRDEMO_WEIGHTS; default: the app's)")
    p.add_argument("--images", type=Path, default=DATA / "images", help="shared radiographs (default $CXRDEMO_DATA/images)")
    p.add_argument("--n-images", type=int, default=8, help="distinct images used (default 8)")
    p.add_argument("--concurrency", type=int, default=None, help="CXRDEMO_CONCURRENCY for the app (default: the app's, 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take (default 300)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="no new request of a burst after this many seconds of it (default 900)")
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds the app may take to serve (default 300)")
    p.add_argument("--bursts", type=int, default=1, help="bursts of --clients x --requests, one after the other (soak; default 1)")
    p.add_argument("--settle", type=float, default=20.0, help="seconds after a burst for the FDs to come back (default 20)")
    p.add_argument("--app-env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the app (repeatable)")
    p.add_argument("--sample", type=int, default=8, help="load answers compared with a serial rerun (default 8)")
    p.add_argument("--warmup", type=int, default=3, help="serial predict calls before the readings (default 3)")
    p.add_argument("--flood", type=int, default=0, help="predict jobs submitted at once after the load (default 0: none)")
    p.add_argument("--with-audit", action="store_true", help="run the audit endpoint while predict requests arrive")
    p.add_argument("--audit-args", type=json.loads, default={}, help=f"JSON object: audit arguments by name (default {json.dumps(AUDIT_DEFAULTS)})")
    p.add_argument("--audit-timeout", type=float, default=600.0, help="seconds the audit may take (default 600)")
    p.add_argument("--endpoint-args", type=json.loads, default={}, help="JSON: {kind: {argument: value}} for generic endpoints")
    p.add_argument("--cache-ttl", default=None, help="FREQ,AGE: launch with delete_cache=(FREQ, AGE) and watch the clean-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=REPO / "bench" / "load.json", help="result file (default bench/load.json)")
    p.add_argument("--keep", action="store_true", help="keep the run folder (app log, caches) after the run")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.n_images < 1 or args.bursts < 1:
        p.error("--clients, --requests, --bursts and --n-images must be at least 1")
    if any("=" not in item for item in args.app_env):
        p.error("--app-env: give KEY=VALUE")
    if args.cache_ttl:
        try:
            args.cache_ttl = [int(v) for v in args.cache_ttl.split(",")]
            assert len(args.cache_ttl) == 2 and min(args.cache_ttl) >= 1
        except (ValueError, AssertionError):
            p.error("--cache-ttl: give FREQ,AGE in whole seconds, e.g. 10,20")
    try:
        args.mix_weights = parse_mix(args.mix)
    except ValueError as exc:
        p.error(str(exc))
    return args


def pick_images(folder: Path, n: int) -> list[str]:
    if not folder.is_dir():
        raise SystemExit(f"error: no image folder {folder}; set CXRDEMO_DATA or pass --images DIR")
    names = [name for name in PREFERRED_IMAGES if (folder / name).is_file()]
    names += sorted(p.name for p in folder.glob("*.png") if p.name not in names)
    if not names:
        raise SystemExit(f"error: no PNG radiographs in {folder}")
    return names[:n]


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, (op, bound, _) in TARGETS.items():
        value = result["summary"].get(key)
        met = None if value is None else bool({"==": value == bound, "<": value < bound, "<=": value <= bound}[op])
        out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
    return out


def main(argv: list[str] | None = None) -> int:
    global QUIET
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client reads it: no telemetry calls
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    args = parse_args(argv)
    QUIET = args.quiet
    images = pick_images(args.images, args.n_images)
    run_dir = Path(tempfile.mkdtemp(prefix="cxrdemo-load-"))
    downloads = run_dir / "client"
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], REPO) if argv is None else "bench/load.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            "clients": args.clients, "requests_per_client": args.requests, "mix": args.mix_weights, "images": images,
            "weights": args.weights or "app default", "concurrency": args.concurrency or "app default",
            "timeout_s": args.timeout, "max_seconds": args.max_seconds, "seed": args.seed, "bursts": args.bursts,
            "app_env": args.app_env,
        },  # fmt: skip
    }
    log(f"starting the app ({'--cache-ttl launcher' if args.cache_ttl else 'python app.py'}) in {run_dir}")
    server = start_server(args, run_dir)
    stopped = None
    try:
        page_s = wait_page(server, args.start_timeout)
        log(f"page up after {page_s:.1f} s")
        client = new_client(server.url, downloads / "main")
        info = client.view_api(print_info=False, return_format="dict")
        endpoints = resolve_endpoints(info, args.mix_weights)
        # The first answer: a failure here (e.g. a request that meets the start-up warm-up) is reported, then retried.
        first_errors: list[str] = []
        caller = Caller(client, endpoints, args.images, args.start_timeout, {})
        while True:
            first = caller(Request(-1, 0, "predict", images[0]))
            if first.status == "ok":
                break
            first_errors.append(f"{time.monotonic() - server.spawned:.1f} s: {first.message}")
            log(f"first predict failed: {first.message}")
            if time.monotonic() - server.spawned > args.start_timeout or len(first_errors) >= 5:
                raise SystemExit(f"error: no predict answer; last error: {first.message}")
            time.sleep(0.5)
        first_s = time.monotonic() - server.spawned
        log(f"first answer after {first_s:.1f} s; endpoints {endpoints.listed}; skipped {endpoints.skipped or 'none'}")
        result["cold_start"] = {
            "spawn_to_page_s": round(page_s, 2),
            "spawn_to_first_answer_s": round(first_s, 2),
            "first_answer_attempt_errors": first_errors,
            "launcher": server.launcher,
        }
        result["endpoints"] = {
            "listed": endpoints.listed,
            "used": {k: {"endpoint": v[0], "via": v[1]} for k, v in endpoints.route.items() if k in args.mix_weights},
            "skipped": {k: v for k, v in endpoints.skipped.items() if k in args.mix_weights or k == "audit"},
        }

        warm = Caller(client, endpoints, args.images, args.timeout, args.endpoint_args)
        serial_predict = [warm(Request(-1, i, "predict", images[(i + 1) % len(images)])).seconds for i in range(args.warmup)]
        for kind in endpoints.route:
            if kind in args.mix_weights and kind not in ("predict", "audit") and endpoints.route[kind][1] == "own endpoint":
                warm(Request(-1, 0, kind, images[0]))
        client.close()
        result["serial_predict_s"] = percentiles(serial_predict)
        before = server.readings()
        log(f"before: RSS {before['rss_mb']} MB, {before['fds']} FDs; load: {args.clients} clients x {args.requests} requests")

        kinds = [k for k in args.mix_weights if k in endpoints.route and args.mix_weights[k] > 0]
        if not kinds:
            raise SystemExit("error: no kind of the mix can be sent to this app")
        monitor = Monitor(server)
        monitor.start()
        outcomes: list[Outcome] = []
        wall = 0.0
        not_sent = 0
        bursts = []
        for b in range(args.bursts):
            # Each burst its own seeded plan; the serial-check sample comes from the first.
            plan = make_plan(args.mix_weights, kinds, args.clients, args.requests, images, args.sample if b == 0 else 0, args.seed + b)
            got, seconds, missed = run_load(server, plan, endpoints, args, downloads)
            outcomes += got
            wall += seconds
            not_sent += missed
            settle_s = settle(server, before["fds"], args.settle)
            reading = server.readings()
            bursts.append({"burst": b + 1, "wall_s": round(seconds, 1), "ok": sum(o.status == "ok" for o in got), "settle_s": settle_s, **reading})
            log(f"burst {b + 1}/{args.bursts}: {bursts[-1]['ok']} ok in {seconds:.1f} s; RSS {reading['rss_mb']} MB, {reading['fds']} FDs")
        peaks = monitor.stop()
        after = bursts[-1]
        load = summarise_outcomes(outcomes, wall)
        load["not_sent_time_bound"] = not_sent
        result["load"] = load
        log(f"load done: {load['ok']} ok, {load['errors']} errors, {load['queue_full']} queue full in {wall:.1f} s")
        log(f"after: RSS {after['rss_mb']} MB, {after['fds']} FDs; serial check of {args.sample} answers")
        result["serial_check"] = serial_check(server, outcomes, endpoints, args, downloads)
        after = {k: v for k, v in after.items() if k not in ("burst", "wall_s", "ok")}
        result["resources"] = {"before": before, "after": after, **peaks, "bursts": bursts}
        result["flood"] = flood(server, args.flood, images, args, downloads) if args.flood > 0 else {"skipped": "--flood 0"}
        if args.with_audit:
            log("audit under load")
            result["audit"] = audit_under_load(server, endpoints, images, args, downloads)
        else:
            result["audit"] = {"skipped": "not asked (--with-audit)"}
        if args.cache_ttl:
            wait = sum(args.cache_ttl) + 2
            log(f"waiting {wait} s for Gradio's clean-up (delete_cache={tuple(args.cache_ttl)})")
            time.sleep(wait)
            cleaned = server.readings()
            result["resources"]["after_cache_ttl"] = cleaned
            result["cache_cleanup"] = {
                "delete_cache": list(args.cache_ttl),
                "waited_s": wait,
                "gradio_cache_bytes_left": cleaned["gradio_cache"]["bytes"],
                "worked": cleaned["gradio_cache"]["bytes"] <= before["gradio_cache"]["bytes"] + 2**20,
            }
        result["resources"]["end"] = server.readings()
    finally:
        stopped = stop_server(server)
        result["stop"] = stopped
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            result["run_dir"] = str(run_dir)

    res = result["resources"]
    requests_ok = max(result["load"]["ok"], 1)
    grew = res["after"]["gradio_cache"]["bytes"] - res["before"]["gradio_cache"]["bytes"]
    grew_app = res["after"]["app_tmp"]["bytes"] - res["before"]["app_tmp"]["bytes"]
    result["summary"] = {
        "throughput_per_s": result["load"]["throughput_per_s"],
        "p50_s": (result["load"]["latency_s"] or {}).get("p50"),
        "p95_s": (result["load"]["latency_s"] or {}).get("p95"),
        "p99_s": (result["load"]["latency_s"] or {}).get("p99"),
        "errors": result["load"]["errors"],
        "queue_full": result["load"]["queue_full"],
        "rss_growth_mb": round(res["after"]["rss_mb"] - res["before"]["rss_mb"], 1),
        "fd_growth": res["after"]["fds"] - res["before"]["fds"],
        "gradio_cache_growth_mb": round(grew / 2**20, 1),
        "app_tmp_growth_mb": round(grew_app / 2**20, 1),
        "cache_kb_per_request": round((grew + grew_app) / 1024 / requests_ok, 1),
        "serial_mismatches": result["serial_check"]["mismatches"] + len(result["serial_check"]["failed"]),
        "spawn_to_page_s": result["cold_start"]["spawn_to_page_s"],
        "spawn_to_first_answer_s": result["cold_start"]["spawn_to_first_answer_s"],
        "first_answer_errors": len(result["cold_start"]["first_answer_attempt_errors"]),
        "gradio_cleanup_worked": result.get("cache_cleanup", {}).get("worked"),
        "flood_queue_full": result["flood"].get("queue_full"),
        "audit_predict_p95_s": (result["audit"].get("predict_during_audit_s") or {}).get("p95"),
    }
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = check_targets(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(format_summary(result))
    print(f"wrote {args.json}")
    missed = [k for k, t in result["targets"].items() if t["met"] is False]
    return 3 if missed and args.strict else 0


def format_summary(result: dict[str, Any]) -> str:
    s, res = result["summary"], result["resources"]
    b, a = res["before"], res["after"]
    lines = [
        f"cxrdemo load: {result['settings']['clients']} clients x {result['settings']['requests_per_client']} requests, "
        f"{result['load']['sent']} sent, {result['load']['ok']} ok in {result['load']['wall_s']} s",
        f"throughput {s['throughput_per_s']}/s; latency p50 {s['p50_s']} s, p95 {s['p95_s']} s, p99 {s['p99_s']} s",
        f"errors {s['errors']}, queue full {s['queue_full']}; serial check: {result['serial_check']['compared']} compared, "
        f"{result['serial_check']['mismatches']} differ",
        f"RSS {b['rss_mb']} -> {a['rss_mb']} MB (max {res['rss_max_mb']}); FDs {b['fds']} -> {a['fds']} (max {res['fds_max']})",
        f"Gradio cache {b['gradio_cache']['files']} files / {b['gradio_cache']['bytes'] / 2**20:.1f} MB -> "
        f"{a['gradio_cache']['files']} / {a['gradio_cache']['bytes'] / 2**20:.1f} MB; app temp {b['app_tmp']['files']} / "
        f"{b['app_tmp']['bytes'] / 2**20:.1f} MB -> {a['app_tmp']['files']} / {a['app_tmp']['bytes'] / 2**20:.1f} MB",
        f"cold start: spawn -> page {s['spawn_to_page_s']} s, spawn -> first answer {s['spawn_to_first_answer_s']} s",
    ]
    for error in result["cold_start"]["first_answer_attempt_errors"]:
        lines.append(f"cold start: a predict failed before the first answer, at {error}")
    for kind, why in result["endpoints"]["skipped"].items():
        if kind != "audit":
            lines.append(f"{kind}: {why}")
    for kind, used in result["endpoints"]["used"].items():
        if used["via"] != "own endpoint":
            lines.append(f"{kind}: {used['via']}")
    if "cache_cleanup" in result:
        c = result["cache_cleanup"]
        lines.append(
            f"Gradio clean-up (delete_cache={tuple(c['delete_cache'])}, waited {c['waited_s']} s): "
            f"{c['gradio_cache_bytes_left'] / 2**20:.1f} MB left: {'worked' if c['worked'] else 'DID NOT remove the files'}"
        )
    for error, count in result["stop"]["errors_in_log"].items():
        lines.append(f"app log: {count} x {error}")
    for phase in ("flood", "audit"):
        lines.append(f"{phase}: {json.dumps(result[phase])[:400]}")
    for key, t in result["targets"].items():
        word = "not measured" if t["met"] is None else "met" if t["met"] else "MISSED"
        lines.append(f"target {word}: {TARGETS[key][2]} = {t['value']} (target {t['target']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
