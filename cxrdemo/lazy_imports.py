"""Import pytorch-grad-cam without the plotting and decomposition libraries that cxrdemo never calls.

grad-cam 1.5.7's package ``__init__`` imports every CAM method, and its utilities import ``matplotlib.pyplot``,
``matplotlib.lines``, ``scipy.ndimage`` and ``sklearn.decomposition`` at module level. They serve its plotting
helpers, KPCA-CAM and 3-D CAM zooming, none of which cxrdemo calls, and cost 2 to 3.5 s of a 6 to 10 s cold start
on a 2-core CPU (``bench/RESULTS.md``): a third of the time before the first answer.

:func:`import_deferring` imports a module while those libraries, when they are not loaded yet, are stood in for by
placeholder modules in ``sys.modules``. Every attribute taken from a placeholder (``from sklearn.decomposition
import KernelPCA``) is a :class:`DeferredAttribute`: on first use (a call or an attribute access) it imports the real
module and forwards to the real object, so a grad-cam function that does need one still works, and only it pays the
import. The placeholders live in ``sys.modules`` only for the duration of the import and are removed afterwards, so
a later ``import matplotlib.pyplot`` anywhere gets the real module. Libraries already imported are used as they are.
If the import fails with placeholders (a future grad-cam that uses one of them at import time), the partial import
is discarded and the module is imported the ordinary way: the shortcut can cost time, never correctness.

Call it at start-up, before other threads import the deferred libraries (a thread that imports one of them during
the window would get the placeholder; it would still work, through the forwarding attributes).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

#: Modules imported by grad-cam's package for functions that cxrdemo never calls.
GRAD_CAM_DEFERRED = ("matplotlib", "matplotlib.pyplot", "matplotlib.lines", "scipy.ndimage", "sklearn.decomposition")

_LOCK = threading.Lock()


class DeferredAttribute:
    """``module.name``, imported on first use; calls and attribute reads are forwarded to the real object."""

    __slots__ = ("_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def resolve(self) -> Any:
        """The real object: the attribute ``name`` of the real module, or the submodule ``module.name``."""
        module = importlib.import_module(self._module)
        try:
            return getattr(module, self._name)
        except AttributeError:
            return importlib.import_module(f"{self._module}.{self._name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


class _Placeholder(types.ModuleType):
    """A stand-in module whose public attributes are :class:`DeferredAttribute` objects."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's own probes (__path__, __spec__, ...)
            raise AttributeError(name)
        return DeferredAttribute(self.__name__, name)


def _forget(prefix: str) -> None:
    """Remove the module ``prefix`` and its submodules from ``sys.modules``."""
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]


def _remove(stubs: dict[str, types.ModuleType]) -> None:
    """Take the placeholders out of ``sys.modules`` (leaving any real module that replaced one)."""
    for m, stub in stubs.items():
        if sys.modules.get(m) is stub:
            del sys.modules[m]


def import_deferring(name: str, deferred: tuple[str, ...] = GRAD_CAM_DEFERRED) -> types.ModuleType:
    """Import ``name`` with the not-yet-loaded modules in ``deferred`` replaced by placeholders during the import.

    Returns the module (at once when it is already imported). Afterwards ``sys.modules`` holds no placeholder.
    """
    if name in sys.modules:
        return sys.modules[name]
    with _LOCK:
        if name in sys.modules:
            return sys.modules[name]
        stubs = {m: _Placeholder(m) for m in deferred if m not in sys.modules}
        sys.modules.update(stubs)
        try:
            return importlib.import_module(name)
        except Exception:
            _forget(name)  # a half-imported package must not be reused
            _remove(stubs)
            return importlib.import_module(name)  # the ordinary import: slower, same result
        finally:
            _remove(stubs)
