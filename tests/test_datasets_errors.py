"""Bad ground-truth files: one line naming the file, row and field; caps on RLE strings, polygons, instances, rows
and file sizes (tighter in public mode); COCO RLE decoded as pycocotools does (test-only reference)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.datasets.limits import LOCAL, PUBLIC, limits
from cxrdemo.datasets.loader import load_ground_truth
from cxrdemo.datasets.masks import MaskFormatError, coco_counts, coco_encode, runs_from_counts, siim_runs
from cxrdemo.errors import InputError

VINDR_HEAD = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"


def _err(spec, **kw) -> str:
    with pytest.raises(InputError) as info:
        load_ground_truth(spec, **kw)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_malformed_rows_name_file_row_and_field(tmp_path: Path) -> None:
    p = tmp_path / "annotations_test.csv"
    p.write_text(VINDR_HEAD + "a,R1,Cardiomegaly,1,2,30,40\nb,R1,Cardiomegaly,1,2,abc,40\n")
    assert _err(p) == f"{p}, row 3, field 'x_max': 'abc' is not a number"
    p.write_text(VINDR_HEAD + "a,R1,Cardiomegaly,1,2,,40\n")
    assert "row 2, field 'x_max': empty while other corners are given" in _err(p)
    p.write_text(VINDR_HEAD + "a,R1,Cardiomegaly,10,2,5,40\n")
    assert "row 2" in _err(p) and "no area" in _err(p)
    p.write_text(VINDR_HEAD + "a,R1,Cardiomegaly,1,2,3,4,5,6\n")
    assert "row 2: 9 cells for 7 columns" in _err(p)
    p.write_text(VINDR_HEAD + "a,R1,Cardiomegaly,1,2,inf,4\n")
    assert "not a finite number" in _err(p)


def test_rsna_siim_coco_chexpert_errors(tmp_path: Path) -> None:
    r = tmp_path / "stage_2_train_labels.csv"
    r.write_text("patientId,x,y,width,height,Target\nu1,1,2,3,4,2\n")
    assert _err(r).endswith("row 2, field 'Target': '2'; Target is 0 or 1")
    s = tmp_path / "train-rle.csv"
    s.write_text("ImageId, EncodedPixels\n1.2.3, 5 10 7\n")
    assert "row 2, field 'EncodedPixels': 3 numbers" in _err(s)
    s.write_text("ImageId, EncodedPixels\n1.2.3, 1048570 10\n")
    assert "a run ends past pixel" in _err(s)
    c = tmp_path / "coco.json"
    c.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
                             "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5],
                                              "segmentation": {"size": [10, 10], "counts": "~~~"}}],
                             "categories": [{"id": 1, "name": "Mass"}]}))
    assert "row 1, field 'segmentation'" in _err(c)
    c.write_text("{\"images\": [1, ")
    assert "line 1, column" in _err(c) and "not JSON" in _err(c)
    x = tmp_path / "valid.csv"
    x.write_text("Path,No Finding,Edema,Cardiomegaly,Lung Opacity,Pneumonia\np/a.jpg,,2.0,,,\n")
    assert _err(x).endswith("row 2, field 'Edema': 2; a CheXpert label is 1.0, 0.0, -1.0 or blank")


def test_unknown_layout_lists_the_prefixes(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n")
    msg = _err(p)
    assert "layout not recognised" in msg and "vindr:" in msg and "coco:" in msg
    assert "does not exist" in _err(tmp_path / "missing.csv")


def test_caps_on_instances_rows_rle_polygons_and_size(tmp_path: Path) -> None:
    p = tmp_path / "annotations_test.csv"
    p.write_text(VINDR_HEAD + "".join(f"a,R{i},Mass,1,2,30,40\n" for i in range(5)))
    assert "more than 3 instances on image 'a'" in _err(p, limits={"instances_per_image": 3})
    assert "more than 4 instances" in _err(p, limits={"instances": 4})
    assert "more than 2 rows" in _err(p, limits={"rows": 2})
    assert "annotation files are capped" in _err(p, limits={"file_bytes": 100})
    s = tmp_path / "train-rle.csv"
    s.write_text("ImageId, EncodedPixels\n1.2.3, " + " ".join(["1 1"] * 50) + "\n")
    assert "RLE string of 199 characters; the cap is 100" in _err(s, limits={"rle_chars": 100})
    assert "50 runs; the cap is 10" in _err(s, limits={"rle_runs": 10})
    assert "mask of 1024 x 1024 pixels" in _err(s, limits={"mask_pixels": 1000})
    j = tmp_path / "gt_annotations_val.json"
    j.write_text(json.dumps({"p1_s1_v1": {"img_size": [100, 100], "Edema": [[[i % 50, i // 2 % 50] for i in range(30)]]}}))
    assert "a polygon of 30 vertices; the cap is 20" in _err(j, limits={"polygon_vertices": 20})
    z = tmp_path / "annotations_train.csv.gz"
    z.write_bytes(gzip.compress((VINDR_HEAD + "a,R1,Mass,1,2,30,40\n" * 200).encode()))
    assert "inflates to more than" in _err(z, limits={"file_bytes": 1000})


def test_public_mode_is_tighter_and_names_no_server_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for field in ("file_bytes", "rows", "instances", "rle_chars", "rle_runs", "polygon_vertices", "mask_pixels", "scan_files"):
        assert getattr(PUBLIC, field) < getattr(LOCAL, field), field
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    assert limits() == PUBLIC
    p = tmp_path / "annotations_test.csv"
    p.write_text(VINDR_HEAD + "a,R1,Mass,1,2,x,40\n")
    msg = _err(p)
    assert msg.startswith("annotations_test.csv, row 2") and str(tmp_path) not in msg
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    assert limits() == LOCAL


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own numpy-2 warning
def test_coco_rle_matches_pycocotools_both_ways() -> None:
    mask_api = pytest.importorskip("pycocotools.mask")  # test-only reference (requirements-dev.txt)
    rng = np.random.default_rng(0)
    for t in range(60):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = rng.random((h, w)) < rng.random()
        if t % 3 == 0:
            m[:] = False
            m[rng.integers(0, h):, rng.integers(0, w):] = True
        ref = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        assert coco_encode(m)["counts"] == ref["counts"].decode()
        ours = runs_from_counts(coco_counts(ref["counts"].decode(), LOCAL), h, w, LOCAL)
        assert np.array_equal(ours.decode(), mask_api.decode(ref).astype(bool))
        if m.any():
            rr, cc = np.nonzero(m)
            assert ours.box.xyxy == (cc.min(), rr.min(), cc.max() + 1, rr.max() + 1)


def test_rle_strings_are_validated() -> None:
    with pytest.raises(MaskFormatError, match="not COCO RLE"):
        coco_counts("0 1", LOCAL)
    with pytest.raises(MaskFormatError, match="ends inside a count"):
        coco_counts("a", LOCAL)  # 'a' = 49 + 0x20 continuation, then nothing
    with pytest.raises(MaskFormatError, match="add up to"):
        runs_from_counts([3, 2], 2, 2, LOCAL)
    with pytest.raises(MaskFormatError, match="negative"):
        siim_runs("-1 3", 2, 2, LOCAL)
    # SIIM's relative offsets, column-major on a 3-row, 2-column image: skip 1, 2 on (flat 1, 2 = column 0, rows
    # 1-2); skip 1 from the run's end (flat 3), 1 on (flat 4 = column 1, row 1)
    m = siim_runs("1 2 1 1", 3, 2, LOCAL).decode()
    assert m.tolist() == [[False, False], [True, True], [True, False]]


def test_uncompressed_rle_counts_must_be_whole_numbers() -> None:
    with pytest.raises(MaskFormatError, match="whole numbers"):
        runs_from_counts([1, "a", 2], 2, 2, LOCAL)
    with pytest.raises(MaskFormatError, match="whole numbers"):
        runs_from_counts([1.5, 2.5], 2, 2, LOCAL)
    assert runs_from_counts([1, 2, 1], 2, 2, LOCAL).decode().tolist() == [[False, True], [True, False]]
    # adjacent runs (an empty run of 0s between them) decode as one: pixels 1..5 of a 2 x 3 image, column-major
    assert runs_from_counts([1, 2, 0, 3], 2, 3, LOCAL).decode().tolist() == [[False, True, True], [True, True, True]]


def test_dicom_size_from_a_deflated_header_without_inflating_the_file(tmp_path: Path) -> None:
    """A 400 MiB deflated DICOM (bench/dicom_bomb.py) is sized from the first MiB of its inflated stream: the
    allocation peak stays below the 1 MiB header plus the 1 MiB of compressed input read (3 MiB with slack), far
    from the 400 MiB a full inflation needs."""
    import importlib.util
    import tracemalloc

    from cxrdemo.datasets.files import header_size

    spec = importlib.util.spec_from_file_location("dicom_bomb", Path(__file__).resolve().parents[1] / "bench" / "dicom_bomb.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = bench.write_deflated_bomb(tmp_path / "bomb.dcm", frames=100)
    tracemalloc.start()
    try:
        size = header_size(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == (2048, 2048) and peak < 3 * 2**20


def test_a_long_siim_rle_cell_is_read_up_to_the_cap(tmp_path: Path) -> None:
    """A 400 KB RLE cell (over the csv module's 128 KiB default field limit) is read; the RLE cap still applies."""
    runs = " ".join(["1 1"] * 100_000)  # 100,000 runs in a 1024 x 1024 image: 399,999 characters
    s = tmp_path / "train-rle.csv"
    s.write_text("ImageId, EncodedPixels\n1.2.3, " + runs + "\n")
    gt = load_ground_truth(s)
    assert int(gt.regions["1.2.3"][0].mask(1024, 1024).sum()) == 100_000
    assert "RLE string of 399,999 characters" in _err(s, limits={"rle_chars": 300_000})


def test_vindr_reader_column_spelt_rad_ID(tmp_path: Path) -> None:
    p = tmp_path / "annotations_train.csv"
    p.write_text("image_id,rad_ID,class_name,x_min,y_min,x_max,y_max\na,R3,Mass,1,2,30,40\n")
    (tmp_path / "image_labels_train.csv").write_text("image_id,rad_ID,Mass,No finding\na,R3,1,0\n")
    gt = load_ground_truth(p)
    assert gt.readers() == ["R3"] and gt.labels["a"] == {"Mass": 1, "No finding": 0}


_ODD = (None, [], {}, "x", -1, 1e309, [1, 2], {"a": 1}, True, "1 2 3", 10**12, [[1, 2]], "-1")


def _mutate(rng, value) -> None:
    import copy

    if isinstance(value, (dict, list)) and value:
        key = rng.choice(list(value)) if isinstance(value, dict) else rng.randrange(len(value))  # the same draws as before
        if rng.random() < 0.5:
            value[key] = copy.deepcopy(rng.choice(_ODD))
        else:
            _mutate(rng, value[key])


def test_mutated_files_give_one_line_errors_never_a_traceback(tmp_path: Path) -> None:
    """Seeded mutations of a small file in every layout (a cell or a JSON value replaced by an odd value): each
    either loads (its masks decode) or is refused with an InputError; no other exception escapes."""
    import random

    from cxrdemo.boxes import Box
    from tests import datasets_fixtures as fx

    ref = [("a", "Mass", Box(1, 2, 30, 40)), ("b", "Nodule", Box(5, 5, 50, 60))]
    files = [fx.write_vindr(tmp_path, ref), fx.write_vinbigdata(tmp_path, ref), fx.write_rsna(tmp_path, ref),
             fx.write_mscxr(tmp_path, ref), fx.write_chestxdet(tmp_path, ref), fx.write_coco(tmp_path, ref),
             fx.write_siim(tmp_path, ref), *fx.write_chexlocalize(tmp_path, ref)]  # fmt: skip
    rng = random.Random(0)
    for f in files:
        text = f.read_text()
        prefix = "vindr:" if f.name.startswith("annotations") else ""
        for _ in range(60):
            g = tmp_path / f"m_{f.name}"
            if f.suffix == ".json":
                value = json.loads(text)
                for _ in range(rng.randint(1, 3)):
                    _mutate(rng, value)
                g.write_text(json.dumps(value))
            else:
                lines = text.splitlines()
                i = rng.randrange(len(lines))
                cells = lines[i].split(",")
                cells[rng.randrange(len(cells))] = str(rng.choice(_ODD))
                lines[i] = ",".join(cells)
                g.write_text("\n".join(lines) + "\n")
            try:
                gt = load_ground_truth(prefix + str(g))
            except InputError as exc:
                assert "\n" not in str(exc)
                continue
            for regions in gt.regions.values():
                for r in regions:
                    if r.is_mask:
                        r.mask(*r.mask_shape)


def _inside(px: float, py: float, poly: np.ndarray) -> bool:
    """Even-odd crossing number of the ray from (px, py) to +x, an edge counted when min(y) <= py < max(y)."""
    inside = False
    n = len(poly)
    for k in range(n):
        (xa, ya), (xb, yb) = poly[k], poly[(k + 1) % n]
        if min(ya, yb) <= py < max(ya, yb) and ya != yb:
            x = xa + (py - ya) / (yb - ya) * (xb - xa)
            if x <= px:  # the crossing lies at or left of the centre: the centre is right of it
                inside = not inside
    return inside


def test_polygon_rasteriser_matches_a_per_pixel_reference() -> None:
    """The vectorised scan-line rasteriser against a per-pixel point-in-polygon test (random, self-intersecting and
    half-integer polygons, vertices outside the image): every pixel agrees. A centre exactly on a crossing counts
    inside (x_a <= x) at a left edge and outside (x < x_b) at a right one, the same in both."""
    from cxrdemo.datasets.masks import rasterise_polygon

    rng = np.random.default_rng(3)
    for t in range(80):
        h, w = (int(v) for v in rng.integers(3, 24, 2))
        n = int(rng.integers(3, 9))
        poly = np.c_[rng.uniform(-3, w + 3, n), rng.uniform(-3, h + 3, n)]
        if t % 3 == 0:
            poly = np.round(poly * 2) / 2  # vertices on pixel centres and edges
        ref = np.array([[_inside(c + 0.5, r + 0.5, poly) for c in range(w)] for r in range(h)])
        assert np.array_equal(rasterise_polygon(poly, h, w), ref), t


def test_polygon_crossings_are_capped(tmp_path: Path) -> None:
    j = tmp_path / "gt_annotations_val.json"
    zigzag = [[0 if i % 2 else 100, i] for i in range(100)] + [[20, 99], [20, 0]]  # 198 crossings
    j.write_text(json.dumps({"p1_s1_v1": {"img_size": [100, 100], "Edema": [zigzag]}}))
    assert load_ground_truth(j).regions["p1_s1_v1"][0].mask(100, 100).any()
    assert "(edge, row) pairs; the cap is 50" in _err(j, limits={"polygon_crossings": 50})
