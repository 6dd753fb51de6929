"""cxrdemo.audit.baseline: the reproduce-chexnet predictions format, its one-line errors and round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrdemo.audit.baseline import match_images, read_predictions, write_predictions
from cxrdemo.errors import InputError
from cxrdemo.datasets.nih import NIH_CLASSES

TEACHER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "teacher" / "reproduce-chexnet_predictions.csv"
CLASSES = ["Atelectasis", "Cardiomegaly", "Pleural_Thickening"]
HEADER = "Image Index,prob_Atelectasis,prob_Cardiomegaly,prob_Pleural_Thickening,extra"


def write(tmp_path: Path, text: str, name: str = "preds.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, classes=CLASSES) -> str:
    with pytest.raises(InputError) as info:
        read_predictions(path, classes)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_reads_classes_in_the_asked_order_and_ignores_extra_columns(tmp_path):
    path = write(tmp_path, f"{HEADER}\na.png,0.1,0.2,0.3,zzz\nb.png,1,0,0.5,\n")
    preds = read_predictions(path, ["Pleural_Thickening", "Atelectasis"])
    assert list(preds) == ["a.png", "b.png"]
    assert preds["a.png"].tolist() == [0.3, 0.1]
    assert preds["b.png"].tolist() == [0.5, 1.0]


@pytest.mark.skipif(not TEACHER.is_file(), reason=f"teacher predictions not found at {TEACHER}")
def test_reads_the_reproduce_chexnet_file():
    preds = read_predictions(TEACHER, NIH_CLASSES)
    assert len(preds) == 515
    values = np.stack(list(preds.values()))
    assert values.shape == (515, 14) and values.min() >= 0 and values.max() <= 1


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.random((5, 3)).astype(np.float32)
    probs[0, 0], probs[1, 1] = 0.0, 1.0
    names = [f"{i:08d}_000.png" for i in range(5)]
    path = write_predictions(tmp_path / "out.csv", names, probs, CLASSES)
    back = read_predictions(path, CLASSES)
    assert list(back) == names
    assert np.array_equal(np.stack([back[n] for n in names]), probs.astype(np.float64))
    assert path.read_text().splitlines()[0] == "Image Index,prob_Atelectasis,prob_Cardiomegaly,prob_Pleural_Thickening"
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "bad.csv", names, probs * 2, CLASSES)


def test_missing_column(tmp_path):
    path = write(tmp_path, "Image Index,prob_Atelectasis\na.png,0.1\n")
    message = error_of(path)
    assert "missing columns prob_Cardiomegaly, prob_Pleural_Thickening" in message
    assert "Image Index" in error_of(write(tmp_path, "name,prob_Atelectasis\na.png,0.1\n", "noindex.csv"))


def test_row_with_the_wrong_number_of_cells(tmp_path):
    path = write(tmp_path, f"{HEADER}\na.png,0.1,0.2,0.3,x\nb.png,0.1,0.2\n")
    assert "row 2 (line 3) has 3 cells, the header has 5" in error_of(path)


def test_row_without_an_image_name(tmp_path):
    path = write(tmp_path, f"{HEADER}\n ,0.1,0.2,0.3,x\n")
    assert "row 1 (line 2) has no Image Index" in error_of(path)


def test_non_numeric_value(tmp_path):
    path = write(tmp_path, f"{HEADER}\na.png,0.1,0.2,0.3,x\nb.png,0.1,high,0.3,x\n")
    assert "row 2 (line 3), column prob_Cardiomegaly: 'high' is not a number" in error_of(path)


@pytest.mark.parametrize("cell", ["1.5", "-0.1", "nan", "inf"])
def test_value_out_of_range(tmp_path, cell):
    path = write(tmp_path, f"{HEADER}\na.png,0.1,0.2,0.3,x\nb.png,0.1,0.2,0.3,x\nc.png,0.1,0.2,{cell},x\n")
    assert f"row 3 (line 4), column prob_Pleural_Thickening: {cell} is not a probability in [0, 1]" in error_of(path)


def test_duplicate_image(tmp_path):
    path = write(tmp_path, f"{HEADER}\na.png,0.1,0.2,0.3,x\nb.png,0.1,0.2,0.3,x\na.png,0.1,0.2,0.3,x\n")
    assert "image a.png is listed twice (rows 1 and 3, line 4)" in error_of(path)


def test_empty_missing_and_header_only_files(tmp_path):
    assert "empty file" in error_of(write(tmp_path, "", "empty.csv"))
    assert "no prediction rows" in error_of(write(tmp_path, f"{HEADER}\n", "header.csv"))
    assert "cannot read" in error_of(tmp_path / "absent.csv")


def test_match_images():
    preds = {"a.png": np.zeros(3), "c.png": np.zeros(3)}
    assert match_images(["a.png", "b.png", "c.png", "a.png", "d.png"], preds) == (["a.png", "c.png"], 2)
    assert match_images([], preds) == ([], 0)
