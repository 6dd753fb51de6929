"""Fetching a Hub model's files into the standard Hub cache: revision checked, sizes capped, failures in one line.

``fetch_from_hub(repo_id, revision)`` brings ``config.json``, the weights (``model.safetensors``, else
``pytorch_model.bin``) and the optional files (:data:`OPTIONAL_FILES`) of one revision into one snapshot folder of
the cache (``HF_HOME`` / ``HF_HUB_CACHE``, from ``HF_ENDPOINT``), with :func:`huggingface_hub.hf_hub_download`:

- the revision must be a branch or tag name or a commit hash (:func:`cxrdemo.locations.check_revision`): the
  library reads ``refs/<revision>`` from its cache, so a revision that reads as a path never reaches it;
- each file's size is checked from the Hub's metadata before it is downloaded, and the local copy's before it is
  read (:mod:`cxrdemo.hubsize`);
- pinned to a commit hash whose files are cached, a load sends no request (a commit never changes); by branch or
  tag it asks the Hub where the branch points (metadata only when the files are cached), so a new commit is used;
- ``HF_HUB_OFFLINE=1``, or a Hub that cannot be reached, uses the cache only; a Hub that answers 5xx or breaks the
  connection falls back to the cached copy of the revision, as huggingface_hub does;
- a missing repo, revision or file, a private or gated repo (set ``HF_TOKEN``), a Hub error or a connection cut
  mid-file is one :class:`~cxrdemo.errors.WeightsError` line; huggingface_hub writes a download to a temporary file
  and moves it into place only when complete, so a failure leaves nothing partial in the cache.

``tests/test_hub_http.py`` runs all of this against a Hub-compatible server over HTTP (``tests/hub_server.py``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from ..hubsize import check_local_size, check_remote_size
from ..locations import check_revision
from ..provenance import SPLITS_NAME
from ..publicmode import clip_text
from .config import CONFIG_NAME

WEIGHTS_NAME = "model.safetensors"
CHECKSUM_NAME = "model.safetensors.sha256"
CARD_NAME = "README.md"
#: Files a model repo may carry besides config.json and the weights (splits, transformers' processor, the card,
#: the weights' checksum).
OPTIONAL_FILES = (SPLITS_NAME, "preprocessor_config.json", CARD_NAME, CHECKSUM_NAME)


@dataclass(frozen=True)
class HubFiles:
    """Where a Hub model's files are: the cache's snapshot folder, and its commit hash (``None`` if not a hash)."""

    folder: Path
    commit: str | None


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for the cache only (read at call time, as the user may set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection within ``timeout`` seconds.

    Checked before going online so that an unreachable Hub costs seconds, not huggingface_hub's retry loop, and a
    cached copy is used instead.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_from_hub(repo_id: str, revision: str | None) -> HubFiles:
    """The files of the Hub model ``repo_id`` at ``revision`` (``None``: the default branch) in the Hub cache, fetched
    when needed; every failure is one :class:`WeightsError` line (see the module doc)."""
    from huggingface_hub import errors as hf_errors

    check_revision(revision)  # the last gate: huggingface_hub reads refs/<revision> from its cache when offline
    label = clip_text(f"{repo_id}@{revision}" if revision else repo_id)
    repo = clip_text(repo_id)
    offline = hub_offline()
    pinned_and_cached = _commit_cached(repo_id, revision)
    cache_only = offline or (not pinned_and_cached and not hub_reachable())
    try:
        try:
            config_path = _fetch_files(repo_id, revision, cache_only, label)
        except Exception as failed:  # noqa: BLE001 - only the Hub's own failures are retried, the rest re-raised
            if cache_only or not _hub_failed(failed):
                raise
            try:  # the Hub answered 5xx or the connection broke: a cached copy of this revision will do, as offline
                config_path = _fetch_files(repo_id, revision, True, label)
            except (hf_errors.EntryNotFoundError, hf_errors.OfflineModeIsEnabled):
                raise failed from None
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub cannot be reached"
        if isinstance(exc, hf_errors.LocalEntryNotFoundError) and not cache_only:
            why = "the download failed"
        first = "unset HF_HUB_OFFLINE and connect to the internet once" if offline else "connect to the internet once"
        raise WeightsError(
            f"{why} and {label} is not in the local Hub cache; {first}, or use a local model folder (config.json + model.safetensors) as the source"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"Hub repo {repo} has no revision {clip_text(revision)!r}; check the branch, tag or commit") from None
    except hf_errors.GatedRepoError:  # before RepositoryNotFoundError, of which it is a subclass
        raise WeightsError(
            f"Hub repo {repo} is gated: accept its conditions on its Hub page, then set HF_TOKEN to a token of that account"
        ) from None
    except hf_errors.RepositoryNotFoundError as exc:
        if _status(exc) in (401, 403):
            raise WeightsError(
                f"Hub repo {repo} is private or does not exist (HTTP {_status(exc)}); set HF_TOKEN to a token that can read it, or check the id"
            ) from None
        raise WeightsError(f"Hub repo {repo} was not found; check the id (a private repo also needs HF_TOKEN set to a token that can read it)") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"Hub repo {label} has no {CONFIG_NAME} and {WEIGHTS_NAME}; it is not a cxrdemo model") from None
    except hf_errors.HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise WeightsError(f"the Hub refused access to {label} (HTTP {status}); set HF_TOKEN to a token that can read it") from None
        if status is not None and status >= 500:
            raise WeightsError(f"the Hub failed to serve {label} (HTTP {status}, a server error); try again later, or use a local model folder") from None
        raise WeightsError(f"the Hub refused {label}: {str(exc).splitlines()[0][:120]}; try again later or use a local folder") from None
    except (OSError, *_transport_errors()) as exc:
        raise WeightsError(
            f"could not fetch {label} from the Hugging Face Hub ({exc.__class__.__name__}: the connection failed or was cut); "
            "nothing partial was kept: try again, or use a local model folder as the source"
        ) from None
    folder = config_path.parent
    commit = folder.name if _COMMIT.fullmatch(folder.name) else None
    return HubFiles(folder, commit)


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _fetch_files(repo_id: str, revision: str | None, cache_only: bool, label: str) -> Path:
    """A Hub model's files into one snapshot of the cache (config, weights, the optional files); its config's path."""
    from huggingface_hub import errors as hf_errors

    config_path = _fetch_capped(repo_id, CONFIG_NAME, revision, cache_only, label)
    try:
        _fetch_capped(repo_id, WEIGHTS_NAME, revision, cache_only, label)
    except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError) as missing:
        try:  # a transformers repo with tensor-only pickles (read with weights_only=True)
            _fetch_capped(repo_id, "pytorch_model.bin", revision, cache_only, label)
        except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError):
            raise missing from None
    for optional in OPTIONAL_FILES:
        _fetch_optional(repo_id, optional, revision, cache_only, label)
    return config_path


def _hub_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the Hub failing (a 5xx answer, a broken connection) rather than an answer about the repo:
    then a cached copy is used, as huggingface_hub itself does when its metadata request fails."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = _status(exc)
        return status is not None and status >= 500
    return isinstance(exc, (ConnectionError, TimeoutError, *_transport_errors()))


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a huggingface_hub error, when it carries a response."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's connection errors (a connection cut mid-file), which are not :class:`OSError`."""
    try:
        from httpx2 import TransportError  # the client huggingface_hub 2.x uses
    except ImportError:  # pragma: no cover - an older huggingface_hub (requests raises OSError subclasses)
        return ()
    return (TransportError,)


def _commit_cached(repo_id: str, revision: str | None) -> bool:
    """Whether ``revision`` is a commit hash whose config and weights are both in the Hub cache: such a load sends
    no request (a commit's files never change), so it does not wait for the connection check either."""
    if revision is None or not _COMMIT.fullmatch(revision):
        return False
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name, revision=revision), str)

    return cached(CONFIG_NAME) and (cached(WEIGHTS_NAME) or cached("pytorch_model.bin"))


def _fetch_capped(repo_id: str, filename: str, revision: str | None, cache_only: bool, label: str) -> Path:
    """One file of a Hub model: its size checked from the Hub's metadata before the download (online), and the
    local copy's size checked before anything reads it (always: also a cached file, and a file changed on the Hub
    between the two requests).

    A revision that is a commit hash is served from the cache without any request when the file is there (or its
    absence was recorded there): a commit's files never change. A branch or tag asks the Hub each time (one
    metadata request per file, no body when cached), since it may have moved.
    """
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    if revision is not None and _COMMIT.fullmatch(revision):
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(cached, str):
            check_local_size(cached, label)
            return Path(cached)
        if cached is not None:  # the Hub said at this commit that the file does not exist
            raise hf_errors.EntryNotFoundError(f"{filename} is not in {repo_id}@{revision}")
    if not cache_only:
        try:
            check_remote_size(repo_id, filename, revision, label)
        except hf_errors.RemoteEntryNotFoundError:
            # let huggingface_hub record the absence in its cache (a metadata request, never a download), so that
            # a load pinned to this commit asks no more
            hf_hub_download(repo_id, filename, revision=revision, library_name="cxrdemo", dry_run=True)
            raise
    path = Path(hf_hub_download(repo_id, filename, revision=revision, library_name="cxrdemo", local_files_only=cache_only))
    check_local_size(path, label)
    return path


def _fetch_optional(repo_id: str, filename: str, revision: str | None, cache_only: bool, label: str) -> None:
    """Fetch a file that a model repo may lack (e.g. ``data_splits.json``) into the same snapshot; absent is fine."""
    from huggingface_hub import errors as hf_errors

    try:
        _fetch_capped(repo_id, filename, revision, cache_only, label)
    except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError):
        pass
