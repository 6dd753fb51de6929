"""cxrdemo.lazy_imports: grad-cam without its unused heavy imports, and never a wrong result because of it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cxrdemo.lazy_imports import DeferredAttribute, import_deferring


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """A 'heavy' module that counts its imports, and packages that import from it in two ways."""
    (tmp_path / "heavy_mod.py").write_text("import builtins\nbuiltins.HEAVY_IMPORTS = getattr(builtins, 'HEAVY_IMPORTS', 0) + 1\n"
                                           "class Base:\n    pass\n\ndef double(x):\n    return 2 * x\n")
    (tmp_path / "uses_later.py").write_text("from heavy_mod import double\n\ndef run(x):\n    return double(x)\n")
    (tmp_path / "uses_now.py").write_text("from heavy_mod import Base\n\nclass Child(Base):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("heavy_mod", "uses_later", "uses_now"):
        sys.modules.pop(name, None)
    import builtins

    if hasattr(builtins, "HEAVY_IMPORTS"):
        del builtins.HEAVY_IMPORTS


def test_deferred_module_is_imported_on_first_use_only(packages):
    import builtins

    module = import_deferring("uses_later", deferred=("heavy_mod",))
    assert "heavy_mod" not in sys.modules  # no placeholder left behind, the real module not imported
    assert isinstance(module.double, DeferredAttribute)
    assert getattr(builtins, "HEAVY_IMPORTS", 0) == 0
    assert module.run(21) == 42  # forwarded to the real function
    assert builtins.HEAVY_IMPORTS == 1 and "heavy_mod" in sys.modules
    assert import_deferring("uses_later", deferred=("heavy_mod",)) is module


def test_import_that_needs_the_module_at_import_time_falls_back(packages):
    module = import_deferring("uses_now", deferred=("heavy_mod",))
    import heavy_mod

    assert issubclass(module.Child, heavy_mod.Base)  # the ordinary import ran: a real subclass


def test_explain_imports_grad_cam_without_plotting_or_kpca():
    code = textwrap.dedent(
        """
        import sys, types
        import cxrdemo.explain
        heavy = ("matplotlib.pyplot", "matplotlib.lines", "scipy.ndimage", "sklearn.decomposition")
        print(sorted(m for m in heavy if m in sys.modules))
        print(sorted(k for k, v in sys.modules.items() if type(v).__name__ == "_Placeholder"))
        import matplotlib.pyplot as plt
        print(callable(plt.figure), plt.__name__)
        from pytorch_grad_cam.utils.image import zoom
        import numpy as np
        print(zoom(np.ones((2, 2)), 2).shape)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "[]", "True matplotlib.pyplot", "(4, 4)"]
