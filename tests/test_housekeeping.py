"""A long-running server stays flat: malloc arenas capped, Gradio's cache clean-up safe under concurrent adds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from cxrdemo.webapp.housekeeping import limit_malloc_arenas, snapshot_cleanup


def test_malloc_arenas_capped_on_linux():
    assert limit_malloc_arenas(2) is sys.platform.startswith("linux")


def _gradio_cleanup():
    from gradio import route_utils

    return getattr(route_utils.delete_files_created_by_app, "__wrapped_original__", route_utils.delete_files_created_by_app)


def test_snapshot_cleanup_survives_files_added_meanwhile(tmp_path):
    """Gradio's own clean-up, run while another thread keeps adding files, removes old files and never raises."""
    old = []
    for i in range(400):
        path = tmp_path / f"old{i}.bin"
        path.write_bytes(b"x")
        old.append(str(path))
    time.sleep(0.05)  # Gradio ages files by st_ctime, which only time moves
    live = set(old)
    blocks = SimpleNamespace(blocks={}, temp_file_sets=[live])
    stop = threading.Event()

    def add_files():
        k = 0
        while not stop.is_set() and k < 3000:  # bounded: a busy request thread, not a runaway
            path = tmp_path / f"new{k}.bin"
            path.write_bytes(b"y")
            live.add(str(path))
            k += 1

    adder = threading.Thread(target=add_files)
    adder.start()
    try:
        cleanup = snapshot_cleanup(_gradio_cleanup())
        for _ in range(5):
            cleanup(blocks, 0)  # every file that existed when the round began is old enough
    finally:
        stop.set()
        adder.join()
    assert not any(os.path.exists(p) for p in old)
    assert not (set(old) & live)  # deleted names left the live set
    assert all(os.path.exists(p) for p in live)  # files added during the last round kept for the next one
    assert snapshot_cleanup(cleanup) is cleanup  # installing twice wraps once


def test_cleanup_failure_is_logged_not_raised(caplog):
    def broken(blocks, age):
        raise RuntimeError("Set changed size during iteration")

    snapshot_cleanup(broken)(SimpleNamespace(blocks={}, temp_file_sets=[set()]), 1)
    assert "clean-up failed" in caplog.text


def test_remove_on_exit(tmp_path):
    folder = tmp_path / "exports"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_text("x")
    code = f"from cxrdemo.webapp.housekeeping import remove_on_exit\nremove_on_exit({str(folder)!r})\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert not folder.exists()
