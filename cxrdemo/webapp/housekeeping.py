"""Keeping a long-running server's footprint flat: memory arenas, Gradio's cache clean-up, the export folder.

Found by ``bench/load.py`` (see bench/RESULTS.md):

- glibc gives every thread that allocates its own malloc arena; Gradio serves from a thread pool, so RSS climbed by
  200-400 MB over a few bursts and stayed there. :func:`limit_malloc_arenas` caps the arenas (as the environment
  variable ``MALLOC_ARENA_MAX`` would, which must be set before the process starts).
- Gradio 6.31's scheduled cache clean-up (``delete_cache``) iterates over the live sets of temporary files; a
  request adding a file meanwhile raises "Set changed size during iteration", which ends the scheduled task for
  good, and the cache then grows without bound. :func:`harden_gradio_cache_cleanup` runs the same clean-up on a
  snapshot and never lets an exception end the schedule.
- The app's own export folder is a temporary folder: :func:`remove_on_exit` deletes it when the process exits,
  also on SIGTERM (what a Hugging Face Space sends on stop, which ``atexit`` alone misses: 60 MB were left behind,
  issue 19) and SIGINT.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any, Callable, Sequence

LOG = logging.getLogger("cxrdemo.app")
#: glibc's ``mallopt`` parameter number for the arena cap (``M_ARENA_MAX`` in malloc.h).
M_ARENA_MAX = -8
_SAFE_MARK = "_cxrdemo_snapshot_cleanup"


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for the rest of the process; ``False`` where there is no glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False


def snapshot_cleanup(original: Callable[[Any, int | None], None]) -> Callable[[Any, int | None], None]:
    """Wrap Gradio's ``delete_files_created_by_app(blocks, age)`` to run on copies of the live file sets.

    The original deletes old files from a copy, then the deleted names are taken out of the live sets; files added
    meanwhile are kept for the next round. An exception is logged, never raised (it would end the schedule).
    """
    if getattr(original, _SAFE_MARK, False):
        return original

    def cleanup(blocks: Any, age: int | None) -> None:
        try:
            live = list(blocks.temp_file_sets)
            before = [set(s) for s in live]
            proxy = SimpleNamespace(blocks=dict(blocks.blocks), temp_file_sets=[set(s) for s in before])
            original(proxy, age)
            for real, was, now in zip(live, before, proxy.temp_file_sets):
                real.difference_update(was - now)
        except Exception:  # noqa: BLE001 - a failed round must not end the schedule
            LOG.exception("Gradio cache clean-up failed this round; it will run again")

    setattr(cleanup, _SAFE_MARK, True)
    return cleanup


def harden_gradio_cache_cleanup() -> bool:
    """Install :func:`snapshot_cleanup` in place of Gradio's clean-up; ``False`` if Gradio has no such function."""
    try:
        from gradio import route_utils
    except ImportError:  # pragma: no cover - gradio is a requirement of the app
        return False
    original = getattr(route_utils, "delete_files_created_by_app", None)
    if original is None:
        return False
    route_utils.delete_files_created_by_app = snapshot_cleanup(original)
    return True


class FolderCleanup:
    """Remove one folder (and everything in it); calling it again does nothing more. Errors are ignored."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self.done = False

    def __call__(self) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
        shutil.rmtree(self.folder, ignore_errors=True)


#: The signals after which the process ends without ``atexit``: SIGTERM (a Space stopping, ``docker stop``) and
#: SIGINT (Ctrl+C, handled by Python as KeyboardInterrupt, which Gradio catches).
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_on_signals(cleanup: Callable[[], None], signums: Sequence[int] = EXIT_SIGNALS) -> list[int]:
    """Run ``cleanup`` when one of ``signums`` arrives, then do what the signal did before: the previous Python
    handler is called (SIGINT: KeyboardInterrupt, so Gradio closes its server as usual); a signal that had its
    default action is raised again with it (SIGTERM: the process ends, its status says "killed by SIGTERM").

    A signal that was ignored stays ignored. Handlers can only be installed from the main thread: elsewhere nothing
    is installed. Returns the signals now handled.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for signum in signums:
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue

        def handler(num: int, frame: FrameType | None, previous: Any = previous) -> None:
            cleanup()
            if callable(previous):
                previous(num, frame)
                return
            signal.signal(num, signal.SIG_DFL)
            os.kill(os.getpid(), num)

        signal.signal(signum, handler)
        installed.append(int(signum))
    return installed


def remove_on_exit(folder: str | Path) -> FolderCleanup:
    """Delete ``folder`` (and everything in it) when the interpreter exits, and on SIGTERM or SIGINT
    (:func:`run_on_signals`; from the main thread). Returns the clean-up (idempotent), to run it earlier."""
    cleanup = FolderCleanup(folder)
    atexit.register(cleanup)
    run_on_signals(cleanup)
    return cleanup
