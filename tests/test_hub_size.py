"""Hub model sources are bounded: file sizes are checked from the Hub's metadata before a download (a monkeypatched
metadata function, no network), and a cached file's size before it is read (a Hub cache the test builds itself,
``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cxrdemo import hubsize
from cxrdemo.models import hubfetch, weights
from cxrdemo.errors import WeightsError
from cxrdemo.models.weights import CONFIG_NAME, WEIGHTS_NAME, file_sha256, load_model

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
REPO_ID = "someone/model"


def _hub_cache(cache: Path, model_dir: Path, replace: dict[str, bytes] | None = None) -> None:
    """``models--someone--model/{blobs,refs/main,snapshots/<commit>}`` as huggingface_hub lays it out, holding the
    files of ``model_dir`` (or the bytes of ``replace``)."""
    root = cache / ("models--" + REPO_ID.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        blob = root / "blobs" / f"blob-{name}"
        if replace and name in replace:
            blob.write_bytes(replace[name])
        else:
            shutil.copyfile(model_dir / name, blob)
        (snap / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """An empty Hub cache folder, used offline (the test fills it)."""
    import huggingface_hub.constants as c

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return cache


def test_cached_model_within_the_caps_loads(offline, model_dir):
    _hub_cache(offline, model_dir)
    loaded = load_model(REPO_ID, device="cpu")
    assert loaded.source.kind == "hub" and loaded.sha256 == file_sha256(model_dir / WEIGHTS_NAME)


def test_cached_weights_over_the_cap_are_refused_before_they_are_read(offline, model_dir, monkeypatch):
    _hub_cache(offline, model_dir)
    size = (model_dir / WEIGHTS_NAME).stat().st_size
    monkeypatch.setenv(hubsize.ENV_MAX_WEIGHTS_MB, str((size - 1) / 1e6))  # one byte under the file
    monkeypatch.setattr(weights, "_load_state", lambda *a: pytest.fail("the weights were read"))
    with pytest.raises(WeightsError, match=rf"someone/model: model.safetensors has {size:,} bytes, more than the {size - 1:,} bytes allowed; raise CXRDEMO_MAX_WEIGHTS_MB") as err:
        load_model(REPO_ID, device="cpu")
    assert "\n" not in str(err.value)
    monkeypatch.setenv(hubsize.ENV_MAX_WEIGHTS_MB, str(size / 1e6))  # a cap of exactly the file's size lets it in
    assert hubsize.check_local_size(model_dir / WEIGHTS_NAME, REPO_ID) == size


def test_cached_config_over_the_cap_is_refused(offline, model_dir):
    _hub_cache(offline, model_dir, {CONFIG_NAME: b" " * (hubsize.MAX_CONFIG_BYTES + 1)})
    with pytest.raises(WeightsError, match=r"config.json has 1,048,577 bytes, more than the 1,048,576 bytes allowed; this is not a cxrdemo model file"):
        load_model(REPO_ID, device="cpu")


@pytest.mark.parametrize("value", ["lots", "-5", "0", "nan", "inf"])
def test_bad_cap_setting_is_one_line(value, monkeypatch):
    monkeypatch.setenv(hubsize.ENV_MAX_WEIGHTS_MB, value)
    with pytest.raises(WeightsError, match="is not a size in megabytes"):
        hubsize.max_weights_bytes()


def test_default_cap_is_500_mb():
    assert hubsize.max_weights_bytes({}) == 500_000_000


# ------------------------------------------------------------------------------------ online: Hub metadata
@dataclass
class FakeMetadata:
    size: int | None
    commit_hash: str | None = COMMIT


@pytest.fixture()
def online(tmp_path, monkeypatch):
    """The Hub "reachable", its metadata and downloads replaced: ``sizes`` says what the metadata reports, and
    ``downloaded`` records what was fetched (config.json comes from ``files``; anything else must not download)."""
    import huggingface_hub
    import huggingface_hub.constants as c

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hubfetch, "hub_reachable", lambda timeout=3.0: True)
    state = {"sizes": {}, "downloaded": [], "files": {}}

    def metadata(url, **kwargs):
        name = url.rsplit("/", 1)[-1]
        return FakeMetadata(state["sizes"].get(name))

    def download(repo_id, filename, **kwargs):
        state["downloaded"].append(filename)
        if filename not in state["files"]:
            pytest.fail(f"{filename} was downloaded")
        return str(state["files"][filename])

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return state


def test_weights_over_the_cap_are_refused_from_metadata_without_a_download(online, model_dir):
    online["sizes"] = {CONFIG_NAME: 2_000, WEIGHTS_NAME: 5 * 10**9}
    online["files"] = {CONFIG_NAME: model_dir / CONFIG_NAME}
    with pytest.raises(WeightsError, match=r"someone/model@v1: model.safetensors has 5000 MB, more than the 500 MB allowed"):
        load_model(f"{REPO_ID}@v1", device="cpu")
    assert online["downloaded"] == [CONFIG_NAME]


def test_config_over_the_cap_is_refused_from_metadata_without_a_download(online):
    online["sizes"] = {CONFIG_NAME: 3 * 10**9, WEIGHTS_NAME: 1_000}
    with pytest.raises(WeightsError, match="config.json has 3000 MB"):
        load_model(REPO_ID, device="cpu")
    assert online["downloaded"] == []


def test_unknown_size_is_not_downloaded(online):
    online["sizes"] = {CONFIG_NAME: None}
    with pytest.raises(WeightsError, match="the Hub did not say how large config.json is"):
        load_model(f"hf://{REPO_ID}", device="cpu")
    assert online["downloaded"] == []


def test_file_changed_after_the_metadata_is_refused_before_it_is_read(online, tmp_path, model_dir, monkeypatch):
    """The metadata said small, the downloaded copy is large (the repo changed between the two requests)."""
    big = tmp_path / "dl" / WEIGHTS_NAME
    big.parent.mkdir()
    big.write_bytes(b"\0" * 2_000)
    online["sizes"] = {CONFIG_NAME: 2_000, WEIGHTS_NAME: 1_000}
    online["files"] = {CONFIG_NAME: model_dir / CONFIG_NAME, WEIGHTS_NAME: big}
    monkeypatch.setenv(hubsize.ENV_MAX_WEIGHTS_MB, "0.0015")  # 1,500 bytes: the metadata passes, the file does not
    with pytest.raises(WeightsError, match="model.safetensors has 2,000 bytes, more than the 1,500 bytes allowed"):
        load_model(REPO_ID, device="cpu")
