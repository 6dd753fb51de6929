"""Issue 27, E1: a Hub revision is a branch or tag name or a commit hash, nothing that reads as a path.

huggingface_hub joins the revision to its cache folder (``refs/<rev>``) and reads that file when the Hub cannot be
reached, so ``owner/name@/proc/self/cmdline`` used to read a server file. Every entry point (CLI ``--weights``, the
Python API, every format prefix, ``hf://``, the public-mode gate, ``CXRDEMO_MODELS``) now refuses such a revision
with ONE line, the same for every bad revision (no oracle), before any file is opened or any socket connects: the
subprocess tests watch that with an audit hook that records every ``open`` / ``os.listdir`` of the named
file, of a Hub cache folder (``models--``) or of the typed text, and every ``socket`` connection or name lookup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cxrdemo.errors import InputError, WeightsError
from cxrdemo.locations import REVISION_REFUSED, check_source_shape, has_bad_revision, parse_hub_id, valid_revision

REPO = Path(__file__).resolve().parent.parent

BAD = [
    "/proc/self/cmdline", "/etc/passwd", "../../x", "refs/../x", "..", "a//b", "main/", "x.lock", "v1/.hidden",
    ".hidden", "main.", "refs/heads/../../../../etc/passwd", "/", "a" * 129,
]
GOOD = ["main", "v1.0", "refs/pr/1", "feature/x-y_z", "0123456789abcdef0123456789abcdef01234567", "a" * 128]


@pytest.mark.parametrize("rev", GOOD)
def test_branch_tag_and_commit_names_are_valid(rev: str) -> None:
    assert valid_revision(rev) and parse_hub_id(f"owner/name@{rev}") == ("owner/name", rev)


@pytest.mark.parametrize("rev", BAD + ["a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}", "\x01", ""])
def test_path_like_and_git_invalid_revisions_are_refused(rev: str) -> None:
    assert not valid_revision(rev)
    assert parse_hub_id(f"owner/name@{rev}") is None


@pytest.mark.parametrize("rev", BAD)
@pytest.mark.parametrize("form", ["{}", "hf://{}", "timm:{}", "hf-hub:{}", "hf:{}", "cxrdemo:{}", "timm:hf://{}"])
def test_every_source_form_gives_the_one_line(rev: str, form: str) -> None:
    text = form.format(f"owner/name@{rev}")
    with pytest.raises(WeightsError) as err:
        check_source_shape(text)
    assert str(err.value) == REVISION_REFUSED  # the same words whatever the revision: nothing of it is echoed


def test_refusal_does_not_depend_on_the_revision() -> None:
    assert has_bad_revision("a/b@/proc/self/cmdline") and has_bad_revision("a/b@/no/such/file")
    assert "\n" not in REVISION_REFUSED and "proc" not in REVISION_REFUSED


# ----------------------------------------------------------------------------------- before any file or socket
_WATCH = r'''
import sys
seen = []
armed = [False]
def hook(event, args):
    if armed[0] and event in ("open", "os.listdir", "os.scandir", "socket.connect", "socket.getaddrinfo"):
        target = str(args[0]) if args else ""
        if event.startswith("socket") or any(w in target for w in ("cmdline", "passwd", "models--", "b@")) or target.endswith("/x"):
            seen.append((event, target))
'''


def _run_watched(body: str, env_extra: dict[str, str] | None = None) -> list[str]:
    """Run ``body`` (which sets ``armed[0] = True`` just before the call under test) in a fresh interpreter with the
    audit hook; returns its stdout lines (the body prints the error and the events seen)."""
    code = _WATCH + "sys.addaudithook(hook)\n" + body
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HF_ENDPOINT": "http://127.0.0.1:9", **(env_extra or {})}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


@pytest.mark.parametrize("source", ["owner/name@/proc/self/cmdline", "hf://a/b@../../x", "timm:a/b@refs/../x", "hf:a/b@/etc/passwd"])
def test_python_api_refuses_before_any_file_or_socket(source: str) -> None:
    lines = _run_watched(
        "from cxrdemo.models.weights import load_model\n"
        "from cxrdemo.errors import WeightsError\n"
        "armed[0] = True\n"
        "try:\n"
        f"    load_model({source!r}, device='cpu')\n"
        "    print('LOADED')\n"
        "except WeightsError as exc:\n"
        "    armed[0] = False\n"
        "    print('ERROR', exc)\n"
        "print('SEEN', seen)\n"
    )
    assert lines == [f"ERROR {REVISION_REFUSED}", "SEEN []"]


@pytest.mark.parametrize("weights", ["a/b@/proc/self/cmdline", "hf-hub:a/b@../../x", "hf://a/b@refs/../x"])
def test_cli_refuses_before_any_file_or_socket(tmp_path: Path, weights: str) -> None:
    lines = _run_watched(
        "import contextlib, io\n"
        "from cxrdemo.cli import main\n"
        "err = io.StringIO()\n"
        "armed[0] = True\n"
        "with contextlib.redirect_stderr(err):\n"
        f"    rc = main(['predict', '--weights', {weights!r}, 'x.png'])\n"
        "armed[0] = False\n"
        "print('RC', rc)\n"
        "print('ERR', err.getvalue().strip())\n"
        "print('SEEN', seen)\n"
    )
    assert lines == ["RC 1", f"ERR error: {REVISION_REFUSED}", "SEEN []"]


@pytest.mark.parametrize("typed", ["a/b@/proc/self/cmdline", "hf://a/b@../../x", "timm:a/b@refs/../x", "hf:a/b@/etc/passwd", "hf-hub:a/b@a//b"])
@pytest.mark.parametrize("public", [True, False])
def test_app_gate_refuses_in_and_out_of_public_mode(typed: str, public: bool) -> None:
    from cxrdemo.webapp import sources

    with pytest.raises(InputError) as err:
        sources.check_source(typed, public, {"default": ""})
    assert str(err.value) == REVISION_REFUSED


def test_public_app_refuses_before_any_file_or_socket() -> None:
    """The web app's model lookup (:func:`cxrdemo.webapp.models.model_key`, the gate every page and endpoint passes) in
    public mode, watched like the CLI."""
    lines = _run_watched(
        "from cxrdemo.webapp import models\n"
        "from cxrdemo.errors import CxrDemoError\n"
        "armed[0] = True\n"
        "try:\n"
        "    models.model_key('a/b@/proc/self/cmdline', 'cpu')\n"
        "    print('LOADED')\n"
        "except CxrDemoError as exc:\n"
        "    armed[0] = False\n"
        "    print('ERROR', exc)\n"
        "print('SEEN', seen)\n",
        {"CXRDEMO_PUBLIC": "1"},
    )
    assert lines == [f"ERROR {REVISION_REFUSED}", "SEEN []"]


def test_models_variable_leaves_out_a_bad_revision(tmp_path: Path) -> None:
    from cxrdemo.webapp import sources

    named, notes = sources.parse_models("good=owner/name@v2;bad=owner/name@/proc/self/cmdline", tmp_path)
    assert named == {"good": "hf://owner/name@v2"} and len(notes) == 1 and REVISION_REFUSED in notes[0]


def test_direct_fetch_call_is_gated() -> None:
    """A caller that builds its own ``(repo_id, revision)`` still meets the gate inside the fetch."""
    from cxrdemo.models.weights import _fetch_from_hub

    with pytest.raises(WeightsError, match="a Hub revision is a branch or tag name"):
        _fetch_from_hub("owner/name", "/proc/self/cmdline")
