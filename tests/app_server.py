"""Helpers for the app tests: load ``app.py`` and serve it in-process on a free loopback port (no browser here)."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_app_module() -> ModuleType:
    """Import the top-level ``app.py`` (the repository root is put on ``sys.path`` when it is not there)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import app

    return app


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningApp:
    """An app served by this process."""

    url: str
    demo: Any
    resources: Any
    module: ModuleType

    def close(self) -> None:
        self.demo.close()


def start_app(model_dir: Path, examples_dir: Path, export_root: Path) -> RunningApp:
    """Build the app on ``model_dir`` (CPU) with examples from ``examples_dir`` and serve it on a free port."""
    module = load_app_module()
    from cxrdemo.webapp.models import warm_up
    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.state import Settings

    resources = make_resources(REPO, examples_folder=examples_dir, export_root=export_root)
    resources.default = Settings(source=str(model_dir), device="cpu")
    demo, resources = module.prepare(resources, warm=False)
    warm_up(resources.cache, resources.default)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **module.launch_options(resources),
    )
    return RunningApp(url, demo, resources, module)
