"""``pip install .``: the wheel carries the package, the embedded model and NIH's box list, and its ``cxrdemo``
command works outside the checkout.

The wheel is built with ``--no-build-isolation`` (no network): the test skips, with the reason, where the build
backend (hatchling, in requirements-dev.txt) is not installed. It is installed with ``--no-deps`` into a folder
(the dependencies are this environment's) and run from another folder, so nothing of the checkout is on the path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cxrdemo

REPO = Path(__file__).resolve().parent.parent
WEIGHT_FILES = ("config.json", "model.safetensors", "model.safetensors.sha256", "data_splits.json", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("the build backend hatchling is not installed (pip install -r requirements-dev.txt)")
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("cxrdemo-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``args`` with the installed wheel first on the path, from ``cwd`` (not the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    env.pop("CXRDEMO_WEIGHTS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_carries_package_weights_box_list_and_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"cxrdemo-{cxrdemo.__version__}.dist-info/METADATA").decode()
        entry = z.read(f"cxrdemo-{cxrdemo.__version__}.dist-info/entry_points.txt").decode()
        shipped_model = z.read("cxrdemo/_embedded/weights/model.safetensors")
    assert {f"cxrdemo/_embedded/weights/{name}" for name in WEIGHT_FILES} <= names
    assert "cxrdemo/resources/BBox_List_2017.csv.gz" in names and "cxrdemo/cli.py" in names
    assert {"cxrdemo/webapp/__init__.py", "cxrdemo/audit/__init__.py", "cxrdemo/render/__init__.py"} <= names
    # the model in the wheel is the checkout's, byte for byte (its committed checksum)
    expected = (REPO / "weights" / "model.safetensors.sha256").read_text().split()[0]
    assert hashlib.sha256(shipped_model).hexdigest() == expected
    assert not any(n.startswith(("tests/", "examples/", "bench/")) or "__pycache__" in n for n in names)
    assert re.search(r"^cxrdemo = cxrdemo\.cli:main$", entry, re.M)
    assert f"\nVersion: {cxrdemo.__version__}\n" in meta
    # requirements.txt pins exactly the package's dependencies plus its "models" extra (the app and the Space load
    # transformers and torchxrayvision models; a plain `pip install cxrdemo` does not need them)
    pinned = {line.split("==")[0].strip().lower() for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}  # fmt: skip
    requires = [line[len("Requires-Dist: "):] for line in meta.splitlines() if line.startswith("Requires-Dist: ")]
    core = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    models = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if re.search(r"extra == ['\"]models['\"]", r)}
    assert models == {"transformers", "torchxrayvision"}
    assert pinned == core | models and not core & models


def test_installed_command_runs_outside_the_checkout(installed: Path, tmp_path: Path, images_dir: Path) -> None:
    script = installed / "bin" / "cxrdemo"
    where = _run(installed, tmp_path, sys.executable, "-c", "import cxrdemo.locations as l; print(l.EMBEDDED_WEIGHTS_DIR)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == installed / "cxrdemo" / "_embedded" / "weights"  # the wheel's copy
    helped = _run(installed, tmp_path, sys.executable, str(script), "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cxrdemo")
    done = _run(installed, tmp_path, sys.executable, str(script), "predict", str(images_dir / "00013125_000.png"), "--cam", "none")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout.splitlines()[0])
    assert doc["model"]["source"].startswith(str(installed)) and doc["image"] == "00013125_000.png"
    assert doc["model"]["revision"] == (REPO / "weights" / "model.safetensors.sha256").read_text()[:12]
