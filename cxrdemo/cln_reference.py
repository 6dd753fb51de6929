"""Published figures of the CLN paper (Okolo et al.), printed beside ours in reports and model cards.

Copied from the paper's Table 1 (IoU accuracy on the test split of NIH's 880 boxed images, 8 classes), Table 2
(AUC on the same split) and section 3.4.3 (Grad-CAM boxes on CLN-CheXNet's backbone). The text we have is an OCR of
the journal pre-proof: one cell reads "0.6/" (CLN-MobileNetV3Small, Mass, T=0.1); 0.67 is the value that makes the
row's printed mean 0.837, and is used here. These are CLN's numbers on ITS split and data volume (704 training
images with boxes, a backbone fine-tuned on ~100k NIH images), not a target this project's few-hundred-image models
can be compared with as equals.
"""

from __future__ import annotations

from .datasets.nih import NIH_BOX_CLASSES

CLN_CLASSES: tuple[str, ...] = NIH_BOX_CLASSES

#: Table 1: IoU accuracy per T(IoU), per class then the mean (the 9 values in the paper's column order).
CLN_IOU_ACCURACY: dict[str, dict[str, tuple[float, ...]]] = {
    "CLN-MobileNetV3Small": {
        "0.1": (0.89, 1.00, 0.75, 0.84, 0.67, 0.64, 0.96, 0.95, 0.837),
        "0.2": (0.81, 0.97, 0.75, 0.84, 0.56, 0.57, 0.96, 0.95, 0.800),
        "0.3": (0.76, 0.97, 0.69, 0.72, 0.56, 0.50, 0.82, 0.95, 0.744),
        "0.4": (0.76, 0.97, 0.63, 0.72, 0.56, 0.43, 0.82, 0.95, 0.728),
        "0.5": (0.58, 0.97, 0.50, 0.92, 0.39, 0.09, 0.89, 0.72, 0.705),
        "0.6": (0.60, 0.90, 0.59, 0.56, 0.33, 0.07, 0.82, 0.80, 0.584),
        "0.7": (0.51, 0.90, 0.56, 0.48, 0.33, 0.00, 0.82, 0.70, 0.538),
    },
    "CLN-CheXNet": {
        "0.1": (0.79, 1.00, 0.83, 0.84, 0.88, 0.75, 1.00, 0.75, 0.855),
        "0.2": (0.79, 0.97, 0.75, 0.85, 0.87, 0.69, 1.00, 0.31, 0.800),
        "0.3": (0.70, 0.97, 0.77, 0.80, 0.77, 0.69, 1.00, 0.65, 0.792),
        "0.4": (0.70, 0.97, 0.67, 0.76, 0.71, 0.63, 1.00, 0.60, 0.753),
        "0.5": (0.70, 0.91, 0.60, 0.72, 0.71, 0.63, 0.96, 0.55, 0.720),
        "0.6": (0.52, 0.81, 0.50, 0.72, 0.53, 0.31, 0.92, 0.40, 0.588),
        "0.7": (0.33, 0.81, 0.43, 0.60, 0.24, 0.13, 0.71, 0.35, 0.450),
    },
}

#: Table 2: AUC per class then the mean (8 classes).
CLN_AUC: dict[str, tuple[float, ...]] = {
    "CLN-MobileNetV3Small": (0.89, 0.99, 0.88, 0.89, 0.85, 0.93, 0.93, 0.98, 0.918),
    "CLN-CheXNet": (0.75, 0.96, 0.84, 0.74, 0.90, 0.86, 0.78, 0.97, 0.849),
    "Rajpurkar et al. 2017 (CheXNet)": (0.82, 0.91, 0.88, 0.72, 0.86, 0.78, 0.76, 0.89, 0.828),
    "Wang et al. 2017": (0.72, 0.81, 0.78, 0.61, 0.71, 0.67, 0.63, 0.81, 0.718),
}

#: Section 3.4.3: mean IoU accuracy at T(IoU) = 0.1 of Grad-CAM boxes on CLN-CheXNet's backbone, per CAM threshold.
CLN_GRADCAM_MEAN_AT_0_1: dict[int, float] = {127: 0.382, 180: 0.302}
