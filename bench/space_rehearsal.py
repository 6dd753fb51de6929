"""Rehearse a Hugging Face Space build of this repository, here, without the Hub.

    python bench/space_rehearsal.py [--venv PATH] [--json bench/space_rehearsal.json] [--keep] [--timeout 900]

What a Space does, step by step, and what is checked at each one:

1. **The files a Space has**: ``git ls-files`` of this repository copied into a temporary folder (no untracked file,
   no build output, no local venv); README's front matter must name ``app.py`` and the ``sdk_version`` that
   ``requirements.txt`` pins for gradio (a Space installs that version of gradio).
2. **The install**: a fresh virtual environment (``python -m venv``), then ``pip install -r pre-requirements.txt``
   when the repository ships one and ``pip install -r requirements.txt``, with pip's configured index; timed, and
   the venv's size measured (``du``). ``--venv PATH`` reuses an existing venv instead (a quick rehearsal of the
   rest; its size is still measured).
3. **The start**: ``python app.py`` in the copy with ``SPACE_ID`` set (as on every Space), ``CXRDEMO_PUBLIC`` unset,
   on a free loopback port, and ``HF_HUB_OFFLINE=1`` (nothing here may use the network).
4. **The checks** (:func:`check_page`, :func:`check_answer`), on Gradio's ``/config`` and the page's HTML:
   public mode is on (the model fields are lists of the server's models, not free text boxes), no server path
   appears (the copy's folder, the venv's folder, the home folder), the example gallery lists every example of
   ``examples/manifest.csv``; then one example is sent to the ``predict`` endpoint with ``gradio_client`` and must
   come back with probabilities for every class and four panel files.
5. **The figures**: install seconds, venv bytes, spawn -> page answering, spawn -> first answer, and the first
   answer's own time, in one JSON document (printed, and written to ``--json``). Exit status 1 when a check fails.

Research demo, not a diagnostic device.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: What ``SPACE_ID`` is set to (any value turns public mode on; this one says where it came from).
SPACE_ID = "rehearsal/cxrdemo"
#: The model fields of the page (elem_id): free text boxes outside public mode, lists of named models in it.
MODEL_FIELDS = ("source", "source-b", "audit-source")
#: The gallery of examples (elem_id).
GALLERY = "examples"


@dataclass
class Check:
    """One check of the rehearsal: its name, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Rehearsal:
    """The rehearsal's result (the JSON document)."""

    venv: str
    venv_reused: bool
    install_s: float | None = None
    venv_bytes: int | None = None
    spawn_to_page_s: float | None = None
    spawn_to_first_answer_s: float | None = None
    first_answer_s: float | None = None
    example: str = ""
    python: str = ""
    checks: list[Check] = field(default_factory=list)
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc


# ------------------------------------------------------------------------------------------------------ checks
def front_matter(readme: str) -> dict[str, str]:
    """The ``key: value`` lines of README's YAML front matter (between the first two ``---`` lines)."""
    lines = readme.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def pinned_version(requirements: str, package: str) -> str | None:
    """The ``==`` version of ``package`` in a requirements text (``None`` when it is not pinned there)."""
    pattern = re.compile(rf"^\s*{re.escape(package)}(\[[^\]]*\])?\s*==\s*([^\s;#]+)", re.IGNORECASE | re.MULTILINE)
    match = pattern.search(requirements)
    return match.group(2) if match else None


def check_space_files(folder: Path) -> list[Check]:
    """README's front matter against the files: ``app_file`` exists, ``sdk_version`` is requirements.txt's gradio."""
    meta = front_matter((folder / "README.md").read_text(encoding="utf-8")) if (folder / "README.md").is_file() else {}
    app_file = meta.get("app_file", "")
    requirements = (folder / "requirements.txt").read_text(encoding="utf-8") if (folder / "requirements.txt").is_file() else ""
    gradio_pin = pinned_version(requirements, "gradio")
    return [
        Check("front matter: sdk gradio, app_file present", meta.get("sdk") == "gradio" and bool(app_file) and (folder / app_file).is_file(),
              f"sdk={meta.get('sdk')!r} app_file={app_file!r}"),  # fmt: skip
        Check("front matter: sdk_version is requirements.txt's gradio", bool(gradio_pin) and meta.get("sdk_version") == gradio_pin,
              f"sdk_version={meta.get('sdk_version')!r} requirements gradio=={gradio_pin}"),  # fmt: skip
    ]


def components(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Gradio config's components by ``elem_id`` (those that have one)."""
    out = {}
    for comp in config.get("components", []):
        elem_id = (comp.get("props") or {}).get("elem_id")
        if elem_id:
            out[str(elem_id)] = comp
    return out


def gallery_count(config: dict[str, Any]) -> int:
    """How many pictures the example gallery lists in the page's config (0 when there is no gallery)."""
    comp = components(config).get(GALLERY)
    value = (comp or {}).get("props", {}).get("value") or []
    return len(value) if isinstance(value, list) else 0


def server_paths_in(text: str, forbidden: list[str]) -> list[str]:
    """The folders of ``forbidden`` that appear in ``text`` (each folder as written and as resolved)."""
    found = []
    for folder in forbidden:
        forms = {folder.rstrip("/"), str(Path(folder).resolve()).rstrip("/")}
        if any(form and len(form) > 1 and form in text for form in forms):
            found.append(folder)
    return found


def check_page(config: dict[str, Any], page_html: str, forbidden: list[str], expected_examples: int) -> list[Check]:
    """Public mode on, no server path, the examples shown: the checks on the served page.

    Args:
        config: Gradio's ``/config`` document; ``page_html``: the page's HTML.
        forbidden: folders of the server that must not appear (the app's folder, the venv, the home folder).
        expected_examples: how many examples ``examples/manifest.csv`` lists.
    """
    comps = components(config)
    kinds = {name: comps[name].get("type") for name in MODEL_FIELDS if name in comps}
    public = bool(kinds) and all(kind == "dropdown" for kind in kinds.values())
    text = json.dumps(config) + page_html
    leaks = server_paths_in(text, forbidden)
    shown = gallery_count(config)
    return [
        Check("public mode: model fields list the server's models", public, json.dumps(kinds)),
        Check("no server path in the page or its config", not leaks, ", ".join(leaks) or "none of " + ", ".join(forbidden)),
        Check("the examples show", expected_examples > 0 and shown == expected_examples,
              f"{shown} in the gallery, {expected_examples} in examples/manifest.csv"),  # fmt: skip
    ]


def check_answer(result: Any, classes: int | None = None) -> Check:
    """The ``predict`` endpoint's answer: the CLI's JSON with probabilities, and four panel files that exist."""
    if not isinstance(result, (list, tuple)) or len(result) != 5:
        return Check("one example answers", False, f"expected (json, 4 panels), got {type(result).__name__}")
    doc, panels = result[0], result[1:]
    probabilities = doc.get("probabilities") if isinstance(doc, dict) else None
    files = [p for p in panels if isinstance(p, str) and Path(p).is_file() and Path(p).stat().st_size > 0]
    rows = [r for r in probabilities or () if isinstance(r, dict) and "probability" in r]
    ok = bool(rows) and len(rows) == len(probabilities) and (classes is None or len(rows) == classes) and len(files) == 4
    top = max(rows, key=lambda r: r["probability"])["label"] if rows else None
    return Check("one example answers", ok, f"{len(probabilities or ())} probabilities (top {top}), {len(files)} panel files")


def manifest_images(folder: Path) -> list[str]:
    """The distinct images of ``examples/manifest.csv`` present in ``examples/images`` (what the gallery shows)."""
    manifest = folder / "examples" / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="", encoding="utf-8") as handle:
        names = list(dict.fromkeys(row["image"] for row in csv.DictReader(handle)))
    return [n for n in names if (folder / "examples" / "images" / n).is_file()]


# ------------------------------------------------------------------------------------------------------- steps
def copy_tracked(repo: Path, dest: Path) -> int:
    """Copy ``git ls-files`` of ``repo`` (as they are in the work tree) into ``dest``; the number of files."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], check=True, capture_output=True).stdout
    count = 0
    for name in filter(None, listed.decode().split("\0")):
        src = repo / name
        if not src.is_file():  # deleted in the work tree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        count += 1
    return count


def du_bytes(path: Path) -> int:
    """Disk usage of ``path`` in bytes (``du -sb``)."""
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def make_venv(folder: Path, venv: Path, log: Path) -> float:
    """A fresh venv at ``venv`` with the Space's requirements installed; the seconds it took."""
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out, stderr=subprocess.STDOUT)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input"]
        for name in ("pre-requirements.txt", "requirements.txt"):
            if (folder / name).is_file():
                subprocess.run([*pip, "-r", str(folder / name)], check=True, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def space_environment(port: int, home: Path) -> dict[str, str]:
    """The app's environment: this one, less every ``CXRDEMO_*`` and Gradio address setting, plus a Space's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CXRDEMO_", "GRADIO_", "VIRTUAL_ENV"))}
    env.update(SPACE_ID=SPACE_ID, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1", HOME=str(home))  # fmt: skip
    return env


def wait_for(url: str, deadline: float, proc: subprocess.Popen) -> bytes:
    """``url``'s body once it answers 200, before ``deadline`` (``time.monotonic``) and while ``proc`` runs."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with status {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return response.read()
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in time")


def rehearse(venv: Path | None, timeout: float, work: Path) -> Rehearsal:
    """Run every step in ``work``; ``venv``: reuse this venv instead of building a fresh one."""
    folder, home, log = work / "space", work / "home", work / "rehearsal.log"
    home.mkdir(parents=True, exist_ok=True)
    copy_tracked(REPO, folder)
    reused = venv is not None
    venv = venv if venv is not None else work / "venv"
    result = Rehearsal(venv=str(venv) if reused else "(fresh, temporary)", venv_reused=reused)
    result.checks += check_space_files(folder)
    if not reused:
        result.install_s = round(make_venv(folder, venv, log), 1)
    python = venv / "bin" / "python"
    result.python = subprocess.run([str(python), "--version"], capture_output=True, text=True).stdout.strip()
    result.venv_bytes = du_bytes(venv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    examples = manifest_images(folder)
    with log.open("a", encoding="utf-8") as out:
        spawned = time.monotonic()
        proc = subprocess.Popen([str(python), "app.py"], cwd=folder, env=space_environment(port, home), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            deadline = spawned + timeout
            config = json.loads(wait_for(f"{url}/config", deadline, proc))
            result.spawn_to_page_s = round(time.monotonic() - spawned, 2)
            page = wait_for(url + "/", deadline, proc).decode("utf-8", "replace")
            forbidden = [str(folder), str(venv), str(Path.home()), str(work)]
            result.checks += check_page(config, page, forbidden, len(examples))
            if examples:
                from gradio_client import Client, handle_file

                result.example = examples[0]
                client = Client(url, verbose=False)
                asked = time.monotonic()
                answer = client.predict(handle_file(str(folder / "examples" / "images" / examples[0])), "", "auto",
                                        "gradcam", "top-1", 127, "", api_name="/predict")  # fmt: skip
                now = time.monotonic()
                result.first_answer_s, result.spawn_to_first_answer_s = round(now - asked, 2), round(now - spawned, 2)
                result.checks.append(check_answer(answer))
        except Exception as exc:  # noqa: BLE001 - the rehearsal reports every failure as a failed check
            result.checks.append(Check("the app starts and answers", False, f"{type(exc).__name__}: {exc}"))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result.log_tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="reuse this venv instead of installing a fresh one")
    parser.add_argument("--json", type=Path, help="write the result here too")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the app to start and answer (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (copy, venv, log)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cxrdemo-space-"))
    try:
        result = rehearse(args.venv.absolute() if args.venv else None, args.timeout, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    doc = result.to_json()
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
