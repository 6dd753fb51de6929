"""Issue 27, A: every model format's real Hub download code against a Hub over real HTTP (:mod:`hub_server`, on
127.0.0.1; nothing here lays out a Hub cache by hand).

What is covered, per format where the format changes the path (:data:`CASES`), else with cxrdemo's own format:
download by branch and by commit hash; a second load pinned to a cached commit sends no request at all, a second
load by branch sends metadata requests only (a branch may have moved; no body is fetched again); ``HF_HUB_OFFLINE=1``
after a download; a new commit on the branch picked up while the old commit still loads the old weights; the size
cap decided from the metadata before any byte of the file is fetched; 404 (repo, revision, file), 401 and 403
(private, gated) each one line (401/403 name ``HF_TOKEN``); a 5xx and a connection dropped mid-file leave nothing
in the cache and the next call works; weights whose sha256 is not the pinned one are refused; a public server loads
a Hub id for real and still refuses paths; the CLI reaches the server through ``HF_ENDPOINT`` alone.

Adding a format (e.g. the transformers object detector): one more :class:`HubCase` in :data:`CASES` (its name, the
source prefix, a builder that writes the model folder, the ``format_name`` the loaded model reports); every
parametrised test then runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, calibrated_model_folder
from hub_server import HubServer, endpoint_constants, hub, set_offline  # noqa: F401 - hub is a fixture
from model_formats import hf_detector_folder, hf_folder, timm_folder

from cxrdemo import hubsize
from cxrdemo.errors import InputError, WeightsError
from cxrdemo.models.weights import WEIGHTS_NAME, file_sha256, load_model

LABELS = ["Effusion", "Mass"]


@dataclass(frozen=True)
class HubCase:
    """One model format as the Hub serves it: ``prefix`` + ``owner/name[@rev]`` is the source a user types."""

    name: str
    prefix: str
    build: Callable[[Path], Path]  # writes the model's files into a new folder under the given one, returns it
    format_name: str  # what the loaded model reports (``model.format_name``; cxrdemo's own: "cxrdemo")


CASES = [
    HubCase("cxrdemo", "", lambda tmp: calibrated_model_folder(tmp / "cxrdemo", 64, batches=1), "cxrdemo"),
    HubCase("timm", "hf-hub:", lambda tmp: timm_folder(tmp, "resnet10t", LABELS), "timm"),
    HubCase("transformers", "hf:", lambda tmp: hf_folder(tmp, "vit", LABELS, multi=True), "transformers"),
    HubCase("hf-detector", "hf:", lambda tmp: hf_detector_folder(tmp, "detr"), "transformers-detector"),
]
IDS = [case.name for case in CASES]


def _format(loaded) -> str:
    detector = "-detector" if getattr(loaded.model, "is_detector", False) else ""
    return getattr(loaded.model, "format_name", "cxrdemo") + detector


def _altered_copy(folder: Path, dest: Path) -> Path:
    """``folder`` copied to ``dest`` with one weight tensor changed (same names and shapes: a newer version of the
    same model), its checksum file (if any) rewritten."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, dest)
    weights = dest / WEIGHTS_NAME
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.5
    save_file(state, str(weights), metadata=metadata)
    checksum = dest / "model.safetensors.sha256"
    if checksum.is_file():
        checksum.write_text(f"{file_sha256(weights)}  {WEIGHTS_NAME}\n")
    return dest


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[HubCase], tuple[Path, Path]]:
    """Per format, built on first use: the model folder and a newer version of it (other weights)."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(case: HubCase) -> tuple[Path, Path]:
        if case.name not in made:
            base = tmp_path_factory.mktemp(f"hub-{case.name}")
            first = case.build(base)
            made[case.name] = (first, _altered_copy(first, base / "v2"))
        return made[case.name]

    return get


def _cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.is_dir() else []


def _hub_cache() -> Path:
    import huggingface_hub.constants as c

    return Path(c.HF_HUB_CACHE)


# ------------------------------------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_branch_commit_cache_and_offline(case: HubCase, hub: HubServer, model_files, monkeypatch) -> None:
    folder, _ = model_files(case)
    repo = f"owner/{case.name}"
    commit = hub.push_folder(repo, folder)
    digest = file_sha256(folder / WEIGHTS_NAME)

    loaded = load_model(f"{case.prefix}{repo}@main", device="cpu")
    assert _format(loaded) == case.format_name
    assert (loaded.source.kind, loaded.source.ref, loaded.source.revision, loaded.source.commit) == ("hub", repo, "main", commit)
    assert loaded.sha256 == digest and len(hub.seen("GET", WEIGHTS_NAME)) == 1

    hub.clear()  # pinned to the commit, everything cached: not one request
    pinned = load_model(f"{case.prefix}{repo}@{commit}", device="cpu", sha256=digest)
    assert hub.requests == [] and pinned.source.folder == loaded.source.folder and pinned.sha256 == digest

    hub.clear()  # by branch: the Hub is asked where main is (metadata only); no file body comes again
    again = load_model(f"{case.prefix}{repo}", device="cpu")
    assert again.source.commit == commit and hub.seen("HEAD") and not hub.seen("GET")

    set_offline(monkeypatch)
    hub.clear()
    offline = load_model(f"{case.prefix}{repo}", device="cpu")
    assert hub.requests == [] and offline.source.commit == commit and offline.sha256 == digest


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_new_commit_on_the_branch_is_picked_up_and_the_old_commit_still_loads(case: HubCase, hub: HubServer, model_files, monkeypatch) -> None:
    first, second = model_files(case)
    repo = f"owner/{case.name}"
    old = hub.push_folder(repo, first)
    assert load_model(f"{case.prefix}{repo}", device="cpu").source.commit == old
    new = hub.push_folder(repo, second)
    newer = load_model(f"{case.prefix}{repo}@main", device="cpu")
    assert newer.source.commit == new and newer.sha256 == file_sha256(second / WEIGHTS_NAME) != file_sha256(first / WEIGHTS_NAME)
    hub.clear()
    kept = load_model(f"{case.prefix}{repo}@{old}", device="cpu")
    assert kept.sha256 == file_sha256(first / WEIGHTS_NAME) and hub.requests == []
    set_offline(monkeypatch)  # the cache's main follows the last download
    assert load_model(f"{case.prefix}{repo}", device="cpu").source.commit == new


def test_snapshot_download_reads_the_tree(hub: HubServer, model_dir: Path, monkeypatch) -> None:
    """The server's tree listing is what ``snapshot_download`` needs, and its paths-info answers ``get_paths_info``
    (checks of the test Hub itself)."""
    from huggingface_hub import snapshot_download

    commit = hub.push_folder("owner/snap", model_dir, **{"extra/notes.txt": b"x"})
    folder = Path(snapshot_download("owner/snap"))
    assert folder.name == commit and (folder / "extra" / "notes.txt").read_bytes() == b"x"
    assert file_sha256(folder / WEIGHTS_NAME) == file_sha256(model_dir / WEIGHTS_NAME)
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    info = {entry.path: entry for entry in HfApi().get_paths_info("owner/snap", [WEIGHTS_NAME, "extra", "absent"], revision=commit)}
    assert set(info) == {WEIGHTS_NAME, "extra"} and isinstance(info["extra"], RepoFolder)
    weights = info[WEIGHTS_NAME]
    assert isinstance(weights, RepoFile) and weights.lfs is not None and weights.lfs.sha256 == file_sha256(model_dir / WEIGHTS_NAME)
    set_offline(monkeypatch)
    hub.clear()
    assert Path(snapshot_download("owner/snap")) == folder and hub.requests == []


def test_fixture_patches_every_endpoint_constant(hub: HubServer) -> None:
    """Every huggingface_hub constant built from the endpoint at import points at the test Hub (a new one in a
    later version would make this fail rather than reach huggingface.co)."""
    import huggingface_hub.constants as c
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub import hf_hub_url

    assert "ENDPOINT" in endpoint_constants() and "HUGGINGFACE_CO_URL_TEMPLATE" in endpoint_constants()
    leftover = [n for n, v in vars(c).items() if n.isupper() and not n.startswith("_") and isinstance(v, str) and v.startswith("https://huggingface.co")]
    assert leftover == []
    assert hf_hub_url("a/b", "f").startswith(hub.url + "/") and hf_api.api.endpoint == hub.url


# ------------------------------------------------------------------------------------------------- caps, checksums
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_size_cap_is_decided_from_metadata_before_any_byte(case: HubCase, hub: HubServer, model_files, monkeypatch) -> None:
    folder, _ = model_files(case)
    repo = f"owner/{case.name}"
    hub.push_folder(repo, folder)
    size = (folder / WEIGHTS_NAME).stat().st_size
    monkeypatch.setenv(hubsize.ENV_MAX_WEIGHTS_MB, str((size - 1) / 1e6))  # one byte under the file
    with pytest.raises(WeightsError, match=rf"^{repo}: model.safetensors has .+, more than the .+ allowed; raise CXRDEMO_MAX_WEIGHTS_MB") as err:
        load_model(f"{case.prefix}{repo}", device="cpu")
    assert "\n" not in str(err.value)
    assert hub.seen("HEAD", WEIGHTS_NAME) and hub.seen("GET", WEIGHTS_NAME) == []
    assert all(p.stat().st_size != size for p in _cache_files(_hub_cache()))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weights_with_another_sha256_are_refused(case: HubCase, hub: HubServer, model_files) -> None:
    folder, _ = model_files(case)
    repo = f"owner/{case.name}"
    hub.push_folder(repo, folder)
    with pytest.raises(WeightsError, match=r"model.safetensors has sha256 [0-9a-f]{12}\.\.\., expected 000000000000\.\.\.; the file is corrupt or was changed") as err:
        load_model(f"{case.prefix}{repo}", device="cpu", sha256="0" * 64)
    assert "\n" not in str(err.value)
    # the repo's own checksum file, when it disagrees with the weights
    hub.push_folder(repo, folder, **{"model.safetensors.sha256": b"f" * 64 + b"  model.safetensors\n"})
    with pytest.raises(WeightsError, match=r"expected ffffffffffff\.\.\."):
        load_model(f"{case.prefix}{repo}", device="cpu")


# ------------------------------------------------------------------------------------------------- errors
@pytest.fixture()
def cx_repo(hub: HubServer, model_dir: Path) -> str:
    """cxrdemo's small model at ``owner/cx`` (main)."""
    hub.push_folder("owner/cx", model_dir)
    return "owner/cx"


def _one_line(source: str, **kwargs) -> str:
    with pytest.raises(WeightsError) as err:
        load_model(source, device="cpu", **kwargs)
    text = str(err.value)
    assert "\n" not in text and len(text) < 300, text
    return text


def test_missing_repo_revision_and_file(hub: HubServer, cx_repo: str) -> None:
    assert _one_line("owner/nothing") == "Hub repo owner/nothing was not found; check the id (a private repo also needs HF_TOKEN set to a token that can read it)"
    assert _one_line(f"{cx_repo}@nobranch") == "Hub repo owner/cx has no revision 'nobranch'; check the branch, tag or commit"
    assert _one_line(f"{cx_repo}@{'0' * 40}") == f"Hub repo owner/cx has no revision '{'0' * 40}'; check the branch, tag or commit"
    hub.push("owner/empty", {"README.md": b"# no model here\n"})
    assert _one_line("owner/empty") == "Hub repo owner/empty has no config.json and model.safetensors; it is not a cxrdemo model"


def test_private_repo_asks_for_hf_token_and_loads_with_it(hub: HubServer, cx_repo: str, monkeypatch) -> None:
    hub.repos[cx_repo].private = True
    hub.repos[cx_repo].tokens = {"hf_reader"}
    assert _one_line(cx_repo) == "Hub repo owner/cx is private or does not exist (HTTP 401); set HF_TOKEN to a token that can read it, or check the id"
    monkeypatch.setenv("HF_TOKEN", "hf_reader")
    assert load_model(cx_repo, device="cpu").source.kind == "hub"


@pytest.mark.parametrize("token", [None, "hf_not_granted"], ids=["no-token-401", "token-403"])
def test_gated_repo_says_accept_the_gate_and_set_hf_token(hub: HubServer, cx_repo: str, monkeypatch, token: str | None) -> None:
    hub.repos[cx_repo].gated = True
    hub.repos[cx_repo].tokens = {"hf_granted"}
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    assert _one_line(cx_repo) == "Hub repo owner/cx is gated: accept its conditions on its Hub page, then set HF_TOKEN to a token of that account"
    assert hub.seen("GET", WEIGHTS_NAME) == []
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    assert load_model(cx_repo, device="cpu").source.kind == "hub"


@pytest.mark.parametrize("status", [401, 403])
def test_other_refusals_name_hf_token(hub: HubServer, cx_repo: str, status: int) -> None:
    """A 401 or 403 without the Hub's error code (a proxy, a revoked token)."""
    hub.fail("config.json", status, method="HEAD")
    assert _one_line(cx_repo) == f"the Hub refused access to owner/cx (HTTP {status}); set HF_TOKEN to a token that can read it"


def _partial_or_weights(cache: Path, size: int) -> list[Path]:
    return [p for p in _cache_files(cache) if p.name.endswith(".incomplete") or p.stat().st_size == size]


@pytest.mark.parametrize(("method", "status"), [("HEAD", 500), ("GET", 503)])
def test_server_error_leaves_nothing_and_the_next_call_works(hub: HubServer, cx_repo: str, model_dir: Path, method: str, status: int) -> None:
    hub.fail(WEIGHTS_NAME, status, method=method)
    assert _one_line(cx_repo) == f"the Hub failed to serve owner/cx (HTTP {status}, a server error); try again later, or use a local model folder"
    size = (model_dir / WEIGHTS_NAME).stat().st_size
    assert _partial_or_weights(_hub_cache(), size) == []
    loaded = load_model(cx_repo, device="cpu")  # the failure is spent: the next call downloads
    assert loaded.sha256 == file_sha256(model_dir / WEIGHTS_NAME)


def test_hub_error_falls_back_to_the_cached_copy(hub: HubServer, cx_repo: str, model_dir: Path) -> None:
    """A model already downloaded still loads while the Hub answers 5xx (as huggingface_hub does on its own)."""
    first = load_model(cx_repo, device="cpu")
    failure = hub.fail("/resolve/", 502, times=100)
    hub.clear()
    again = load_model(cx_repo, device="cpu")
    assert (again.source.commit, again.sha256) == (first.source.commit, file_sha256(model_dir / WEIGHTS_NAME))
    assert failure.times < 100 and hub.seen("GET") == []


def test_connection_dropped_once_is_resumed_intact(hub: HubServer, cx_repo: str, model_dir: Path) -> None:
    hub.fail(WEIGHTS_NAME, method="GET", drop=True)
    loaded = load_model(cx_repo, device="cpu")
    gets = hub.seen("GET", WEIGHTS_NAME)
    # huggingface_hub tried again: from where its written chunks end (``Range: bytes=N-``), here from the start, as it
    # writes in 10 MB chunks and this file is smaller; either way the half body was not kept as the file
    assert len(gets) == 2 and gets[0].range == ""
    assert loaded.sha256 == file_sha256(model_dir / WEIGHTS_NAME)


def test_connection_dropped_every_time_leaves_nothing_and_the_next_call_works(hub: HubServer, cx_repo: str, model_dir: Path) -> None:
    failure = hub.fail(WEIGHTS_NAME, method="GET", drop=True, times=100)
    text = _one_line(cx_repo)
    assert text.startswith("could not fetch owner/cx from the Hugging Face Hub (") and "nothing partial was kept" in text
    assert 100 - failure.times == len(hub.seen("GET", WEIGHTS_NAME)) >= 2  # it was retried, then given up
    assert _partial_or_weights(_hub_cache(), (model_dir / WEIGHTS_NAME).stat().st_size) == []
    failure.times = 0
    assert load_model(cx_repo, device="cpu").sha256 == file_sha256(model_dir / WEIGHTS_NAME)


# ------------------------------------------------------------------------------------------------- public mode, CLI
def _synthetic_png(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8), mode="L").save(path)
    return path


def test_public_server_loads_a_hub_id_for_real_and_refuses_paths(hub: HubServer, cx_repo: str, tmp_path: Path, monkeypatch) -> None:
    from cxrdemo.webapp import actions, sources, upload
    from cxrdemo.webapp.models import ModelCache, model_key
    from cxrdemo.webapp.state import Settings

    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    monkeypatch.delenv(sources.ENV, raising=False)
    view = actions.analyse_case(ModelCache(capacity=1), upload.read_upload(_synthetic_png(tmp_path / "x.png")),
                                Settings(source=f"{cx_repo}@main", device="cpu"))
    assert view.json["model"]["source"] == "owner/cx@main" and hub.seen("GET", WEIGHTS_NAME)
    doc = json.dumps(view.json)
    assert str(tmp_path) not in doc and "/tmp" not in doc and "hf-home" not in doc
    snapshot = next(_hub_cache().rglob("snapshots/*"))  # the model's own files, by path: refused like any path
    for typed in (str(snapshot), f"timm:{snapshot}", str(snapshot / "config.json")):
        with pytest.raises(InputError) as err:
            model_key(typed, "cpu")
        assert str(err.value).startswith(sources.REFUSED)  # then the server's own list of models


@pytest.mark.parametrize("case", CASES[1:], ids=IDS[1:])
def test_public_server_loads_foreign_formats_from_the_hub(case: HubCase, hub: HubServer, model_files, monkeypatch) -> None:
    from cxrdemo.webapp.models import ModelCache, model_key

    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    folder, _ = model_files(case)
    hub.push_folder(f"owner/{case.name}", folder)
    key = model_key(f"{case.prefix}owner/{case.name}", "cpu")
    assert "hf://" in key.source  # the Hub-only form: never looked up as a server folder
    predictor = ModelCache(capacity=1).get(key)
    assert _format(predictor.loaded) == case.format_name and predictor.loaded.source.kind == "hub"


def test_cli_reaches_the_hub_through_hf_endpoint_alone(hub: HubServer, cx_repo: str, tmp_path: Path, model_dir: Path) -> None:
    """A fresh interpreter with only the environment a user sets (``HF_ENDPOINT``, ``HF_HOME``): huggingface_hub
    reads the endpoint at import, so nothing is patched there."""
    image = _synthetic_png(tmp_path / "x.png")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "cxrdemo", "predict", str(image), "--weights", f"{cx_repo}@main", "--cam", "none",
                           "--device", "cpu", "--json", str(out)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())[0]
    assert result["model"]["source"] == "owner/cx" and result["model"]["revision"] == hub.repos[cx_repo].branches["main"]
    assert len(hub.seen("GET", WEIGHTS_NAME)) == 1
    assert (tmp_path / "home" / "hub" / "models--owner--cx").is_dir()
