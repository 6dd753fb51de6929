"""The example radiographs shipped in ``examples/images``: exactly the manifest's images, small, unchanged NIH
files, never an image the embedded model was validated on, and the app's default gallery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrdemo.webapp import resources

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "examples" / "images"
#: The brief's limit on what the repository carries as examples.
MAX_BYTES = 8 * 2**20


def _manifest_images() -> list[str]:
    return [ex.image for ex in resources.read_manifest(REPO / "examples" / "manifest.csv")]


def test_shipped_images_are_the_manifest_and_small() -> None:
    files = sorted(p.name for p in SHIPPED.iterdir())
    assert files == sorted(_manifest_images())
    assert sum((SHIPPED / name).stat().st_size for name in files) <= MAX_BYTES


def test_no_example_is_a_validation_image_of_the_embedded_model() -> None:
    splits = json.loads((REPO / "weights" / "data_splits.json").read_text())
    assert set(_manifest_images()).isdisjoint(splits["validation"])


def test_shipped_images_are_the_nih_files_unchanged(images_dir: Path) -> None:
    for name in _manifest_images():
        assert (SHIPPED / name).read_bytes() == (images_dir / name).read_bytes(), name


def test_default_gallery_is_the_shipped_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CXRDEMO_EXAMPLES_DIR", raising=False)
    monkeypatch.delenv("CXRDEMO_WEIGHTS", raising=False)
    made = resources.make_resources(REPO, export_root=tmp_path)
    assert made.examples_folder == SHIPPED.resolve()
    assert [ex.image for ex in made.examples] == _manifest_images()
    assert all(ex.seen == "train" for ex in made.examples)  # each caption says the model saw it in training
