"""Loaded models: :class:`ModelKey` (which model on which device), :class:`ModelCache` (a small LRU owned by the
app) and :func:`warm_up` (load, run and draw once at start-up so the first user does not pay for it)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..cams import CamRequest
from ..imaging import Radiograph
from ..publicmode import is_public
from .state import Progress, Settings, no_progress

if TYPE_CHECKING:
    from ..predict import Predictor


@dataclass(frozen=True)
class ModelKey:
    """Identity of a loaded model: the normalised source, the resolved device (``auto`` -> ``cpu``...), and the name
    the outputs give the model (``""``: its folder or Hub id; see :func:`.sources.source_label`)."""

    source: str
    device: str
    label: str = ""


def model_key(
    source: str | None,
    device: str | None,
    *,
    public: bool | None = None,
    named: Mapping[str, str] | None = None,
) -> ModelKey:
    """Normalise what the user typed: the gate (:func:`.sources.check_source`) first, then default -> the default
    source, named models -> their source, folders -> absolute paths, auto -> a device.

    ``public`` and ``named`` default to the server's settings (``CXRDEMO_PUBLIC`` / ``SPACE_ID`` and
    ``CXRDEMO_MODELS``, read now).

    Raises:
        InputError: a source a public server refuses (one line that does not depend on the server's files), or an
            unknown or unavailable device.
    """
    from ..device import pick_device
    from ..locations import default_source, path_exists
    from ..models.weights import HUB_PREFIX
    from .sources import check_source, named_models, source_label

    public = is_public() if public is None else public
    named = named_models() if named is None else named
    text = check_source(source, public, named) or default_source()
    if not text.startswith(HUB_PREFIX):
        path = Path(text).expanduser()
        if path_exists(path):
            text = str(path.resolve())
    label = source_label(source, public, named)
    return ModelKey(text, str(pick_device(device or "auto")), label)


class ModelCache:
    """A small thread-safe LRU of loaded predictors keyed by :class:`ModelKey`, owned by the app (not a global).

    Loading is serialised by one lock so that two requests for the same new model load it once; the predictors
    themselves are safe to share between threads (see :mod:`cxrdemo.predict`).
    """

    def __init__(self, capacity: int = 2, loader: Callable[[str, str], "Predictor"] | None = None) -> None:
        """``capacity``: models kept in memory; ``loader(source, device)`` defaults to ``Predictor.from_source``."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._loader = loader or _load_predictor
        self._items: OrderedDict[ModelKey, "Predictor"] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.loads = 0

    def get(self, key: ModelKey, progress: Progress = no_progress) -> "Predictor":
        """The predictor for ``key``, loading it (and evicting the least recently used) when needed."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._load_lock:
            with self._lock:  # another request may have loaded it while this one waited
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            progress(0.05, f"loading model {key.label or _short_source(key.source)} on {key.device}")
            predictor = self._loader(key.source, key.device)
            if key.label and hasattr(predictor, "rename"):
                predictor.rename(key.label)  # the outputs name the model, never its server folder
            self.loads += 1
            with self._lock:
                self._items[key] = predictor
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return predictor

    def keys(self) -> list[ModelKey]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _load_predictor(source: str, device: str) -> "Predictor":
    from ..predict import Predictor

    return Predictor.from_source(source, device=device)


def _short_source(source: str) -> str:
    from ..render.grid import model_name

    return model_name(source)  # a folder by its own name, never a fragment of its path


def warm_up(cache: ModelCache, settings: Settings = Settings()) -> float:
    """Load the model of ``settings``, run one forward pass and CAM on a blank image and draw its panels; returns
    the seconds taken.

    The first forward of a PyTorch model allocates its buffers and the first drawing loads fonts and the colour
    map; doing both at start-up makes the first user's answer as fast as the later ones.
    """
    from .view import render_view

    start = time.perf_counter()
    predictor = cache.get(model_key(settings.source, settings.device))
    blank = Radiograph(np.full((1024, 1024), 128, dtype=np.uint8), "warm-up.png", "png")
    inference = predictor.forward(blank)
    cam = predictor.cam(inference, CamRequest(settings.cam.method, None, settings.cam.threshold))
    render_view(blank, predictor.assemble(inference, cam))
    return time.perf_counter() - start
