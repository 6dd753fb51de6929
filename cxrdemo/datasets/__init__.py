"""Ground truth from the data sets people have, one reader per layout (the counterpart of :mod:`cxrdemo.models`).

- :func:`cxrdemo.datasets.loader.load_ground_truth` ``("[layout:]file", images=folder)``: the one entry point;
  the layout is read from the file or forced by a prefix (``vindr:``, ``coco:``...). Readers: :mod:`.nih_reader`,
  :mod:`.vindr` (VinDr-CXR and VinBigData), :mod:`.rsna`, :mod:`.chestxdet`, :mod:`.chexlocalize`, :mod:`.siim`,
  :mod:`.mscxr`, :mod:`.coco`, :mod:`.chexpert`; all return :class:`.base.GroundTruth` (images, labels, regions in
  original pixels, each a box or a lazily decoded mask, with its reader).
- :mod:`.masks`: COCO compressed RLE, SIIM's relative RLE and polygons, parsed bounded and decoded on demand;
  :mod:`.files`: capped reading, one-line errors naming file/row/field, images found by id; :mod:`.limits`: caps.
- :mod:`.vocabulary`: one table of finding names shared with :mod:`cxrdemo.models.labels`; mapping a data set's
  names onto a model's labels (ambiguous and unmatched names reported); the uncertain-label policy.
- NIH ChestX-ray14: :mod:`.nih` (the vocabulary: 14 classes, 8 box classes, the 1024 px frame, the box CSV reader),
  :mod:`.samples` (label CSV rows, ``Sample``, patient-wise splits and folds; torch-free), :mod:`.truth` (NIH's
  shipped box list by file name, the embedded default; user boxes checked against the image).

Every module here is torch-free; this package file imports nothing, so ``import cxrdemo.datasets.nih`` stays light.
"""
