"""Shared fixtures: the shared NIH data (by path, never copied) and a small model folder built per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))

#: Shared NIH images that carry a radiologist's box (see ../shared/data/nih/boxes.csv).
BOXED = {
    "00013125_000.png": "Cardiomegaly",
    "00000468_017.png": "Atelectasis",
    "00022084_000.png": "Pneumonia",
    "00013911_000.png": "Nodule",
    "00026911_000.png": "Infiltration",
}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared NIH folder; tests that need it skip (with the reason) where it is missing."""
    if not (DATA / "images").is_dir():
        pytest.skip(f"shared NIH data not found at {DATA} (set CXRDEMO_DATA)")
    return DATA


@pytest.fixture(scope="session")
def images_dir(data_dir: Path) -> Path:
    return data_dir / "images"


def calibrated_model(input_size: int, batches: int = 4):
    """A randomly initialised MobileNetV3-Small multi-task model (seed 0) in eval mode, BatchNorm calibrated.

    Freshly initialised BatchNorm statistics shrink the final features to ~1e-9, so every image would get the same
    output; a few random batches in train mode make different images give different answers.
    """
    import torch

    from cxrdemo.models.config import ModelConfig
    from cxrdemo.models.cln import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="mobilenet_v3_small", input_size=input_size))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(8, 3, input_size, input_size) * 4 - 2)
    return model.eval()


def calibrated_model_folder(folder: Path, input_size: int, batches: int = 4) -> Path:
    """:func:`calibrated_model` saved as a model folder (config.json + model.safetensors) in ``folder``."""
    from cxrdemo.models.weights import save_model

    return save_model(calibrated_model(input_size, batches), folder)


def write_csv(path: Path, rows, fieldnames=None) -> Path:
    """Write dict ``rows`` as a CSV with a header (``fieldnames``: the first row's keys by default)."""
    import csv

    rows = list(rows)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames or rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised MobileNetV3-Small model folder (fast; tests of plumbing, not of accuracy)."""
    folder = tmp_path_factory.mktemp("model")
    calibrated_model_folder(folder, 128)
    return folder


@pytest.fixture(scope="session")
def predictor(model_dir: Path):
    from cxrdemo.predict import Predictor

    return Predictor.from_source(str(model_dir), device="cpu")


#: The shared NIH image with one Atelectasis box that the web-app tests analyse.
WEBAPP_IMAGE = "00000468_017.png"


@pytest.fixture(scope="module")
def cache():
    """A web-app model cache of its own per test module (2 models, as the app keeps)."""
    from cxrdemo.webapp import models

    return models.ModelCache(capacity=2)


@pytest.fixture(scope="module")
def settings(model_dir: Path):
    """Web-app settings for the small test model on the CPU."""
    from cxrdemo.webapp import state

    return state.Settings(source=str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def boxed_view(cache, settings, images_dir: Path):
    """The web app's view of :data:`WEBAPP_IMAGE` analysed once per test module."""
    from cxrdemo.webapp import actions, upload

    return actions.analyse_case(cache, upload.read_upload(images_dir / WEBAPP_IMAGE), settings)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, and immune to a busy shared CPU (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
