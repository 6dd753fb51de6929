"""Build real DICOM files at test time from a shared NIH PNG (never committed): pydicom writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 16,
    slope: float = 1.0,
    intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    with_pixels: bool = True,
    modality: str = "CR",
) -> Path:
    """Write ``pixels`` (2-D unsigned ints, or (H, W, 3) uint8 for RGB) as an uncompressed DICOM file."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = "TEST"
    if with_pixels:
        rgb = pixels.ndim == 3
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 3 if rgb else 1
        ds.PhotometricInterpretation = "RGB" if rgb else photometric
        if rgb:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = 8 if rgb else (16 if bits > 8 else 8)
        ds.BitsStored = 8 if rgb else bits
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        if slope != 1.0 or intercept != 0.0:
            ds.RescaleSlope = slope
            ds.RescaleIntercept = intercept
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        dtype = np.uint8 if ds.BitsAllocated == 8 else np.uint16
        ds.PixelData = np.ascontiguousarray(pixels.astype(dtype)).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path
