"""The audit page's data-set registry (CXRDEMO_AUDIT_DATASETS) with ground truth in any layout."""

from __future__ import annotations

from pathlib import Path

from cxrdemo.datasets.samples import read_label_csv
from cxrdemo.datasets.nih import read_box_csv
from cxrdemo.webapp.datasets import ENV, DatasetRegistry, parse_entry
from tests import datasets_fixtures as fx


def test_registry_converts_other_layouts_once(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    ref = fx.nih_reference(data_dir)
    imgs = tmp_path / "imgs" / "train"
    imgs.mkdir(parents=True)
    for stem in {s for s, _, _ in ref}:
        (imgs / f"{stem}.png").symlink_to(data_dir / "images" / f"{stem}.png")
    ann = fx.write_vindr(tmp_path, ref)
    odd = tmp_path / "vindr-boxes.txt"  # a name that says nothing: the prefix forces the layout
    odd.write_text(ann.read_text())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    monkeypatch.setenv(ENV, f"vin={tmp_path / 'imgs'}:vindr:{odd}:vindr:{odd};broken={tmp_path / 'imgs'}:{bad}")
    registry = DatasetRegistry(tmp_path, [], tmp_path / "none", tmp_path / "work")
    (vin,) = registry.all()
    assert vin.name == "vin" and vin.labels.is_relative_to(tmp_path / "work")
    labels, boxes = read_label_csv(vin.labels), read_box_csv(vin.boxes)
    assert set(labels) == {f"{s}.png" for s, _, _ in ref}  # the "No finding" rows' images are not in imgs: left out
    # every reader's box, in NIH's 1024 frame (these images are 1024 px: the same numbers)
    assert sum(len(v) for v in boxes.values()) == 2 * len(ref)
    assert any("linked into one folder" in n for n in vin.notes) and any("readers" in n for n in vin.notes)
    (note,) = registry.notes
    assert note.startswith(f"{ENV} entry 'broken':") and "layout not recognised" in note and note.endswith("(left out)")


def test_entry_with_layout_prefixes_parses(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "a.json").write_text("{}")
    d = parse_entry(f"x={tmp_path / 'imgs'}:coco:{tmp_path / 'a.json'}:coco:{tmp_path / 'a.json'}", tmp_path)
    assert (d.labels_layout, d.boxes_layout, d.labels, d.boxes) == ("coco", "coco", tmp_path / "a.json", tmp_path / "a.json")
    plain = parse_entry(f"y={tmp_path / 'imgs'}:{tmp_path / 'a.json'}", tmp_path)
    assert plain.labels_layout is None and plain.boxes is None
