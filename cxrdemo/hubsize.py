"""Size caps of the files a Hub model source brings: checked before a download, and before a cached file is read.

A Hub id is text a stranger may type on a public server; without caps it makes the server download and read any
file of any size. Caps (see docs/security.md, "Public mode and model sources"):

- ``model.safetensors``: ``CXRDEMO_MAX_WEIGHTS_MB`` megabytes (default :data:`DEFAULT_MAX_WEIGHTS_MB`; the embedded
  model is 17 MB, a ResNet-50 model about 100 MB);
- ``config.json``: :data:`cxrdemo.models.config.MAX_CONFIG_BYTES` (1 MiB; a cxrdemo config is a few KB);
- ``data_splits.json``: :data:`MAX_SPLITS_BYTES` (the names of all 112,120 NIH images take about 2 MB);
- ``preprocessor_config.json`` (transformers) 1 MiB as config.json, ``README.md`` 1 MiB, ``model.safetensors.sha256``
  4 KiB (:data:`SMALL_FILE_CAPS`).

Online, the sizes come from the Hub's metadata (:func:`huggingface_hub.get_hf_file_metadata`, a HEAD request, no
body) before anything is downloaded; offline (``HF_HUB_OFFLINE=1`` or no connection), the cached file's size is
checked before it is read. Every refusal is one :class:`~cxrdemo.errors.WeightsError` line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .models.config import CONFIG_NAME, MAX_CONFIG_BYTES
from .errors import WeightsError

#: The variable that caps the size of a Hub model's ``model.safetensors`` (megabytes, 10^6 bytes).
ENV_MAX_WEIGHTS_MB = "CXRDEMO_MAX_WEIGHTS_MB"
DEFAULT_MAX_WEIGHTS_MB = 500.0
#: Cap of a Hub model's ``data_splits.json``.
MAX_SPLITS_BYTES = 16 << 20
#: Cap of a Hub model's card (``README.md``; the outputs read its first 20,000 characters).
MAX_CARD_BYTES = 1 << 20
#: Cap of ``model.safetensors.sha256`` (64 hex digits, a file name and a newline).
MAX_CHECKSUM_BYTES = 4096
WEIGHTS_FILE = "model.safetensors"
SPLITS_FILE = "data_splits.json"


def max_weights_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The cap of ``model.safetensors`` in bytes, from ``CXRDEMO_MAX_WEIGHTS_MB`` (default 500 MB).

    Raises:
        WeightsError: the variable is not a positive number.
    """
    env = os.environ if environ is None else environ
    text = env.get(ENV_MAX_WEIGHTS_MB, "").strip()
    if not text:
        return round(DEFAULT_MAX_WEIGHTS_MB * 1e6)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e7:  # also refuses nan and inf
        raise WeightsError(f"{ENV_MAX_WEIGHTS_MB}={text[:40]!r} is not a size in megabytes; set it to a positive number such as 500")
    return round(value * 1e6)  # round, not int: 17.052336 MB is 17,052,336 bytes, not one byte less


#: Caps of the small files a model repo may carry besides its weights (the weights' cap is the variable's).
SMALL_FILE_CAPS: dict[str, int] = {
    CONFIG_NAME: MAX_CONFIG_BYTES,
    "preprocessor_config.json": MAX_CONFIG_BYTES,
    SPLITS_FILE: MAX_SPLITS_BYTES,
    "README.md": MAX_CARD_BYTES,
    "model.safetensors.sha256": MAX_CHECKSUM_BYTES,
}


def cap_bytes(filename: str) -> int:
    """The cap of a model repo's file ``filename``: :data:`SMALL_FILE_CAPS`, else (weights) ``CXRDEMO_MAX_WEIGHTS_MB``."""
    if filename in SMALL_FILE_CAPS:
        return SMALL_FILE_CAPS[filename]
    return max_weights_bytes()


def _amount(size: int) -> str:
    """``1,048,577 bytes`` below 10 MB (where MB would round two different sizes alike), else ``5000 MB``."""
    return f"{size:,} bytes" if size < 10_000_000 else f"{size / 1e6:.0f} MB"


def _refusal(label: str, filename: str, size: int, cap: int) -> WeightsError:
    hint = f"raise {ENV_MAX_WEIGHTS_MB} if you trust this model" if filename not in SMALL_FILE_CAPS else "this is not a cxrdemo model file"
    return WeightsError(f"{label}: {filename} has {_amount(size)}, more than the {_amount(cap)} allowed; {hint}")


def check_remote_size(repo_id: str, filename: str, revision: str | None, label: str) -> int:
    """The size of ``filename`` in the Hub repo, from its metadata (no download); refused above its cap.

    Raises:
        WeightsError: the file is larger than its cap, or the Hub does not say how large it is.
        huggingface_hub errors (missing repo, file or revision; HTTP errors): left to the caller, which words them.
    """
    import huggingface_hub

    url = huggingface_hub.hf_hub_url(repo_id, filename, revision=revision)
    meta = huggingface_hub.get_hf_file_metadata(url, library_name="cxrdemo")
    size = meta.size
    if size is None:
        raise WeightsError(f"{label}: the Hub did not say how large {filename} is, so it is not downloaded; try again later")
    cap = cap_bytes(filename)
    if size > cap:
        raise _refusal(label, filename, size, cap)
    return int(size)


def check_local_size(path: str | os.PathLike, label: str) -> int:
    """The size of a downloaded or cached file, refused above the cap of its name, before anything reads it."""
    file = Path(path)
    size = file.stat().st_size
    cap = cap_bytes(file.name)
    if size > cap:
        raise _refusal(label, file.name, size, cap)
    return size
