"""Memory and time of ``python -m cxrdemo predict`` on a DICOM decompression bomb (issue 19, finding 3).

    python bench/dicom_bomb.py [--frames 1000] [--declared-frames N] [--pythonpath DIR] [--out bench/dicom_bomb.json]

The bomb (:func:`write_deflated_bomb`) is a Deflated Explicit VR Little Endian file of ``--frames`` frames of
2048x2048 8-bit zeros: a few MB on disk, ``frames x 4 MiB`` inflated (1000 frames: 3.9 GiB, near the 4 GiB that
a DICOM element can hold). ``--declared-frames`` makes its header
declare fewer frames than its pixel data holds (a lying header). The CLI runs on it under ``/usr/bin/time -v`` with
``PYTHONPATH=--pythonpath`` (default this checkout: pass another checkout to measure it); written to ``--out``:
``{frames, declared_frames, file_mb, inflated_mb, max_rss_mb, seconds, exit_status, last_line, pythonpath, date,
load_1min}``. The file is written to a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Zeros compressed per repeated block (each block is compressed once and repeated: see write_deflated_bomb).
CHUNK = 1 << 20


def write_deflated_bomb(
    path: Path, frames: int, declared_frames: int | None = None, rows: int = 2048, cols: int = 2048, bits: int = 8
) -> Path:
    """Write a deflated DICOM of ``frames`` frames of ``rows x cols`` zeros of ``bits`` (8 or 16) bits, its header declaring
    ``declared_frames`` (default ``frames``); the whole file is built in O(file size) time and memory.

    The pixel data is deflated as one block of :data:`CHUNK` zeros repeated: each block ends with a full flush,
    which resets the compressor's history, so the same input compresses to the same bytes every time.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "BOMB"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, declared_frames or frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    head = DicomBytesIO()
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    nbytes = rows * cols * (bits // 8) * frames
    pixel_tag = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB" if bits == 8 else b"OW", 0, nbytes)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with path.open("wb") as fh:
        fh.write(b"\0" * 128 + b"DICM" + head.getvalue())
        fh.write(comp.compress(body.getvalue() + pixel_tag) + comp.flush(zlib.Z_FULL_FLUSH))
        block = comp.compress(bytes(CHUNK)) + comp.flush(zlib.Z_FULL_FLUSH)
        fh.write(block)
        again = comp.compress(bytes(CHUNK)) + comp.flush(zlib.Z_FULL_FLUSH)
        assert again == block, "a full flush did not reset the compressor: cannot repeat the block"
        fh.write(block)
        for _ in range(nbytes // CHUNK - 2):
            fh.write(block)
        fh.write(comp.compress(bytes(nbytes % CHUNK)) + comp.flush())
    return path


def measure(path: Path, pythonpath: Path) -> dict:
    """``/usr/bin/time -v python -m cxrdemo predict path`` with ``PYTHONPATH=pythonpath``: peak RSS, seconds..."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "cxrdemo", "predict", str(path)]
    proc = subprocess.run(cmd, cwd=pythonpath, env=env, capture_output=True, text=True)
    report = proc.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", report)
    seconds = None
    if wall:
        seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    text = proc.stdout + "\n" + report.split("\tCommand being timed")[0]
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("Command exited with")]
    return {
        "max_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "seconds": seconds,
        "exit_status": proc.returncode,
        "last_line": lines[-1][:300] if lines else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--declared-frames", type=int, default=None)
    parser.add_argument("--pythonpath", type=Path, default=REPO)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "dicom_bomb.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cxrdemo-bomb-") as tmp:
        path = write_deflated_bomb(Path(tmp) / "bomb.dcm", args.frames, args.declared_frames)
        result = {
            "frames": args.frames,
            "declared_frames": args.declared_frames or args.frames,
            "file_mb": round(path.stat().st_size / 2**20, 2),
            "inflated_mb": args.frames * 2048 * 2048 / 2**20,
            **measure(path, args.pythonpath.resolve()),
            "pythonpath": str(args.pythonpath.resolve()),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_1min": os.getloadavg()[0],
        }
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
