"""``python -m cxrdemo bench``: where the time goes, the whole pipeline against the bare network.

    python -m cxrdemo bench --images DIR [--n N] [--weights SRC] [--cam METHOD] [--out FILE.json] [--threads T]
                            [--device D] [--batch-size B] [--warmup W] [--cold-runs R] [--no-peer] [--quiet] [--strict]

On the same real radiographs (``--n`` files spread over ``DIR``, sorted), one run measures, with the same device and
torch thread count (and records the pipeline's CAM method, ``--cam``, default Grad-CAM, as ``cam_method``):

- ``forward_ms``: the bare network, batch 1, forward only (``model(x)`` in inference mode, input preprocessed
  beforehand);
- ``forward_backward_ms``: what a plain hook-based Grad-CAM fundamentally costs: a forward hook on the CAM layer,
  the forward through the whole network with gradients enabled (input marked ``requires_grad`` as pytorch-grad-cam
  does), then the gradient of the top-1 class logit with respect to the CAM layer's output
  (``torch.autograd.grad``: the backward goes only as deep as the CAM layer);
- ``pipeline_ms`` and ``stages_ms``: the single-image pipeline as the app runs it, stage by stage:
  ``decode`` (:func:`~cxrdemo.imaging.load_image` of the file), ``preprocess`` and ``forward``
  (:meth:`Predictor.forward <cxrdemo.predict.Predictor.forward>`, its own timings), ``gradcam`` (the CAM of
  ``--cam``'s method, default Grad-CAM, whose name the key keeps: the top-1 class' map from the cached features,
  :func:`~cxrdemo.explain.cam_heatmaps`), ``cam_box``
  (:func:`~cxrdemo.explain.cam_box`), ``compare`` (ground truth and IoUs, :meth:`Predictor.assemble`) and
  ``render`` (the four panels at ``--panel-size``, default 768 px; the page draws 640), drawn as the app draws
  them: by :class:`~cxrdemo.render.PanelDrawing`, whose worker resizes the film for display while the network
  runs, so ``render`` is the wall time from the finished analysis to the four panels); the total is the wall time
  from the file to the panels;
- ``pipeline_ratio``: ``pipeline_ms`` / ``forward_backward_ms`` (medians); ``ratio_basis`` names the denominator;
- ``evaluate_images_per_s``: the evaluate path's batched work on preprocessed batches (``--batch-size``):
  :meth:`Predictor.forward_tensor` then the top-1 CAM of every image and its box, against
  ``bare_forward_images_per_s``: ``model(batch)`` in inference mode on the same batches (median of rounds that
  alternate between the two);
- ``cold_start_s``: a fresh ``python -m cxrdemo predict IMAGE --cam METHOD`` process, from spawn to its JSON answer
  on stdout (imports, weights load, decode, forward, CAM), median of ``--cold-runs``;
- ``pipeline_encoded_ms``: the pipeline plus encoding its four panels as the app hands them out (film panels JPEG
  q95 4:4:4, chart PNG level 1; see docs/api.md), and ``peer_ms`` / ``peer_stages_ms``: the same job done the way a
  typical Gradio Grad-CAM Space does it, on the same network and files (:mod:`cxrdemo.bench.peer`: PIL RGB +
  torchvision transforms, pytorch-grad-cam's ``GradCAM`` with its own forward and backward, ``show_cam_on_image``,
  a matplotlib chart, PIL-drawn boxes, PNG outputs); ``peer_ratio`` = peer / ours (``pipeline_encoded_ms``
  medians); ``peer_prob_diff_max``: the largest difference between the two sides' probabilities (the same network:
  only the resizing differs).

**An object detector** as ``--weights`` (a torchvision or transformers detector folder; see docs/models.md) is
measured against what its own library runs (:mod:`cxrdemo.bench.detector`), on the films it was first run on
untimed (that first pass gives each film's top-scoring box and its number of candidate boxes):

- ``forward_ms``: ``raw_forward(x)`` + ``postprocess(...)`` on the preprocessed film, batch 1, inference mode, no
  hooks; ``forward_backward_ms``: the core of a gradient CAM as pytorch-grad-cam's detector tutorial runs it: a hook
  on the CAM layer, one forward with gradients (input ``requires_grad``) through ``raw_forward`` + ``postprocess``,
  the :class:`~cxrdemo.explain.BoxScoreTarget` of the film's top box, ``torch.autograd.grad`` to the CAM layer's
  activation (films without a box are not timed here; ``None`` when no film has one);
- the pipeline in the app's order: decode, :class:`~cxrdemo.render.PanelDrawing` started, ``Predictor.forward``, the
  CAM and its box by :meth:`Predictor.cam <cxrdemo.predict.Predictor.cam>` (top-1 class, the CAM box threshold
  127; both in the ``gradcam`` stage, so a detector's ``stages_ms`` are :data:`DETECTOR_STAGES`, without
  ``cam_box``), ``compare`` (:meth:`Predictor.assemble` with NIH's ground truth and the model's score threshold:
  with a gradient CAM it reruns forward + backward for each other ground-truth class the detector boxed, as the app
  does) and ``render``;
- ``pipeline_ratio``: pipeline / the library's own minimum for the same answer: ``forward_ms`` for EigenCAM (its
  map comes from the features captured in the prediction pass, no rerun; ``ratio_basis`` ``"forward_ms"``), else
  ``forward_ms`` + ``forward_backward_ms`` (the prediction pass, then the CAM's forward and backward, as a
  pytorch-grad-cam user runs them; ``"forward_ms + forward_backward_ms"``). With a gradient CAM, films on which the
  detector finds no box (the CAM would refuse them) are left out of every measurement; ``detector_boxes`` says how
  many, with the median number of candidate and shown boxes per film (``None`` for a classifier);
- ``evaluate_images_per_s``: :meth:`DetectorBase.predict_boxes` (the audit's pass, one film at a time) against
  ``bare_forward_images_per_s``: the bare forward of the same films one at a time (both from the decoded film;
  ``--batch-size`` is not used); the peer pipeline is skipped; the cold start runs ``predict`` on the detector.

The single-image measurements alternate image by image (ours and the peer swap order every image), so they see the
same machine state; the bare passes start after :data:`SETTLE_S` of idle (threads that the previous pipeline left
spinning would otherwise slow them); ``--warmup`` iterations (and one warm-up round of each batched measurement)
are excluded. Writes JSON with exactly :data:`RESULT_KEYS` (``--out``), prints a short table and one line per
target (:data:`TARGETS`) saying whether it was met; progress goes to stderr (``--quiet`` silences it). Research
demo, not a diagnostic device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import numpy as np

from .cold import REPO, measure_cold_start
from .peer import encode_as_app
from .rounds import alternating_rates
from .table import TARGETS, check_targets, format_table

if TYPE_CHECKING:
    from .detector import DetectorFilms

__all__ = ["DETECTOR_STAGES", "RESULT_KEYS", "STAGES", "TARGETS", "bench", "pick_images", "run_bench", "summary"]

DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "nih" / "images"
RESULT_KEYS = (
    "device",
    "threads",
    "architecture",
    "n",
    "panel_size",
    "cam_method",
    "forward_ms",
    "forward_backward_ms",
    "pipeline_ms",
    "stages_ms",
    "pipeline_ratio",
    "ratio_basis",
    "detector_boxes",
    "evaluate_images_per_s",
    "bare_forward_images_per_s",
    "evaluate_ratio",
    "cold_start_s",
    "pipeline_encoded_ms",
    "peer_ms",
    "peer_stages_ms",
    "peer_ratio",
    "peer_prob_diff_max",
    "targets",
)
STAGES = ("decode", "preprocess", "forward", "gradcam", "cam_box", "compare", "render")
#: Seconds of idle before each iteration's bare passes: NumPy's OpenBLAS threads busy-wait 50-100 ms after a call
#: (the SVD of EigenCAM in the previous pipeline), which made the bare forward after it 1.8x slower on 2 cores.
SETTLE_S = 0.15
#: A detector's stages: ``Predictor.cam`` gives its map and box together, both timed in ``gradcam``.
DETECTOR_STAGES = tuple(s for s in STAGES if s != "cam_box")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """``bench``'s command-line options."""
    from ..cams import CAM_METHOD_KEYS, DEFAULT_CAM_METHOD

    p.add_argument("--images", default=str(DEFAULT_IMAGES), metavar="DIR", help=f"folder of radiographs (default {DEFAULT_IMAGES})")
    p.add_argument("--n", type=int, default=20, metavar="N", help="timed iterations, each on its own image when DIR has enough (default 20)")
    p.add_argument("--weights", default=None, metavar="SRC", help="model folder (a classifier or a detector), Hub id owner/name[@rev] (default: $CXRDEMO_WEIGHTS or weights/)")
    p.add_argument("--cam", default=DEFAULT_CAM_METHOD, metavar="METHOD", help=f"the pipeline's CAM method: {', '.join(CAM_METHOD_KEYS)} (default {DEFAULT_CAM_METHOD})")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the JSON result to FILE.json")
    p.add_argument("--threads", type=int, default=None, metavar="T", help="torch.set_num_threads(T) (default: torch's default)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument(
        "--panel-size",
        type=int,
        default=None,
        metavar="PX",
        help="longest side of the drawn panels (default 768, as the CLI's --render; the web page shows 640)",
    )
    p.add_argument("--batch-size", type=int, default=16, metavar="B", help="batch size of the batched measurements (default 16)")
    p.add_argument("--warmup", type=int, default=3, metavar="W", help="untimed warm-up iterations (default 3)")
    p.add_argument("--cold-runs", type=int, default=3, metavar="R", help="fresh processes for the cold start, median kept (default 3; 0 skips)")
    p.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peer pipeline (typical Gradio Grad-CAM Space)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")


# ------------------------------------------------------------------------------------------------- helpers
#: ``log(line)``: one progress line (stderr unless ``--quiet``).
StageLog = Callable[[str], None]


def _silent(message: str) -> None:
    pass


def stderr_progress(message: str) -> None:
    """One progress line on stderr (the table and the JSON stay on stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def pick_images(folder: str | os.PathLike, n: int) -> list[Path]:
    """``n`` image files spread evenly over the sorted contents of ``folder`` (all of them when there are fewer)."""
    from ..errors import InputError
    from ..imaging import IMAGE_SUFFIXES

    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"--images {folder}: not a folder; give the folder of radiographs (e.g. {DEFAULT_IMAGES})")
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--images {folder}: no PNG, JPEG or DICOM files there")
    if len(files) <= n:
        return files
    step = len(files) / n
    return [files[int(i * step)] for i in range(n)]


def summary(values_ms: Sequence[float]) -> dict[str, float]:
    """``{"median", "p90"}`` of a list of milliseconds, rounded to 0.01 ms."""
    arr = np.asarray(values_ms, dtype=np.float64)
    return {"median": round(float(np.median(arr)), 2), "p90": round(float(np.percentile(arr, 90)), 2)}


def _syncer(device) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


class _CamLayerGrad:
    """The core of a hook-based Grad-CAM: forward hook on the CAM layer, gradient of one logit with respect to it."""

    def __init__(self, model, layer) -> None:
        self.model = model
        self.activation = None
        # A foreign adapter (cxrdemo.models) has no hookable CAM layer: its split forward gives the activations.
        self.handle = layer.register_forward_hook(self._keep) if layer is not None else None

    def _keep(self, module, inputs, output) -> None:
        self.activation = output

    def __call__(self, x):
        import torch

        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            if self.handle is None:
                self.activation = self.model.forward_features(x)
                out = self.model.heads(self.activation)
            else:
                out = self.model(x)
            logits = out.logits[0]
            score = logits[int(logits.detach().argmax())]
            (grad,) = torch.autograd.grad(score, self.activation)
        self.activation = None
        return grad

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


class _ClassifierPasses:
    """A classifier's bare passes on film ``k``: ``model(x)`` in inference mode, and :class:`_CamLayerGrad`; the
    inputs are preprocessed once, beforehand (the counterpart of :class:`cxrdemo.bench.detector.DetectorPasses`)."""

    def __init__(self, model, files: Sequence[Path]) -> None:
        from ..imaging import load_image

        device = next(model.parameters()).device
        self.model = model
        self.inputs = [model.preprocess(load_image(f).pixels)[None].to(device) for f in files]
        self.grad = _CamLayerGrad(model, getattr(model, "cam_layer", None))

    def input(self, k: int):
        return self.inputs[k]

    def forward(self, x, k: int) -> None:
        import torch

        with torch.inference_mode():
            self.model(x)

    def forward_backward(self, x, k: int) -> bool:
        self.grad(x)
        return True

    def close(self) -> None:
        self.grad.close()


# --------------------------------------------------------------------------------------------- measurements
class PipelineRun(NamedTuple):
    """One pass of cxrdemo's pipeline (:func:`_pipeline_once`)."""

    ms: float  # file to the four panels
    encoded_ms: float  # file to the panels encoded as the app hands them out
    stages_ms: dict[str, float]
    inference: Any  # the Predictor.forward result (probabilities; a detector's candidate boxes)
    analysis: Any  # the assembled Analysis (its shown boxes)


def _pipeline_once(predictor, file: Path, panel_size: int, method: str) -> PipelineRun:
    """cxrdemo's pipeline once, from the file to the four panels, then encoded as the app does, with the CAM of
    ``method`` for the top-1 class.

    The order is the app's (:func:`cxrdemo.webapp.actions.analyse_case`): the panels' film view starts before the
    network (:class:`~cxrdemo.render.PanelDrawing`), so ``render`` counts the drawing that remains once the
    analysis is done. A classifier's CAM comes from the cached features (map, then box: two stages); a detector's
    from :meth:`Predictor.cam` (map and box in one stage, :data:`DETECTOR_STAGES`), and the comparison shows the
    boxes above the model's score threshold.
    """
    from ..cams import DEFAULT_CAM_THRESHOLD, CamRequest
    from ..explain import cam_box, cam_heatmaps
    from ..imaging import load_image
    from ..render import PanelDrawing
    from ..results import CamResult

    model, config = predictor.model, predictor.config
    start = time.perf_counter()
    radiograph = load_image(file)
    t_decode = time.perf_counter()
    drawing = PanelDrawing(radiograph, panel_size, model_region=predictor.region_of(radiograph.width, radiograph.height))
    inference = predictor.forward(radiograph)
    t_forward = time.perf_counter()
    if predictor.is_detector:
        cam = predictor.cam(inference, CamRequest(method, None, DEFAULT_CAM_THRESHOLD))
        t_cam = t_box = time.perf_counter()
    else:
        index = predictor.class_index(None, inference.probabilities)
        label = config.classes[index]
        heatmap = cam_heatmaps(model, inference.features, [index], method)[0]
        t_cam = time.perf_counter()
        box = cam_box(heatmap, DEFAULT_CAM_THRESHOLD, width=inference.width, height=inference.height, label=label)
        t_box = time.perf_counter()
        cam = CamResult(method, label, DEFAULT_CAM_THRESHOLD, heatmap, box)
    analysis = predictor.assemble(inference, cam, predictor.ground_truth(inference))  # a detector: at its own threshold
    t_compare = time.perf_counter()
    panels = drawing.finish(analysis)
    end = time.perf_counter()
    encode_as_app(panels)
    t_encoded = time.perf_counter()
    times = {
        "decode": (t_decode - start) * 1e3,
        "preprocess": inference.timings_ms["preprocess"],
        "forward": inference.timings_ms["forward"],
        "gradcam": (t_cam - t_forward) * 1e3,
        "cam_box": (t_box - t_cam) * 1e3,
        "compare": (t_compare - t_box) * 1e3,
        "render": (end - t_compare) * 1e3,
    }
    stages = DETECTOR_STAGES if predictor.is_detector else STAGES
    return PipelineRun((end - start) * 1e3, (t_encoded - start) * 1e3, {s: times[s] for s in stages}, inference, analysis)


def measure_single(
    predictor,
    files: Sequence[Path],
    n: int,
    warmup: int,
    sync: Callable[[], None],
    peer: bool = True,
    progress: StageLog = _silent,
    *,
    panel_size: int,
    method: str = "gradcam",
    films: "DetectorFilms | None" = None,
) -> dict[str, Any]:
    """Forward, forward+backward, the whole pipeline (and the peer's), alternating, ``n`` timed iterations after
    ``warmup``; the panels' longest side is ``panel_size``, the pipeline's CAM ``method``. A detector is timed
    against its own passes on ``films`` (:func:`cxrdemo.bench.detector.prepare_films` of ``files``; required for a
    detector)."""
    from .detector import DetectorPasses

    model = predictor.model
    passes = DetectorPasses(model, films) if films is not None else _ClassifierPasses(model, files)
    peer_pipeline = None
    if peer:
        from .peer import PEER_STAGES, PeerPipeline

        peer_pipeline = PeerPipeline(predictor, side=panel_size)
        peer_stages: dict[str, list[float]] = {s: [] for s in PEER_STAGES}
    forward: list[float] = []
    forward_backward: list[float] = []
    pipeline: list[float] = []
    encoded: list[float] = []
    peer_total: list[float] = []
    prob_diff: list[float] = []
    candidates: list[int] = []
    shown: list[int] = []
    stages: dict[str, list[float]] = {s: [] for s in (DETECTOR_STAGES if predictor.is_detector else STAGES)}

    def ours(k: int) -> PipelineRun:
        return _pipeline_once(predictor, files[k], panel_size, method)

    total = warmup + n
    step = max(1, total // 10)
    last_report = time.monotonic()
    try:
        for it in range(total):
            k = it % len(files)
            keep = it >= warmup
            x = passes.input(k)
            time.sleep(SETTLE_S)
            if it and (it % step == 0 or time.monotonic() - last_report > 10):
                progress(f"single image: {it}/{total} iterations ({warmup} warm-up)")
                last_report = time.monotonic()

            sync()
            t0 = time.perf_counter()
            passes.forward(x, k)
            sync()
            t1 = time.perf_counter()
            backward_ran = passes.forward_backward(x, k)
            sync()
            t2 = time.perf_counter()

            # Ours and the peer, in alternating order so that neither always runs second.
            ours_first = it % 2 == 0
            if ours_first:
                run = ours(k)
            if peer_pipeline is not None:
                sync()
                p0 = time.perf_counter()
                peer_times, peer_out = peer_pipeline(files[k])
                sync()
                p1 = time.perf_counter()
            if not ours_first:
                run = ours(k)
            if keep:
                forward.append((t1 - t0) * 1e3)
                if backward_ran:
                    forward_backward.append((t2 - t1) * 1e3)
                pipeline.append(run.ms)
                encoded.append(run.encoded_ms)
                for stage, ms in run.stages_ms.items():
                    stages[stage].append(ms)
                if run.inference.detections is not None:
                    candidates.append(len(run.inference.detections))
                    shown.append(len(run.analysis.boxes))
                if peer_pipeline is not None:
                    peer_total.append((p1 - p0) * 1e3)
                    for stage, ms in peer_times.items():
                        peer_stages[stage].append(ms)
                    prob_diff.append(float(np.max(np.abs(peer_out["probabilities"] - run.inference.probabilities))))
    finally:
        passes.close()
    return {
        "forward_ms": summary(forward),
        "forward_backward_ms": summary(forward_backward) if forward_backward else None,
        "pipeline_ms": summary(pipeline),
        "stages_ms": {s: round(float(np.median(v)), 2) for s, v in stages.items()},
        "pipeline_encoded_ms": summary(encoded),
        "peer_ms": summary(peer_total) if peer_total else None,
        "peer_stages_ms": {s: round(float(np.median(v)), 2) for s, v in peer_stages.items()} if peer_total else None,
        "peer_prob_diff_max": round(max(prob_diff), 4) if prob_diff else None,
        "detector_boxes": {"candidates": float(np.median(candidates)), "shown": float(np.median(shown))} if candidates else None,
    }


def measure_batched(
    predictor, files: Sequence[Path], batch_size: int, rounds: int, sync: Callable[[], None], method: str = "gradcam"
) -> tuple[float, float]:
    """Images per second of the evaluate path's batched work and of the bare batched forward, on the same batches.

    The evaluate path (as :func:`cxrdemo.evaluate.evaluate_samples` does per batch, decoding excluded: both sides
    start from preprocessed tensors): :meth:`Predictor.forward_tensor`, then the top-1 CAM (``method``) of every
    image from the cached features and its box. A classifier's; a detector's is
    :func:`cxrdemo.bench.detector.measure_detector_batched`.
    """
    import torch

    from ..cams import DEFAULT_CAM_THRESHOLD
    from ..explain import cam_box, cam_heatmaps
    from ..imaging import load_image
    from ..models.cln import MultiTaskNet
    from ..preprocess import normalise, resize_gray

    model, config, device = predictor.model, predictor.config, predictor.device
    decoded = [load_image(f) for f in files]
    sizes = [(r.width, r.height) for r in decoded]
    if isinstance(model, MultiTaskNet):
        resized = np.stack([resize_gray(r.pixels, config.input_size) for r in decoded])
        batches = [normalise(resized[i : i + batch_size], config).to(device) for i in range(0, len(files), batch_size)]
    else:  # a foreign adapter: the preprocessing its own files declare
        inputs = model.preprocess_batch([r.pixels for r in decoded])
        batches = [inputs[i : i + batch_size].to(device) for i in range(0, len(files), batch_size)]

    def bare() -> None:
        with torch.inference_mode():
            for b in batches:
                model(b)

    def evaluate() -> None:
        offset = 0
        for b in batches:
            probs, _, feats = predictor.forward_tensor(b)
            targets = [int(i) for i in probs.argmax(axis=1)]
            maps = cam_heatmaps(model, feats, targets, method)
            for j, hm in enumerate(maps):
                w, h = sizes[offset + j]
                cam_box(hm, DEFAULT_CAM_THRESHOLD, width=w, height=h, label=config.classes[targets[j]])
            offset += len(b)

    return alternating_rates(evaluate, bare, len(files), rounds, sync)


# ------------------------------------------------------------------------------------------------------ run
def ratio_basis(is_detector: bool, method: str) -> str:
    """The denominator of ``pipeline_ratio`` (the result's ``ratio_basis``): ``forward_backward_ms`` for a
    classifier; for a detector ``forward_ms`` with a gradient-free CAM (EigenCAM), else
    ``forward_ms + forward_backward_ms`` (see the module doc)."""
    from ..cams import is_class_agnostic

    if not is_detector:
        return "forward_backward_ms"
    return "forward_ms" if is_class_agnostic(method) else "forward_ms + forward_backward_ms"


def pipeline_ratio(single: dict[str, Any], basis: str) -> float:
    """``pipeline_ms`` / the sum of the medians that ``basis`` (:func:`ratio_basis`) names, of ``single``'s."""
    return round(single["pipeline_ms"]["median"] / sum(single[key]["median"] for key in basis.split(" + ")), 3)


def bench(
    images: str | os.PathLike,
    *,
    n: int = 20,
    weights: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    warmup: int = 3,
    cold_runs: int = 3,
    rounds: int = 5,
    peer: bool = True,
    progress: StageLog = _silent,
    panel_size: int | None = None,
    cam: str = "gradcam",
) -> dict[str, Any]:
    """Run every measurement; the result has exactly :data:`RESULT_KEYS`. ``panel_size``: the panels' longest side
    (default :data:`cxrdemo.render.DEFAULT_SIZE`, 768; the web page draws 640); ``cam``: the pipeline's CAM method
    (:data:`cxrdemo.cams.CAM_METHOD_KEYS`)."""
    import torch

    from ..cams import check_method, is_class_agnostic
    from ..device import pick_device
    from ..errors import InputError
    from ..predict import Predictor
    from ..render import DEFAULT_SIZE

    if n < 1 or batch_size < 1 or warmup < 0:
        raise InputError("--n and --batch-size must be at least 1, --warmup at least 0")
    panel_size = DEFAULT_SIZE if panel_size is None else panel_size
    if not 64 <= panel_size <= 4096:
        raise InputError(f"--panel-size {panel_size}: use 64 to 4096 pixels")
    method = check_method(cam)
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: use a positive number of threads")
        torch.set_num_threads(threads)
    dev = pick_device(device)
    files = pick_images(images, n)
    progress(f"loading the model ({weights or 'default weights'}) on {dev}")
    predictor = Predictor.from_source(weights, device=str(dev))
    if peer and getattr(predictor.model, "format_name", "cxrdemo") != "cxrdemo":
        progress("the peer pipeline needs a cxrdemo model's hookable CAM layer and box head: skipped for this format")
        peer = False
    sync = _syncer(dev)
    films = None
    if predictor.is_detector:
        from .detector import measure_detector_batched, prepare_films

        progress(f"detector: a first pass on each of {len(files)} films (untimed): its top box")
        films = prepare_films(predictor.model, files)
        picked = len(films.files)
        if not is_class_agnostic(method):  # a gradient CAM needs a box: films without one are left out
            films = films.with_boxes()
            files = films.files
            if len(files) < picked:
                progress(f"{picked - len(files)} of {picked} films have no box: left out ({method} needs one)")
    progress(f"single image: {n} images x (forward, forward+backward, pipeline{', peer' if peer else ''}) after {warmup} warm-up")
    single = measure_single(predictor, files, n, warmup, sync, peer=peer, progress=progress, panel_size=panel_size,
                            method=method, films=films)
    if films is not None:
        progress(f"evaluate: {rounds + 1} rounds of predict_boxes and bare forward, one film at a time")
        evaluate_ips, bare_ips = measure_detector_batched(predictor.model, films, rounds, sync)
        single["detector_boxes"]["films_left_out"] = picked - len(files)
    else:
        progress(f"batched: {rounds + 1} rounds of evaluate and bare forward, batches of {batch_size}")
        evaluate_ips, bare_ips = measure_batched(predictor, files, batch_size, rounds, sync, method)
    cold = measure_cold_start(files[0], weights, str(dev), threads, cold_runs, progress, method)
    basis = ratio_basis(predictor.is_detector, method)
    peer_ms = single["peer_ms"]
    result = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "architecture": predictor.config.architecture,
        "n": n,
        "panel_size": panel_size,
        "cam_method": method,
        **single,
        "pipeline_ratio": pipeline_ratio(single, basis),
        "ratio_basis": basis,
        "evaluate_images_per_s": round(evaluate_ips, 2),
        "bare_forward_images_per_s": round(bare_ips, 2),
        "evaluate_ratio": round(evaluate_ips / bare_ips, 3),
        "cold_start_s": cold,
        "peer_ratio": round(peer_ms["median"] / single["pipeline_encoded_ms"]["median"], 3) if peer_ms else None,
    }
    result["targets"] = check_targets(result)
    progress("done")
    return {k: result[k] for k in RESULT_KEYS}


def run_bench(args: argparse.Namespace) -> int:
    """``bench``: measure, print the table and the targets, write ``--out``; 0 on success (3 with ``--strict`` when
    a target was missed)."""
    result = bench(
        args.images,
        n=args.n,
        weights=args.weights,
        threads=args.threads,
        device=args.device,
        batch_size=args.batch_size,
        warmup=args.warmup,
        cold_runs=args.cold_runs,
        peer=getattr(args, "peer", True),
        panel_size=getattr(args, "panel_size", None),
        cam=getattr(args, "cam", "gradcam"),
        progress=_silent if getattr(args, "quiet", False) else stderr_progress,
    )
    print(format_table(result))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    missed = [k for k, check in result["targets"].items() if check["met"] is False]
    return 3 if missed and getattr(args, "strict", False) else 0
