"""``bench`` on an object detector: the detector's own passes that cxrdemo's pipeline is measured against.

A detector (:class:`~cxrdemo.models.detector_base.DetectorBase`: torchvision or transformers) has no ``model(x)``
that gives logits, so :mod:`cxrdemo.bench.pipeline` measures it against what its library runs, batch 1:

- the forward (:func:`detector_forward`): ``raw_forward(x)`` + ``postprocess(...)`` on the preprocessed film, in
  inference mode, no hooks;
- the core of a gradient CAM as pytorch-grad-cam's detector tutorial runs it (:meth:`DetectorPasses.forward_backward`): a forward
  hook on the CAM layer, one forward with gradients (input ``requires_grad``) through ``raw_forward`` +
  ``postprocess``, the :class:`~cxrdemo.explain.BoxScoreTarget` of the film's top-scoring box, then
  ``torch.autograd.grad`` to the CAM layer's activation. The box comes from a first pass without gradients
  (:func:`prepare_films`, untimed), as the tutorial takes it from a first prediction;
- the evaluate path (:func:`measure_detector_batched`): :meth:`DetectorBase.predict_boxes
  <cxrdemo.models.detector_base.DetectorBase.predict_boxes>` (what the audit runs, one film at a time) against the
  bare forward of each film, both from the decoded film (the preprocessing included on both sides).

Research demo, not a diagnostic device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..explain import BoxScoreTarget
from .rounds import alternating_rates


@dataclass
class DetectorFilms:
    """The films a detector is timed on, with what its first (untimed) pass found.

    Attributes:
        files: the image files.
        pixels: each film decoded (2-D uint8, original pixels); preprocessed just before each timed pass.
        targets: the :class:`BoxScoreTarget` of each film's top-scoring box, ``None`` where the detector found none.
        candidates: the number of candidate boxes of each film (the library's post-processing at its floor).
    """

    files: list[Path]
    pixels: list[np.ndarray]
    targets: list[BoxScoreTarget | None]
    candidates: list[int]

    def size(self, k: int) -> tuple[int, int]:
        """``(height, width)`` of film ``k``."""
        return int(self.pixels[k].shape[0]), int(self.pixels[k].shape[1])

    def with_boxes(self) -> "DetectorFilms":
        """Only the films with at least one candidate box (a gradient CAM needs a box); a one-line
        :class:`InputError` when none has one."""
        keep = [k for k, t in enumerate(self.targets) if t is not None]
        if not keep:
            raise InputError(f"the detector finds no box on any of the {len(self.files)} films; a gradient CAM needs one: "
                             "use --cam eigencam (no box needed) or other --images")
        return replace(self, files=[self.files[k] for k in keep], pixels=[self.pixels[k] for k in keep],
                       targets=[self.targets[k] for k in keep], candidates=[self.candidates[k] for k in keep])


def film_input(model, pixels: np.ndarray) -> torch.Tensor:
    """The detector's preprocessed ``(1, C, H, W)`` input of a decoded film, on the model's device."""
    return model.preprocess(pixels)[None].to(next(model.parameters()).device)


def prepare_films(model, files: Sequence[Path]) -> DetectorFilms:
    """Decode ``files`` and run the detector once on each (:meth:`detect`, untimed): its top box and candidates."""
    from ..imaging import load_image

    pixels, targets, candidates = [], [], []
    for f in files:
        film = load_image(f).pixels
        height, width = int(film.shape[0]), int(film.shape[1])
        boxes = model.detect(film_input(model, film), width, height).boxes  # also finds the CAM layer, once
        top = boxes[0] if boxes else None
        label_id = None if top is None else next(i for i, name in model.label_names.items() if name == top.label)
        pixels.append(film)
        targets.append(None if top is None else BoxScoreTarget(label_id, np.asarray(top.xyxy, dtype=np.float32)))
        candidates.append(len(boxes))
    return DetectorFilms(list(files), pixels, targets, candidates)


def detector_forward(model, x: torch.Tensor, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """The detector's own forward on a preprocessed film ``x`` of ``size`` ``(height, width)``: ``raw_forward`` +
    ``postprocess``, in inference mode, no hooks."""
    with torch.inference_mode():
        return model.postprocess(model.raw_forward(x), [size])


class DetectorPasses:
    """The detector's own passes on film ``k`` of ``films``, as :func:`cxrdemo.bench.pipeline.measure_single` times
    them (see module doc); the gradient's hook lives only during each call."""

    def __init__(self, model, films: DetectorFilms) -> None:
        self.model = model
        self.films = films

    def input(self, k: int) -> torch.Tensor:
        """Film ``k`` preprocessed (made before the timed passes)."""
        return film_input(self.model, self.films.pixels[k])

    def forward(self, x: torch.Tensor, k: int) -> None:
        """:func:`detector_forward` of film ``k``'s input ``x``."""
        detector_forward(self.model, x, self.films.size(k))

    def forward_backward(self, x: torch.Tensor, k: int) -> bool:
        """The core of a gradient CAM on film ``k``'s input ``x``: the gradient of its top box's score with respect
        to the CAM layer's activation; ``False`` (nothing run) when the film has no box."""
        target = self.films.targets[k]
        if target is None:
            return False
        kept: list[torch.Tensor] = []
        handle = self.model.cam_layer().register_forward_hook(lambda _m, _i, output: kept.append(output))
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                outputs = self.model.postprocess(self.model.raw_forward(x), [self.films.size(k)])
                torch.autograd.grad(target(outputs[0]), kept[-1])
        finally:
            handle.remove()
        return True

    def close(self) -> None:
        """Nothing to release (no hook outlives a call)."""


def measure_detector_batched(model, films: DetectorFilms, rounds: int, sync: Callable[[], None]) -> tuple[float, float]:
    """Images per second of :meth:`predict_boxes` (the audit's pass, one film at a time) and of the bare forward
    (:func:`detector_forward`) of the same films, each from the decoded film; median of ``rounds`` rounds that
    alternate between the two, after one warm-up round."""

    def bare() -> None:
        for k, pixels in enumerate(films.pixels):
            detector_forward(model, film_input(model, pixels), films.size(k))

    def evaluate() -> None:
        model.predict_boxes(films.pixels)

    return alternating_rates(evaluate, bare, len(films.files), rounds, sync)
