"""cxrdemo.render.files, the one writer of panel image files: names, formats, atomic writes, one-line errors; and
the CLI's ``--render`` through it (files, footer, where they went, an unwritable folder)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cxrdemo import render
from cxrdemo.errors import CxrDemoError
from cxrdemo.render import files
from cxrdemo.render.files import PanelWriteError, remove_older_than, write_panels, write_report
from test_render import analysis, film

NAMES = ("prediction", "comparison", "probabilities", "cam")


@pytest.fixture(scope="module")
def panels() -> render.Panels:
    return render.render_panels(film(value=90), analysis(), size=256)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------ write_panels
def test_jpeg_films_and_png_chart(panels, tmp_path) -> None:
    paths = write_panels(panels, tmp_path / "new" / "dir", "case")
    assert list(paths) == list(NAMES)
    assert {k: p.name for k, p in paths.items()} == {
        "prediction": "case_prediction.jpg", "comparison": "case_comparison.jpg",
        "probabilities": "case_probabilities.png", "cam": "case_cam.jpg",
    }
    for name, path in paths.items():
        with Image.open(path) as im:
            assert im.size == getattr(panels, name).size
            if name == "probabilities":
                assert im.format == "PNG" and im.mode == "P"  # flat colours: a palette PNG of exactly them
                assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(panels.probabilities))  # lossless
            else:
                assert im.format == "JPEG" and im.mode == "RGB"
                assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4, no chroma subsampling
                diff = np.abs(np.asarray(im).astype(int) - np.asarray(getattr(panels, name)).astype(int))
                assert diff.mean() < 2  # quality 95
    assert leftovers(paths["cam"].parent) == []


def test_png_everywhere_quality_names_and_subsets(panels, tmp_path) -> None:
    paths = write_panels(panels, tmp_path, "x", film_format="png")
    assert [p.suffix for p in paths.values()] == [".png"] * 4
    with Image.open(paths["cam"]) as im:
        assert np.array_equal(np.asarray(im), np.asarray(panels.cam))
    low = write_panels(panels, tmp_path / "q", "x", quality=30, names=["cam"])
    assert list(low) == ["cam"] and low["cam"].stat().st_size < (tmp_path / "x_cam.png").stat().st_size
    with pytest.raises(ValueError):
        write_panels(panels, tmp_path, "x", film_format="gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        write_panels(panels, tmp_path, "x", names=["histogram"])


def test_unique_names_never_collide_and_files_are_replaced(panels, tmp_path) -> None:
    first = write_panels(panels, tmp_path, "panel", unique=True)
    second = write_panels(panels, tmp_path, "panel", unique=True)
    assert set(first.values()).isdisjoint(second.values())
    assert all(p.name.startswith("panel-") and p.exists() for p in [*first.values(), *second.values()])
    a = write_panels(panels, tmp_path, "same", names=["cam"])["cam"]
    b = write_panels(panels, tmp_path, "same", names=["cam"])["cam"]
    assert a == b and a.exists() and leftovers(tmp_path) == []


def test_footer_strip_under_each_panel(panels, tmp_path) -> None:
    paths = write_panels(panels, tmp_path, "f", film_format="png", footer_lines=panels.footer)
    for name, path in paths.items():
        with Image.open(path) as im:
            panel = getattr(panels, name)
            assert im.width == panel.width and im.height > panel.height
            assert np.array_equal(np.asarray(im.convert("RGB"))[: panel.height], np.asarray(panel))


def test_write_is_atomic(panels, tmp_path, monkeypatch) -> None:
    """The final name appears only by rename, complete; a failed write leaves the old file and no temporary."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        src, dst = Path(src), Path(dst)
        seen.append((src.parent == dst.parent, src.name.startswith("."), dst.exists(), src.stat().st_size > 0))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    write_panels(panels, tmp_path, "a", names=["cam"])
    assert seen == [(True, True, False, True)]  # same folder, hidden temp, target absent until the rename
    monkeypatch.setattr(files.os, "replace", real_replace)

    target = tmp_path / "a_cam.jpg"
    before = target.read_bytes()

    def broken_save(self, fp, format=None, **kwargs):
        fp.write(b"half a JPEG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(PanelWriteError, match=r"cannot write panels to .*: No space left on device; choose a writable folder"):
        write_panels(panels, tmp_path, "a", names=["cam"])
    assert target.read_bytes() == before and leftovers(tmp_path) == []


def test_new_files_get_normal_permissions(panels, tmp_path) -> None:
    path = write_panels(panels, tmp_path, "p", names=["cam"])["cam"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("kind", ["proc", "file"])
def test_unwritable_folder_is_a_one_line_error(panels, tmp_path, kind) -> None:
    if kind == "proc":
        folder = Path("/proc/x")
    else:
        (tmp_path / "plain").write_text("not a folder")
        folder = tmp_path / "plain" / "sub"
    for call in (lambda: write_panels(panels, folder, "s"), lambda: write_report(panels, folder, "s")):
        with pytest.raises(CxrDemoError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"cannot write ") and f" to {folder}: " in message
        assert message.endswith("; choose a writable folder") and "\n" not in message


def test_read_only_folder(panels, tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PanelWriteError, match="Permission denied; choose a writable folder"):
            write_panels(panels, folder, "s")
    finally:
        folder.chmod(0o700)


# ------------------------------------------------------------------------------------------ write_report
def test_report_is_the_composite_png(panels, tmp_path) -> None:
    path = write_report(panels, tmp_path, "img")
    assert path == tmp_path / "img_report.png"
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert np.array_equal(np.asarray(im), np.asarray(render.composite(panels)))
    assert write_report(panels, tmp_path, "img", name="panels").name == "img_panels.png"
    bare = write_report(panels, tmp_path, "img", name="bare", footer_lines=[])
    with Image.open(bare) as im, Image.open(path) as full:
        assert im.height < full.height
    assert write_report(panels, tmp_path, "img", unique=True) != write_report(panels, tmp_path, "img", unique=True)


def test_remove_older_than(tmp_path) -> None:
    old, new, other = tmp_path / "panel-1_cam.jpg", tmp_path / "panel-2_cam.jpg", tmp_path / "keep.txt"
    temp = tmp_path / ".panel-3_cam.jpg.abc.tmp"
    for p in (old, new, other, temp):
        p.write_bytes(b"x")
    past = time.time() - 3600
    for p in (old, other, temp):
        os.utime(p, (past, past))
    assert remove_older_than(tmp_path, 600, "panel-*") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "panel-2_cam.jpg"]
    assert remove_older_than(tmp_path / "missing", 1) == 0


# ----------------------------------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_image(tmp_path) -> Path:
    """A synthetic PNG film (no NIH pixels)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "synthetic_film.png"
    Image.fromarray(rng.integers(0, 255, (300, 260), dtype=np.uint8), "L").save(path)
    return path


def test_cli_render_writes_panels_composite_and_says_where(model_dir, cli_image, tmp_path, capsys) -> None:
    from cxrdemo.cli import main

    out = tmp_path / "rendered"
    code = main(["predict", str(cli_image), "--weights", str(model_dir), "--device", "cpu", "--render", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert f"note: panels of 1 image(s) written to {out.resolve()}" in err.splitlines()
    expected = {f"synthetic_film_{n}.png" for n in (*NAMES, "panels")}
    assert {p.name for p in out.iterdir()} == expected
    with Image.open(out / "synthetic_film_prediction.png") as im:
        assert im.format == "PNG" and im.width == round(260 * 768 / 300) and im.height > 768  # + footer strip


def test_cli_render_footer_names_a_training_image(model_dir, cli_image, tmp_path, capsys) -> None:
    from cxrdemo.cli import main
    from cxrdemo.provenance import write_splits

    seen = tmp_path / "model_seen"
    shutil.copytree(model_dir, seen)
    write_splits(seen, [cli_image.name], [])
    sizes = {}
    for weights, folder in ((model_dir, tmp_path / "plain"), (seen, tmp_path / "seen")):
        assert main(["predict", str(cli_image), "--weights", str(weights), "--device", "cpu", "--render", str(folder)]) == 0
        with Image.open(folder / "synthetic_film_panels.png") as im:
            sizes[folder.name] = im.size
    assert "training images" in capsys.readouterr().err
    assert sizes["seen"][0] == sizes["plain"][0] and sizes["seen"][1] > sizes["plain"][1]  # the note's footer line


def test_cli_unwritable_render_folder_is_one_line(model_dir, cli_image, capsys) -> None:
    from cxrdemo.cli import main

    code = main(["predict", str(cli_image), "--weights", str(model_dir), "--device", "cpu", "--render", "/proc/x"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in captured.err and "unexpected" not in captured.err
    assert "cannot write panels to /proc/x: " in errors[0] and errors[0].endswith("; choose a writable folder")
