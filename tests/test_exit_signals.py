"""SIGTERM / SIGINT remove the app's export folder, as a normal exit does (issue 19, finding 7).

Each test starts a process, waits until it says it is ready (a deadline only guards against a hang: no timing is
asserted), sends the signal and checks the folder is gone and the process ended the way the signal says.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: A hang guard, not a timing assertion: the app imports torch and Gradio on a loaded 2-core machine.
DEADLINE_S = 300

#: The child process. Its first lines give SIGINT Python's usual handler: a process started in the background by a
#: non-interactive shell (``cmd &``, as a CI script may start the suite) inherits SIGINT *ignored*, Python then
#: leaves it ignored, and so does :func:`run_on_signals` (on purpose: test_ignored_signal_stays_ignored); the test
#: is about a server started the usual way, so it must not depend on how its own parent was started.
LAUNCHER = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
import sys, time
from pathlib import Path
from cxrdemo.webapp.housekeeping import remove_on_exit
folder = Path(sys.argv[1])
folder.mkdir()
(folder / "panels").mkdir()
(folder / "panels" / "a.png").write_bytes(b"x" * 1000)
remove_on_exit(folder)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}
    env.pop("CXRDEMO_PUBLIC", None)
    return env


def _launch(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(folder)], cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_the_export_folder(tmp_path, signum):
    folder = tmp_path / "exports"
    proc = _launch(folder)
    try:
        assert folder.is_dir()
        proc.send_signal(signum)
        code = proc.wait(timeout=DEADLINE_S)
    finally:
        proc.kill()
    assert not folder.exists()
    if signum == signal.SIGTERM:
        assert code == -signal.SIGTERM  # the default action ran after the clean-up: ended by the signal
    else:
        assert code != 0  # KeyboardInterrupt, uncaught by the launcher, ends it with an error status


def test_ignored_signal_stays_ignored() -> None:
    """A server started with SIGINT ignored (``nohup``, ``cmd &``) keeps ignoring it: no handler is installed for it."""
    from cxrdemo.webapp.housekeeping import run_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        installed = run_on_signals(lambda: None)
        assert installed == [int(signal.SIGTERM)]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_the_real_app_and_removes_its_export_folder(tmp_path, model_dir):
    """``python app.py`` (its temporary export folder under TMPDIR) is stopped with SIGTERM as a Space stops it."""
    port = _port()
    env = _env(
        TMPDIR=str(tmp_path), GRADIO_SERVER_PORT=str(port), CXRDEMO_WEIGHTS=str(model_dir),
        CXRDEMO_EXAMPLES_DIR=str(tmp_path / "no-examples"), GRADIO_ANALYTICS_ENABLED="False",
    )  # fmt: skip
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + DEADLINE_S
        while not _accepts(port):
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-2000:]
            assert time.monotonic() < end, "the app did not start serving"
            time.sleep(0.5)
        folders = list(tmp_path.glob("cxrdemo-exports-*"))
        assert len(folders) == 1 and folders[0].is_dir()
        (folders[0] / "left.bin").write_bytes(b"x" * 10_000)  # what exports leave in it
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=DEADLINE_S)
    finally:
        proc.kill()
        log.close()
    assert code == -signal.SIGTERM
    assert not list(tmp_path.glob("cxrdemo-exports-*"))
