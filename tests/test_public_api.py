"""Issue 19 through the served app in public mode: every endpoint that takes a model source gives ONE refusal for
anything but a named model or a Hub id, and the JSON names the model, never a server folder (gradio_client, an app
served in-process on a free port)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app_server  # tests/app_server.py
from cxrdemo.webapp.sources import ENV, REFUSED

BOXED_IMAGE = "00000468_017.png"


@pytest.fixture(scope="module")
def served(model_dir: Path, images_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, f"small={model_dir}")
        patch.setenv("CXRDEMO_WEIGHTS", str(model_dir))
        patch.setenv("HF_HUB_OFFLINE", "1")
        # start_app warms the model up by its folder (a local user's way); the gate reads public mode at every call
        running = app_server.start_app(model_dir, images_dir, tmp_path_factory.mktemp("exports"))
        patch.setenv("CXRDEMO_PUBLIC", "1")
        yield running
        running.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served.url, verbose=False)


def _predict(client, image: Path, source: str):
    from gradio_client import handle_file

    return client.predict(handle_file(str(image)), source, "cpu", "gradcam", "top-1", 127, "", api_name="/predict")


def test_every_endpoint_refuses_server_paths_with_one_message(client, served, model_dir, images_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    image = images_dir / BOXED_IMAGE
    probes = [str(model_dir), str(tmp_path), str(tmp_path / "missing"), str(model_dir / "config.json"), "~", "/etc"]
    messages = set()
    for source in probes:
        calls = [
            lambda: _predict(client, image, source),
            lambda: client.predict(handle_file(str(image)), "", source, "cpu", "gradcam", "top-1", 127, "", api_name="/compare_models"),
            lambda: client.predict(handle_file(str(image)), source, "cpu", "top-1", 127, "", api_name="/compare_methods"),
            lambda: client.predict("examples", source, "cpu", "gradcam", 127, 1, False, 8, False, 4, api_name="/audit"),
        ]
        for call in calls:
            with pytest.raises(AppError) as info:
                call()
            messages.add(str(info.value).strip())
    assert len(messages) == 1 and REFUSED in messages.pop()


def test_named_model_and_default_are_served_by_name(client, served, model_dir, images_dir):
    for source, name in (("small", "small"), ("", "default"), ("default", "default")):
        doc, *_ = _predict(client, images_dir / BOXED_IMAGE, source)
        assert doc["model"]["source"] == name
        assert str(model_dir) not in json.dumps(doc)


def test_hub_id_is_tried_on_the_hub_only(client, served, images_dir):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="owner/name is not in the local Hub cache") as info:
        _predict(client, images_dir / BOXED_IMAGE, "owner/name")
    assert "/" + "root" not in str(info.value) and "\n" not in str(info.value).strip()
