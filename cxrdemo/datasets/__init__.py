"""Ground truth from the data sets people have, one reader per layout (the counterpart of :mod:`cxrdemo.models`).

- NIH ChestX-ray14: :mod:`.nih` (the vocabulary: 14 classes, 8 box classes, the 1024 px frame, the box CSV reader),
  :mod:`.samples` (label CSV rows, ``Sample``, patient-wise splits and folds; torch-free), :mod:`.truth` (NIH's
  shipped box list by file name, the embedded default; user boxes checked against the image).

Every module here is torch-free.
"""
