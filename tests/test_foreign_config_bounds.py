"""Issue 27, E3 and E4: timm and transformers folders are bounded and matched against their weights before the model
is built, and weights that do not fill the model exactly are an error (never random weights).

Each hostile config sits beside the small, valid weights of a real tiny model (built at test time), as an attacker
would ship it. "Refused without allocating" is asserted on behaviour: the real builder (``timm.create_model`` on a
real device, transformers ``from_pretrained``) is never called; no timing assertion.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from model_formats import hf_folder, timm_folder

from cxrdemo.errors import ConfigError
from cxrdemo.models.weights import load_model


def _one_line(message: str) -> bool:
    return "\n" not in message and len(message) < 400


def _edit_config(folder: Path, edit) -> Path:
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))
    return folder


@pytest.fixture
def timm_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``timm.create_model`` call, by the device it builds on (``meta`` costs no memory)."""
    import timm

    real = timm.create_model
    devices: list[str] = []

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)  # the default device: "meta" inside ``with torch.device("meta")``
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    return devices


@pytest.fixture
def hf_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every real transformers build (``from_pretrained``) of the adapter."""
    from transformers import AutoModelForImageClassification

    calls: list[str] = []
    real = AutoModelForImageClassification.from_pretrained

    def spy(*args, **kwargs):
        calls.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForImageClassification, "from_pretrained", spy)
    return calls


def _set_timm(key: str, value, where: str = "model_args"):
    def edit(cfg: dict) -> None:
        cfg.setdefault(where, {})[key] = value
        if key == "num_classes":
            cfg["num_classes"] = value
            cfg.pop("label_names", None)

    return edit


@pytest.mark.parametrize(
    ("arch", "edit", "words"),
    [
        ("resnet10t", _set_timm("num_classes", 3_000_000), "'num_classes' = 3000000 is over 1000 classes"),
        ("vit_tiny_patch16_224", _set_timm("img_size", 8192), "'img_size' = 8192 is over 2048 pixels per side"),
        ("vit_tiny_patch16_224", _set_timm("depth", 10**6), "'depth' = 1000000 is over 128 layers"),
        ("vit_tiny_patch16_224", _set_timm("embed_dim", 10**9), "'embed_dim' = 1000000000 is over 16384 units"),
        ("vit_tiny_patch16_224", _set_timm("mlp_ratio", 1e6), "'mlp_ratio' = 1000000.0 is over 16 times"),
        ("resnet10t", _set_timm("input_size", [3, 9000, 9000], "pretrained_cfg"), "'input_size' = \\[3, 9000, 9000\\] is over 2048"),
        ("resnet10t", _set_timm("layers", [10**5] * 4), "'layers' = \\[100000, .*over 128 layers"),
        ("resnet10t", lambda cfg: cfg.update(label_names=[f"c{i}" for i in range(5000)]), "'label_names' has 5,000 labels"),
        ("resnet10t", _set_timm("seed", 10**400), "'seed' = about 10\\^400 is over 1e\\+07"),
    ],
)
def test_timm_configs_out_of_bounds_are_refused_before_any_build(tmp_path, timm_builds, arch, edit, words) -> None:
    kwargs = {"img_size": 64} if arch.startswith("vit") else {}
    folder = _edit_config(timm_folder(tmp_path, arch, ["A", "B"], **kwargs), edit)
    timm_builds.clear()
    with pytest.raises(ConfigError, match=words) as err:
        load_model(f"timm:{folder}", device="cpu")
    assert _one_line(str(err.value)) and str(err.value).startswith(f"config.json in {folder}: ")
    assert timm_builds == []


def test_timm_config_within_bounds_but_larger_than_its_weights_is_counted_on_meta(tmp_path, timm_builds) -> None:
    """1000 classes (in bounds) on resnet10t's 2-class weights: counted on the meta device (512 * 1000 + 1000 head
    values more than the file holds) and refused; nothing is built on a real device."""
    folder = _edit_config(timm_folder(tmp_path, "resnet10t", ["A", "B"]), _set_timm("num_classes", 1000))
    timm_builds.clear()
    with pytest.raises(ConfigError, match=r"has [\d,]+ parameters but model.safetensors holds only [\d,]+ values") as err:
        load_model(str(folder), device="cpu")
    assert _one_line(str(err.value)) and timm_builds == ["meta"]


def test_vit_image_size_in_bounds_but_not_the_weights_is_refused_on_meta(tmp_path, timm_builds) -> None:
    """img_size 2048 (in bounds) on a 64-px ViT's weights: a 16,384-token position table the file does not hold."""
    folder = _edit_config(timm_folder(tmp_path, "vit_tiny_patch16_224", ["A", "B"], img_size=64), _set_timm("img_size", 2048))
    timm_builds.clear()
    with pytest.raises(ConfigError, match="parameters but model.safetensors holds only"):
        load_model(str(folder), device="cpu")
    assert timm_builds == ["meta"]


def _swap_tensor(folder: Path, drop: bool = True, extra: bool = True) -> tuple[str, int]:
    """Drop one tensor of ``folder``'s weights and/or add an unexpected one of at least its size: the header's
    element count still covers the model, so only the name check can catch it. Returns the dropped name, count."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    name = sorted(state)[1]
    size = state[name].numel()
    if drop:
        del state[name]
    if extra:
        state["stray.weight"] = torch.zeros(size + 1)
    save_file(state, str(path))
    return name, size


@pytest.mark.parametrize(("drop", "extra", "words"), [(True, True, "1 missing, 1 unexpected"), (False, True, "0 missing, 1 unexpected")])
def test_timm_weights_that_do_not_match_are_refused_before_the_build(tmp_path, timm_builds, drop, extra, words) -> None:
    folder = timm_folder(tmp_path, "resnet10t", ["A", "B"])
    name, _ = _swap_tensor(folder, drop, extra)
    timm_builds.clear()
    with pytest.raises(ConfigError, match=words) as err:
        load_model(str(folder), device="cpu")
    assert "stray.weight" in str(err.value) and (not drop or name in str(err.value)) and _one_line(str(err.value))
    assert timm_builds == ["meta"]


def _set_hf(**values):
    return lambda cfg: cfg.update(values)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_set_hf(num_hidden_layers=10**6), "'num_hidden_layers' = 1000000 is over 128 layers"),
        (_set_hf(hidden_size=10**6), "'hidden_size' = 1000000 is over 16384 units"),
        (_set_hf(num_attention_heads=10**5), "'num_attention_heads' = 100000 is over 256 attention heads"),
        (_set_hf(image_size=8192), "'image_size' = 8192 is over 2048 pixels"),
        (_set_hf(id2label={str(i): f"c{i}" for i in range(3000)}), "'id2label' has 3,000 labels"),
    ],
)
def test_transformers_configs_out_of_bounds_are_refused_before_any_build(tmp_path, hf_loads, edit, words) -> None:
    folder = _edit_config(hf_folder(tmp_path, "vit", ["A", "B"], multi=True), edit)
    with pytest.raises(ConfigError, match=words) as err:
        load_model(f"hf:{folder}", device="cpu")
    assert _one_line(str(err.value)) and hf_loads == []


def test_transformers_image_processor_is_bounded(tmp_path, hf_loads) -> None:
    folder = hf_folder(tmp_path, "vit", ["A", "B"], multi=True)
    proc = json.loads((folder / "preprocessor_config.json").read_text())
    proc["size"] = {"height": 100_000, "width": 100_000}
    (folder / "preprocessor_config.json").write_text(json.dumps(proc))
    with pytest.raises(ConfigError, match="preprocessor_config.json in .*'height' = 100000 is over 2048 pixels"):
        load_model(str(folder), device="cpu")
    assert hf_loads == []


def test_transformers_config_larger_than_its_weights_is_counted_on_meta(tmp_path, hf_loads) -> None:
    """64 layers (in bounds) on a 2-layer ViT's weights: counted on the meta device, refused before from_pretrained."""
    folder = _edit_config(hf_folder(tmp_path, "vit", ["A", "B"], multi=True), _set_hf(num_hidden_layers=64))
    with pytest.raises(ConfigError, match=r"\(vit\) has [\d,]+ parameters but model.safetensors holds only [\d,]+ values") as err:
        load_model(str(folder), device="cpu")
    assert _one_line(str(err.value)) and hf_loads == []


@pytest.mark.parametrize("kind", ["vit", "convnext"])
@pytest.mark.parametrize(("drop", "extra", "words"), [(True, True, "1 missing, 1 unexpected"), (False, True, "0 missing, 1 unexpected"),
                                                      (True, False, "parameters but model.safetensors holds only")])
def test_transformers_weights_that_do_not_match_are_an_error_not_random_weights(tmp_path, kind, drop, extra, words) -> None:
    """transformers itself only logs "newly initialized" and runs with random weights (the issue: exit 0)."""
    folder = hf_folder(tmp_path, kind, ["A", "B"], multi=True)
    name, _ = _swap_tensor(folder, drop, extra)
    with pytest.raises(ConfigError, match=words) as err:
        load_model(str(folder), device="cpu")
    message = str(err.value)
    assert _one_line(message)
    if extra:
        assert "stray.weight" in message and (not drop or name in message)


def test_cli_refuses_a_hostile_transformers_folder_without_importing_torch(tmp_path) -> None:
    """The CLI's early check detects the format from the files and bounds a transformers config torch-free."""
    folder = _edit_config(hf_folder(tmp_path, "vit", ["A", "B"], multi=True), _set_hf(num_hidden_layers=10**6))
    image = tmp_path / "any.png"
    image.write_bytes(b"not read: the model is refused first")
    code = (
        "import sys\nfrom cxrdemo.cli import main\n"
        f"rc = main(['predict', '--weights', {str(folder)!r}, {str(image)!r}])\n"
        "print('TORCH', 'torch' in sys.modules)\nsys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "'num_hidden_layers' = 1000000 is over 128 layers" in lines[0], done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "TORCH False"
