"""Grad-CAM and friends (pytorch-grad-cam), read off the forward pass that made the prediction, and the CAM box.

The CAM target layer is the backbone's last convolutional block (CLN section 3.4.3), whose output is the final
feature map ``A``. Everything after it is global average pooling and one linear layer, so the class score is a
function of ``A`` alone. The CAM is therefore computed by handing pytorch-grad-cam a tiny per-call module
``A -> logits`` (the exact classification head, with its weights frozen) and ``A`` cached from the forward pass:
- no second forward through the backbone: changing the method or class costs microseconds, not a network pass;
- the library still does all the CAM work (hooks, targets, weighting, ReLU, normalisation, its context manager
  releases the hooks);
- hooks live on the per-call module, never on the shared model, so concurrent calls cannot mix activations, and
  the shared parameters never accumulate gradients.
For a GAP + linear head, Grad-CAM at this layer equals CAM (Zhou et al. 2016) exactly; GradCAM++, XGradCAM,
LayerCAM, HiResCAM and EigenCAM weight the same activations differently. Perturbation methods (ScoreCAM,
AblationCAM) need many backbone passes and are not offered.

An object detector (:mod:`cxrdemo.models.detector_base`) has no class head on its feature map; its CAM layer is the
backbone's last feature map, captured by a hook in the pass that made the boxes (:func:`detector_heatmap`):
EigenCAM (gradient-free) is computed from that capture, with no network pass; the gradient methods rerun the
detector (forward + backward: the boxes depend on the whole network after the backbone) with :class:`BoxScoreTarget`
(pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``, matching within the chosen class) on the chosen box: the box of
the class with the highest score, whose score plus IoU with itself is differentiated (the rerun's boxes equal the
first pass's, so the match is the box itself).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .lazy_imports import import_deferring

import_deferring("pytorch_grad_cam")  # without its unused plotting/KPCA imports: a third of the cold start
from pytorch_grad_cam import EigenCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM  # noqa: E402
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from .boxes import Box
from .cams import CAM_METHOD_KEYS, DEFAULT_CAM_THRESHOLD, check_method, check_threshold
from .errors import InputError
from .models.cln import MultiTaskNet

def first_component_projection(activation_batch: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's ``get_2d_projection`` (activations projected on their first principal component), with
    the economy SVD: the same first right singular vector without the ``C x C`` matrix the full SVD builds
    (1280 x 1280 for EfficientNet-Lite0: 0.5-1.9 s per map on this CPU instead of milliseconds)."""
    batch = np.nan_to_num(np.asarray(activation_batch, dtype=np.float32), nan=0.0)
    out = []
    for activations in batch:
        flat = activations.reshape(activations.shape[0], -1).T
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        out.append((flat @ vt[0, :]).reshape(activations.shape[1:]))
    return np.float32(out)


class FastEigenCAM(EigenCAM):
    """EigenCAM with :func:`first_component_projection` (same maps, economy SVD)."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):  # noqa: D102
        return first_component_projection(activations)


class FastEigenGradCAM(EigenGradCAM):
    """EigenGradCAM with :func:`first_component_projection` (same maps, economy SVD)."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):  # noqa: D102
        return first_component_projection(grads * activations)


#: Method name (see :mod:`cxrdemo.cams`) -> pytorch-grad-cam class.
CAM_METHODS: dict[str, type] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": FastEigenCAM,
    "eigengradcam": FastEigenGradCAM,
}
assert tuple(CAM_METHODS) == CAM_METHOD_KEYS, "cams.CAM_METHOD_NAMES and explain.CAM_METHODS must list the same methods"


class _HeadOnFeatures(nn.Module):
    """``A -> logits``: the classification head of a model, frozen, behind an identity that is the CAM layer.

    cxrdemo's own network: GAP + its linear layer, as frozen copies. Any other adapter (:mod:`cxrdemo.models`):
    its ``cam_logits`` (the rest of the network after the CAM layer), whose parameters the adapter froze at load.
    """

    def __init__(self, model: MultiTaskNet) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self._rest = None
        if isinstance(model, MultiTaskNet):
            fc = model.class_head.fc
            # Parameters that share the model's storage but never collect gradients.
            self.weight = nn.Parameter(fc.weight.detach(), requires_grad=False)
            self.bias = nn.Parameter(fc.bias.detach(), requires_grad=False)
        else:
            self._rest = model.cam_logits
            # pytorch-grad-cam reads the device off the module's first parameter: an empty one on the model's device.
            device = next(model.parameters()).device
            self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        if self._rest is not None:
            return self._rest(self.layer(feature_map))
        pooled = self.layer(feature_map).mean(dim=(2, 3))
        return F.linear(pooled, self.weight, self.bias)


def cam_heatmaps(
    model: MultiTaskNet,
    features: torch.Tensor,
    targets: list[int],
    method: str = "gradcam",
    size: int | None = None,
) -> np.ndarray:
    """CAM maps for a batch of cached feature maps.

    Args:
        model: the model that produced ``features``.
        features: the CAM layer's activations from the model's ``forward_features`` (``(N, F, h, w)``, or tokens
            that the adapter's ``cam_reshape`` turns into a grid).
        targets: one class index per image.
        method: a key of :data:`CAM_METHODS`.
        size: side of the returned maps (default: the model's input size).

    Returns:
        ``(N, size, size)`` float32 maps in [0, 1] over the model's input frame (each scaled to its own maximum,
        as pytorch-grad-cam does); :meth:`cxrdemo.models.FilmView.map_to_film` places them on the film.
    """
    method = check_method(method)
    if len(targets) != features.shape[0]:
        raise ValueError(f"{len(targets)} targets for {features.shape[0]} feature maps")
    n_classes = len(model.config.classes)
    for t in targets:
        if not 0 <= int(t) < n_classes:
            raise InputError(f"target class index {t} is outside 0..{n_classes - 1}")
    size = size or model.config.input_size
    head = _HeadOnFeatures(model)
    feats = features.detach().clone().requires_grad_(True)
    reshape = getattr(model, "cam_reshape", None)
    with torch.enable_grad(), CAM_METHODS[method](model=head, target_layers=[head.layer], reshape_transform=reshape) as cam:
        if reshape is not None:  # token activations: the library would read the map size off (N, T, D)
            cam.get_target_width_height = lambda _tensor: (size, size)
        maps = cam(input_tensor=feats, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if maps.shape[-1] != size:
        maps = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) for m in maps])
    return np.clip(maps, 0.0, 1.0)


def cam_box(heatmap: np.ndarray, threshold: int = DEFAULT_CAM_THRESHOLD, *, width: int, height: int, label: str = "") -> Box | None:
    """The box around the largest connected region of ``heatmap * 255 >= threshold`` (CLN / Gascoigne-Burns).

    ``heatmap`` is a square map in the model frame; the box is returned in the original image's pixels, or
    ``None`` when no pixel reaches the threshold.
    """
    threshold = check_threshold(threshold)
    heatmap = np.asarray(heatmap)
    # Same mask as scaling to uint8 (NaN -> 0, clipped to 0..255, truncated) then comparing: for an integer
    # threshold, trunc(clip(v)) >= t exactly when v >= t, and NaN compares False; without the three full-map copies.
    mask = (heatmap * 255.0 >= threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    sy, sx = height / heatmap.shape[0], width / heatmap.shape[1]
    return Box(x * sx, y * sy, (x + w) * sx, (y + h) * sy, label)


class BoxScoreTarget:
    """The score of one detected box in a rerun, as pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` computes it
    (the class score plus the IoU of the best-overlapping output box, when that IoU exceeds ``iou_threshold``), but
    looking only at the output boxes of the chosen class: a sigmoid detector (RetinaNet, FCOS, RT-DETR) outputs one
    box under several classes, where the library's "best IoU, then check the label" may land on another class's copy
    and give nothing to differentiate. Without a match it returns a zero that stays on the graph (an empty map)."""

    def __init__(self, label: int, box: np.ndarray, iou_threshold: float = 0.5) -> None:
        self.label = int(label)
        self.box = np.asarray(box, dtype=np.float32)
        self.iou_threshold = iou_threshold

    def __call__(self, model_outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        from torchvision.ops import box_iou

        boxes, labels, scores = model_outputs["boxes"], model_outputs["labels"], model_outputs["scores"]
        zero = scores.sum() * 0.0
        same = (labels == self.label).nonzero().flatten()
        if same.numel() == 0:
            return zero
        target = torch.as_tensor(self.box[None, :], device=boxes.device, dtype=boxes.dtype)
        ious = torch.nan_to_num(box_iou(target, boxes[same])[0], nan=0.0)  # an empty output box: 0/0
        k = int(ious.argmax())
        if float(ious[k].detach()) <= self.iou_threshold:
            return zero
        return ious[k] + scores[same[k]]


class _DetectorOutputs(nn.Module):
    """``x -> [{"boxes", "labels", "scores"}]`` of a detector, in film pixels, with gradients (a gradient CAM's model)."""

    def __init__(self, detector: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.detector = detector
        self.size = size

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.detector.postprocess(self.detector.raw_forward(x), [self.size] * x.shape[0])


def detector_heatmap(
    detector: nn.Module,
    features: torch.Tensor,
    inputs: torch.Tensor | None,
    detections: list[Box],
    label: str,
    method: str,
    size: int,
    film_size: tuple[int, int],
) -> np.ndarray:
    """A detector's CAM for class ``label`` as a ``(size, size)`` map over the whole film (see module doc).

    Args:
        detector: a :class:`~cxrdemo.models.detector_base.DetectorBase`.
        features: the CAM layer's activations captured in the prediction pass ``(1, C, h, w)``.
        inputs: the preprocessed input of that pass (rerun by the gradient methods).
        detections: the pass's candidate boxes (film pixels, highest first); the target is ``label``'s first.
        method: a key of :data:`CAM_METHODS`.
        film_size: ``(height, width)`` of the film.
    """
    method = check_method(method)
    if method == "eigencam":
        # as pytorch-grad-cam's EigenCAM: ReLU, min-max scaled and resized, then min-max scaled again (its layer
        # aggregation), so the map peaks at 1 after the resize too
        cam = np.maximum(first_component_projection(features.detach().cpu().numpy()), 0)
        return np.clip(scale_cam_image(np.maximum(scale_cam_image(cam, (size, size)), 0))[0], 0.0, 1.0)
    chosen = next((b for b in detections if b.label == label), None)
    if chosen is None or inputs is None:
        raise InputError(f"the detector found no box of {label}; choose a class it boxed, or EigenCAM (no box needed)")
    label_id = next(i for i, name in detector.label_names.items() if name == label)
    wrapper = _DetectorOutputs(detector, film_size)
    target = BoxScoreTarget(label_id, np.asarray(chosen.xyxy, dtype=np.float32))
    reshape = detector.token_grid(tuple(inputs.shape[-2:]))
    x = inputs.detach().clone().requires_grad_(True)  # the frozen network's activations need a graph to a leaf
    with detector.hook_lock, torch.enable_grad(), CAM_METHODS[method](model=wrapper, target_layers=[detector.cam_layer()], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=x, targets=[target])
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(cv2.resize(maps[0], (size, size), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
