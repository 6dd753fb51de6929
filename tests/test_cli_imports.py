"""`python -m cxrdemo --help` and `python -m cxrdemo predict --help` answer without importing torch (or gradio)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "pytorch_grad_cam", "gradio", "cv2", "matplotlib")


@pytest.mark.parametrize("args", [["--help"], ["predict", "--help"]])
def test_help_does_not_import_heavy_packages(args):
    code = (
        "import sys\n"
        "from cxrdemo.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_vocabulary_modules_are_torch_free():
    code = ("import sys\nimport cxrdemo.cams, cxrdemo.datasets.nih, cxrdemo.models.config, cxrdemo.models.labels, "
            "cxrdemo.datasets.vocabulary, cxrdemo.datasets.loader\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_sample_and_cross_validation_modules_are_torch_free():
    """The CSV/Sample layer (used by the audit and the app), the threshold rule and the out-of-fold statistics load
    without torch; only the training Dataset (cxrdemo.training.dataset) needs it."""
    code = "import sys\nimport cxrdemo.datasets.samples, cxrdemo.training.thresholds, cxrdemo.training.cv, cxrdemo.training.cv_card, cxrdemo.training.cv_command\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _runtime_nodes(tree):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    import ast

    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def test_no_import_cycle_inside_the_package():
    """No chain of package modules imports back into itself (module-level and deferred imports alike)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "cxrdemo"
    edges: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
                targets.add(stem)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cxrdemo"):
                targets.add(node.module)
        edges[module] = {t for t in targets if t != module}
    # A cycle among module-level or function-level imports is a tangle either way: find any.
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node)
