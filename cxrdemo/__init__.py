"""cxrdemo: see what a chest X-ray multi-task model does on a radiograph.

Data flows one way: ``imaging`` (decode) -> ``preprocess`` -> ``model`` (via ``predict``) -> ``explain`` (Grad-CAM)
-> ``truth`` / ``boxes`` (IoU) -> ``render``. The app and the CLI only call these functions.

Research demo, not a diagnostic device.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
