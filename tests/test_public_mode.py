"""Issue 19, finding 2: in public mode a model source is a named model or a Hub id, and anything else gets ONE message
that says nothing about the server's files; outputs name models, never server folders. Outside public mode folders
keep working. The app's logic is called without Gradio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, WEBAPP_IMAGE
from hub_server import hub  # noqa: F401 - the test Hub fixture
from cxrdemo.errors import InputError, WeightsError
from cxrdemo.webapp import actions, side, sources, upload
from cxrdemo.webapp.models import ModelCache, model_key
from cxrdemo.webapp.state import Settings


@pytest.fixture()
def public(monkeypatch):
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    monkeypatch.delenv(sources.ENV, raising=False)


@pytest.fixture()
def hostile_sources(tmp_path, model_dir) -> list[str]:
    """What a visitor might type to read or probe the server's folders."""
    existing = tmp_path / "exists"
    existing.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    return [
        str(existing),  # an existing folder without a model
        str(tmp_path / "missing"),  # a folder that does not exist
        str(a_file),  # a file
        str(model_dir / "config.json"),  # a model's file
        "~",  # the home folder
        "~/.cache",
        "/etc",
        str(model_dir),  # a valid model folder, by absolute path
        "./weights",  # the repository's own model, relatively
        "weights",
        "../wt-safe-a/weights",
        "hf://../etc",
        "x" * 100_000,
        "owner/name\n/etc",
    ]


class NeverLoad(ModelCache):
    """A model cache whose loads fail the test: a refused source must be refused before any loading."""

    def __init__(self) -> None:
        super().__init__(capacity=1, loader=lambda source, device: pytest.fail(f"{source} was loaded"))


def test_every_other_source_gets_the_same_message(public, hostile_sources):
    messages = set()
    for text in hostile_sources:
        with pytest.raises(InputError) as err:
            model_key(text, "cpu")
        messages.add(str(err.value))
    assert messages == {sources.refusal(sources.named_models())}
    assert messages == {"this server loads only its own models and Hugging Face Hub ids: pick one of its models (default), "
                        "or type a Hub id owner/name or owner/name@revision"}  # fmt: skip


def test_the_gate_itself_is_the_one_function(hostile_sources, model_dir):
    named = {"default": "", "small": str(model_dir)}
    for text in hostile_sources:
        with pytest.raises(InputError) as err:
            sources.check_source(text, True, named)
        assert str(err.value) == sources.refusal(named) and "pick one of its models (default, small)" in str(err.value)
        # outside public mode the same text goes on to resolution unchanged (folders keep working)
        assert sources.check_source(text, False, named) == text.strip()
    assert sources.check_source("small", True, named) == str(model_dir)
    assert sources.check_source("", True, named) == "" and sources.check_source(" default ", True, named) == ""


@pytest.mark.parametrize("text", ["owner/name", "owner/name@v1.0", "cxrdemo/webapp", "weights/x", "hf://owner/name@main"])
def test_hub_ids_pass_as_hub_ids_only(public, text):
    """A Hub-shaped text goes to the Hub and never to a folder, even when a relative folder of that name exists
    (``cxrdemo/webapp`` does, in the repository)."""
    key = model_key(text, "cpu")
    bare = text.removeprefix("hf://")
    assert key.source == f"hf://{bare}" and key.label == bare


def test_a_hub_id_never_reads_a_folder_of_the_same_name(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    from cxrdemo.models.weights import resolve_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(REPO)
    assert Path("cxrdemo/webapp").is_dir()
    with pytest.raises(WeightsError, match="cxrdemo/webapp is not in the local Hub cache"):
        resolve_source("hf://cxrdemo/webapp")


def test_public_hub_id_loads_from_the_hub_not_the_folder_of_that_name(public, hub, model_dir, monkeypatch):
    """For real, against the test Hub (tests/hub_server.py): ``cxrdemo/webapp`` is a folder of the repository and a
    Hub id; a public server fetches the Hub's model over HTTP and never looks at the folder."""
    commit = hub.push_folder("cxrdemo/webapp", model_dir)
    monkeypatch.chdir(REPO)
    key = model_key("cxrdemo/webapp", "cpu")
    loaded = ModelCache(capacity=1).get(key).loaded
    assert (loaded.source.kind, loaded.source.ref, loaded.source.commit) == ("hub", "cxrdemo/webapp", commit)
    assert hub.seen("GET", "model.safetensors") and loaded.source.folder.name == commit


def test_webapp_functions_refuse_before_loading(public, hostile_sources, images_dir, tmp_path):
    radiograph = upload.read_upload(images_dir / WEBAPP_IMAGE)
    cache = NeverLoad()
    for text in hostile_sources[:4] + ["/etc", hostile_sources[7]]:
        settings = Settings(source=text, device="cpu")
        for call in (
            lambda: actions.analyse_case(cache, radiograph, settings),
            lambda: side.api_methods(cache, radiograph, settings),
            lambda: side.api_models(cache, radiograph, Settings(device="cpu"), text),
        ):
            with pytest.raises(InputError) as err:
                call()
            assert str(err.value) == sources.refusal(sources.named_models())


def test_audit_options_refuse_the_same_way(public, hostile_sources, tmp_path, monkeypatch):
    from cxrdemo.webapp.audit_runs import AuditRequest, AuditService
    from cxrdemo.webapp.datasets import ENV as DATASETS
    from cxrdemo.webapp.resources import make_resources

    images = tmp_path / "imgs"
    images.mkdir()
    (tmp_path / "labels.csv").write_text("Image Index,Finding Labels\n")
    monkeypatch.setenv(DATASETS, f"mine={images}:{tmp_path / 'labels.csv'}")
    resources = make_resources(REPO, cache=NeverLoad(), examples_folder=tmp_path / "none", export_root=tmp_path / "out")
    service = AuditService(resources)
    for text in hostile_sources:
        with pytest.raises(InputError) as err:
            service.options(AuditRequest(dataset="mine", source=text, device="cpu"), tmp_path / "run")
        assert str(err.value) == sources.refusal(sources.named_models())


def test_named_model_is_shown_by_its_name(public, monkeypatch, model_dir, images_dir):
    monkeypatch.setenv(sources.ENV, f"small={model_dir}")
    cache = ModelCache(capacity=1)
    view = actions.analyse_case(cache, upload.read_upload(images_dir / WEBAPP_IMAGE), Settings(source="small", device="cpu"))
    doc = json.dumps(view.json)
    assert view.json["model"]["source"] == "small"
    assert str(model_dir) not in doc and str(model_dir.parent) not in doc and "/tmp" not in doc
    assert str(model_dir) not in view.summary
    # the same model by its folder: refused, even though it is loaded and named
    with pytest.raises(InputError, match="^this server loads only"):
        model_key(str(model_dir), "cpu")


def test_outside_public_mode_folders_work_as_before(monkeypatch, model_dir):
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    monkeypatch.setenv("SPACE_ID", "someone/space")  # CXRDEMO_PUBLIC=0 wins
    key = model_key(str(model_dir), "cpu")
    assert key.source == str(model_dir.resolve()) and key.label == ""


def test_default_is_always_offered(public, monkeypatch, model_dir):
    monkeypatch.setenv("CXRDEMO_WEIGHTS", str(model_dir))
    for text in ("", "default", None):
        key = model_key(text, "cpu")
        assert key.source == str(model_dir.resolve()) and key.label == "default"
    assert sources.source_choices({}) == ["default"]


def test_models_variable_parsing(tmp_path, model_dir):
    text = f" small={model_dir} ; hub=owner/name@v2;rel=weights ; bad name=x; default=owner/x; missing=/no/such/dir; noeq"
    named, notes = sources.parse_models(text, REPO)
    assert named == {"small": str(model_dir.resolve()), "hub": "hf://owner/name@v2", "rel": str((REPO / "weights").resolve())}
    assert len(notes) == 4 and all("\n" not in n and n.endswith("(left out)") for n in notes)
    assert list(sources.named_models({sources.ENV: text}, REPO)) == ["default", "small", "hub", "rel"]


def test_error_lines_hide_server_paths_in_public_mode(monkeypatch):
    from cxrdemo.webapp.view import describe_error

    exc = WeightsError("no model.safetensors in /srv/private/models/m1; a model folder needs config.json and model.safetensors")
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    assert "/srv/private/models/m1" in describe_error(exc)
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    line = describe_error(exc)
    assert "/srv" not in line and "no model.safetensors in m1;" in line


def test_public_describe_model_shows_no_folder(monkeypatch, model_dir):
    from cxrdemo.models.weights import describe_model, load_model

    loaded = load_model(str(model_dir), device="cpu")
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    assert describe_model(loaded)["source"] == model_dir.name
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    assert describe_model(loaded)["source"] == str(model_dir.resolve())


def test_audit_report_options_carry_no_server_path(monkeypatch, tmp_path):
    from cxrdemo.audit.engine import _shown

    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    assert _shown(tmp_path / "imgs") == "imgs" and _shown(str(tmp_path / "m")) == "m"
    assert _shown("hf://owner/name") == "hf://owner/name" and _shown(8) == 8
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    assert _shown(str(tmp_path / "m")) == str(tmp_path / "m")


def test_model_fields_offer_the_named_models_in_public_mode(monkeypatch, model_dir):
    import gradio as gr

    from cxrdemo.webapp.ui_common import source_field

    monkeypatch.setenv(sources.ENV, f"small={model_dir}")
    monkeypatch.setenv("CXRDEMO_PUBLIC", "1")
    with gr.Blocks():
        field = source_field("", "Model source", "source", "placeholder")
    assert isinstance(field, gr.Dropdown) and field.allow_custom_value and field.value == "default"
    assert [value for _, value in field.choices] == ["default", "small"]
    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    with gr.Blocks():
        assert isinstance(source_field("", "Model source", "source", "placeholder"), gr.Textbox)


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("timm:owner/name", "timm:hf://owner/name"),
        ("hf-hub:owner/name@v1", "timm:hf://owner/name@v1"),
        ("hf:owner/name", "hf:hf://owner/name"),
        ("xrv:densenet121-res224-all", "xrv:densenet121-res224-all"),
        ("densenet121-res224-all", "xrv:densenet121-res224-all"),
    ],
)
def test_public_mode_accepts_format_prefixes_before_hub_ids(typed: str, expected: str):
    """A format prefix (cxrdemo.models) before a Hub id stays a Hub id (never a server folder); torchxrayvision's own
    weight names are names, not paths."""
    from cxrdemo.models.loader import parse_source
    from cxrdemo.webapp.sources import check_source

    source = check_source(typed, True, {})
    assert source == expected
    spec = parse_source(source)
    assert spec.where.startswith("hf://") or spec.format == "torchxrayvision"


@pytest.mark.parametrize("typed", ["timm:/etc", "hf:../x", "xrv:/etc/passwd", "cxrdemo:weights", "timm:~", "xrv:densenet121-res224-all/../x"])
def test_public_mode_refuses_prefixed_paths_with_the_one_message(typed: str):
    from cxrdemo.webapp.sources import check_source, refusal

    with pytest.raises(InputError) as info:
        check_source(typed, True, {})
    assert str(info.value) == refusal({})


def test_hub_only_form_is_not_read_as_the_transformers_prefix():
    """``hf://owner/name`` is cxrdemo's Hub-only form; ``hf:`` alone is the transformers prefix."""
    from cxrdemo.models.loader import parse_source

    assert parse_source("hf://owner/name").format is None
    assert parse_source("hf:owner/name").format == "transformers"


# ------------------------------------------------------------------------------- issue 27: C1, C8, C10
def _absolute_paths(text: str) -> set[str]:
    """Every absolute POSIX path in ``text`` (not the path part of a URL: ``//host/...`` or ``https://``)."""
    import re

    return set(re.findall(r"(?<![\w.:/%-])/(?:[\w.@+-]+/)+[\w.@+-]*", text))


def _server_paths(config: str) -> set[str]:
    """The absolute paths of ``config`` but Gradio's own: its cache of served files (hashed folders under its temp
    folder, as for any Gradio app) and its URL routes (``/gradio_api/...``)."""
    from gradio.utils import get_upload_folder

    cache = get_upload_folder()
    return {p for p in _absolute_paths(config) if not p.startswith((cache + "/", "/gradio_api/"))}


def _page(monkeypatch, tmp_path, model_dir, examples=None, public=True):
    """The app's Blocks config (as the browser gets it on first load) and the resources it was built on."""
    from app_server import load_app_module
    from cxrdemo.webapp.datasets import ENV as DATASETS
    from cxrdemo.webapp.resources import make_resources

    monkeypatch.delenv("CXRDEMO_PUBLIC", raising=False)
    if public:
        monkeypatch.setenv("SPACE_ID", "someone/cxrdemo")  # as on a Space: public mode from SPACE_ID alone
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv(sources.ENV, f"small={model_dir}")
    # a data-set entry whose folder is missing: its note names a server path
    monkeypatch.setenv(DATASETS, f"gone={tmp_path / 'srv' / 'private' / 'images'}:{tmp_path / 'labels.csv'}")
    app = load_app_module()
    resources = make_resources(REPO, examples_folder=examples, export_root=tmp_path / "exports")
    resources.default = Settings(source=str(model_dir), device="cpu")
    demo = app.build_app(resources)
    return json.dumps(demo.get_config_file(), default=str), resources


def test_public_page_shows_no_server_path_on_first_load(monkeypatch, tmp_path, model_dir):
    """C1: the page's config (every component's initial value, label, info, choices) holds no absolute path but
    Gradio's own cache of the example thumbnails; the audit tab's data-set line and notes (drawn when the tab
    opens) name no folder."""
    from cxrdemo.webapp.audit_runs import AuditService

    config, resources = _page(monkeypatch, tmp_path, model_dir)
    assert _server_paths(config) == set()
    assert config.count("image.webp") >= 11  # the example thumbnails are there (from Gradio's cache)
    datasets = AuditService(resources).datasets
    lines = [d.describe() for d in datasets.all()] + datasets.notes
    assert lines[0].startswith("**examples**: 11 images, labels `labels.csv`")
    assert any("gone" in line for line in lines)  # the note is there, without its path
    for line in lines:
        assert not _absolute_paths(line) and str(tmp_path) not in line and str(REPO) not in line, line


def test_private_page_keeps_folders_for_the_local_user(monkeypatch, tmp_path, model_dir):
    from cxrdemo.webapp.audit_runs import AuditService

    _, resources = _page(monkeypatch, tmp_path, model_dir, public=False)
    datasets = AuditService(resources).datasets
    assert str(resources.examples_folder) in datasets.all()[0].describe()
    assert any(str(tmp_path) in note for note in datasets.notes)


def test_public_page_without_examples_names_no_folder(monkeypatch, tmp_path, model_dir):
    empty = tmp_path / "no-examples"
    empty.mkdir()
    config, _ = _page(monkeypatch, tmp_path, model_dir, examples=empty)
    assert "No example images on this server" in config and str(empty) not in config
    assert _server_paths(config) == set()


def _component(config: str, elem_id: str) -> dict:
    return next(c["props"] for c in json.loads(config)["components"] if c.get("props", {}).get("elem_id") == elem_id)


@pytest.mark.parametrize("road_cap, expected", [(None, (8, 32)), ("5", (5, 5)), ("100", (8, 100))])
def test_public_road_field_shows_the_cap(monkeypatch, tmp_path, model_dir, road_cap, expected):
    """C8: the ROAD field's default finishes in about a minute per method (8 images at ~8 s), never above the
    server's cap, and the cap is the field's maximum."""
    if road_cap is None:
        monkeypatch.delenv("CXRDEMO_AUDIT_MAX_ROAD_IMAGES", raising=False)
    else:
        monkeypatch.setenv("CXRDEMO_AUDIT_MAX_ROAD_IMAGES", road_cap)
    config, _ = _page(monkeypatch, tmp_path, model_dir)
    road = _component(config, "audit-road")
    assert (road["value"], road["maximum"]) == expected
    assert road["info"] == f"at most {expected[1]} on this server"
    images = _component(config, "audit-max")
    assert images["maximum"] == 60 and images["value"] == 0


def test_private_road_field_default_and_no_maximum(monkeypatch, tmp_path, model_dir):
    from cxrdemo.webapp.audit_limits import DEFAULT_ROAD_IMAGES
    from cxrdemo.webapp.audit_runs import AuditRequest

    config, _ = _page(monkeypatch, tmp_path, model_dir, public=False)
    road = _component(config, "audit-road")
    assert road["value"] == DEFAULT_ROAD_IMAGES == AuditRequest().faithfulness_images == 8 and road.get("maximum") is None


@pytest.mark.parametrize(
    "source, shown",
    [("/srv/models/nc/timm_r18", "timm_r18"), ("/srv/models/timm_r18/", "timm_r18"), ("~/m1", "m1"), ("C:\\models\\m2", "m2"),
     ("owner/name@v1", "owner/name@v1"), ("small", "small"), ("timm:hf://o/n", "timm:hf://o/n")],
)  # fmt: skip
def test_models_are_named_never_by_a_fragment_of_a_path(source, shown):
    """C10: model B's heading (and the loading message) names a folder by its own name, never "nc/timm_r18"."""
    from cxrdemo.render.grid import model_heading, model_name
    from cxrdemo.webapp.models import _short_source

    assert model_name(source) == shown and _short_source(source) == shown

    class Fake:
        model = {"source": source, "revision": "abc", "architecture": "resnet18"}
        probabilities = ()

    assert model_heading(Fake(), "B") == f"B: resnet18 from {shown} (revision abc)"


def test_refusal_lists_the_servers_models(public, monkeypatch, model_dir):
    """C10: the refusal names the models to pick (the server's configuration, whatever the visitor typed)."""
    monkeypatch.setenv(sources.ENV, f"small={model_dir};hub=owner/name@v2")
    with pytest.raises(InputError) as err:
        model_key("/etc", "cpu")
    assert "pick one of its models (default, small, hub)" in str(err.value)
    many = {f"m{i}": "" for i in range(20)}
    listed = sources.refusal(many)
    assert f"m{sources.LISTED_NAMES - 1}, ...)" in listed and f"m{sources.LISTED_NAMES}," not in listed


def test_model_b_notes_go_to_the_status_line_not_a_toast(monkeypatch, tmp_path, model_dir, images_dir):
    """C10: a note about model B is read in the status line; no toast covers the example gallery."""
    import gradio as gr

    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.ui_side import SideHandlers, create_side

    monkeypatch.setenv("CXRDEMO_PUBLIC", "0")
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: pytest.fail(f"a toast: {a}"))
    resources = make_resources(REPO, export_root=tmp_path / "exports")
    settings = Settings(source=str(model_dir), device="cpu")
    case = actions.analyse_case(resources.cache, upload.read_upload(images_dir / WEBAPP_IMAGE), settings).case
    handle = resources.cases.put(case)
    with gr.Blocks():
        side_ui, status = create_side(), gr.Markdown()
    out = SideHandlers(side_ui, resources, status).models(handle, str(model_dir), "cpu")
    assert out[status].endswith("Note: Model B is the same model as A: enter another model source for B.")
