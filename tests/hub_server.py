"""A small Hugging Face Hub for the tests: real HTTP on 127.0.0.1, in-memory model repos with commits and branches.

It answers what ``huggingface_hub`` 2.x asks of a Hub (read from its installed sources: ``file_download.py``,
``_snapshot_download.py``, ``hf_api.py``, ``utils/_http.py``):

- ``HEAD`` / ``GET /{owner}/{name}/resolve/{revision}/{path}``: ``ETag`` (the git blob sha1; for LFS files, the
  sha256, also as ``X-Linked-Etag``), ``X-Repo-Commit``, ``Content-Length`` (and ``X-Linked-Size`` for LFS files),
  ``Range: bytes=N-`` answered with 206 (huggingface_hub resumes a dropped download that way). No redirect: LFS files
  are served in place, with the headers a CDN redirect would carry.
- ``GET /api/models/{owner}/{name}[/revision/{revision}]``: the model info (``sha``, ``siblings``; sizes, blob ids
  and LFS data with ``?blobs=true``, which ``files_metadata=True`` sends).
- ``GET /api/models/{owner}/{name}/tree/{revision}[/{path}]`` (``?recursive=``): the listing ``snapshot_download``
  reads; ``POST /api/models/{owner}/{name}/paths-info/{revision}`` (form field ``paths``).

Errors carry the Hub's ``X-Error-Code`` header, from which huggingface_hub picks its exception: 404 ``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound`` (with ``X-Repo-Commit``, so the library caches the absence); a private repo
answers 401 ``RepoNotFound`` without a token it accepts; a gated repo shows its info but answers its files with
401 ``GatedRepo`` without a token and 403 ``GatedRepo`` with a token not granted access.

Tests steer it: :meth:`HubServer.push` commits files to a branch (a new commit each time; old commits stay
readable by hash), :meth:`HubServer.fail` injects failures (a status with an error code, or a connection dropped
half-way through a file's body), and :attr:`HubServer.requests` records every request (method, path) so a test can
assert that a cached load sent none, or that a file's body was never fetched.

How the code under test reaches it (:func:`use_hub`): huggingface_hub reads ``HF_ENDPOINT`` once, at import, into
``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (and builds the module-level ``hf_api.api`` with
that endpoint). Tests run in-process (a subprocess per case would import torch again for each), so the fixture sets
the environment (``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``; cxrdemo reads ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` at call time) AND patches exactly those module attributes; :func:`endpoint_constants` lists every
string constant of the library derived from the endpoint, and a test checks that :func:`use_hub` patched all of
them, so a new huggingface_hub that adds one fails that test instead of silently reaching huggingface.co. One test
also runs the CLI in a subprocess with only ``HF_ENDPOINT`` set, the way a user points it at a mirror.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

#: Files served as LFS objects (``X-Linked-Size`` / ``X-Linked-Etag``), as the Hub does for weights.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
_DEFAULT_ENDPOINT = "https://huggingface.co"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's ETag and ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One model repo: commits (hash -> files), branches (name -> hash), and who may read it."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    private: bool = False
    gated: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens granted access (private or gated)


@dataclass(frozen=True)
class Request:
    """A request the server saw: method, decoded path (``/owner/name/resolve/main/config.json``) and its ``Range``
    header (``""`` when none: a resumed download asks for ``bytes=N-``)."""

    method: str
    path: str
    range: str = ""


@dataclass
class Failure:
    """An injected failure for requests whose method is ``method`` (any when ``None``) and whose decoded path
    contains ``path``: answer ``status`` with ``error_code`` (``X-Error-Code``), or, with ``drop=True``, send the
    headers and half the body of a GET and close the connection. ``times`` requests fail, then it is spent."""

    path: str
    status: int = 500
    method: str | None = None
    error_code: str | None = None
    drop: bool = False
    times: int = 1


class HubServer:
    """The Hub: start it with :meth:`start` (a free port on 127.0.0.1), stop it with :meth:`stop`."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- test controls
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def push(self, repo_id: str, files: dict[str, bytes], branch: str = "main", *, keep: bool = False) -> str:
        """Commit ``files`` to ``branch`` of ``repo_id`` (created if new); the commit holds exactly ``files``, or
        the branch's previous files updated by them with ``keep=True``. Returns the new commit hash."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            base = dict(repo.commits[repo.branches[branch]]) if keep and branch in repo.branches else {}
            base.update(files)
            self._counter += 1
            digest = hashlib.sha1(f"{repo_id}\0{self._counter}".encode())
            for name in sorted(base):
                digest.update(name.encode() + b"\0" + hashlib.sha256(base[name]).digest())
            commit = digest.hexdigest()
            repo.commits[commit] = base
            repo.branches[branch] = commit
            return commit

    def push_folder(self, repo_id: str, folder: Path, branch: str = "main", **extra: bytes) -> str:
        """Commit every file under ``folder`` (paths relative to it), plus ``extra`` name -> bytes."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        files.update(extra)
        return self.push(repo_id, files, branch)

    def fail(self, path: str, status: int = 500, *, method: str | None = None, error_code: str | None = None,
             drop: bool = False, times: int = 1) -> Failure:
        """Inject a :class:`Failure` (see there); returns it (its ``times`` counts down as it fires)."""
        failure = Failure(path, status, method, error_code, drop, times)
        with self._lock:
            self.failures.append(failure)
        return failure

    def clear(self) -> None:
        """Forget the recorded requests (repos and failures stay)."""
        with self._lock:
            self.requests.clear()

    def seen(self, method: str | None = None, name: str | None = None) -> list[Request]:
        """The recorded requests, optionally only of ``method`` and of resolve paths ending in ``/name``."""
        with self._lock:
            found = list(self.requests)
        return [r for r in found if (method is None or r.method == method)
                and (name is None or ("/resolve/" in r.path and r.path.endswith("/" + name)))]

    # ----------------------------------------------------------------------------------------- internals
    def _record(self, method: str, path: str, range_: str) -> Failure | None:
        with self._lock:
            self.requests.append(Request(method, path, range_))
            for failure in self.failures:
                if failure.times > 0 and failure.path in path and failure.method in (None, method):
                    failure.times -= 1
                    return failure
        return None

    def _resolve(self, repo: Repo, revision: str) -> str | None:
        if revision in repo.branches:
            return repo.branches[revision]
        return revision if revision in repo.commits else None


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer  # set on the subclass made by HubServer.start

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the tests read HubServer.requests
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve("HEAD")

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    # -------------------------------------------------------------------------------------------- dispatch
    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        raw = [part for part in split.path.split("/") if part != ""]
        parts = [unquote(part) for part in raw]  # huggingface_hub quotes a revision as one segment (safe="")
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        failure = self.hub._record(method, "/" + "/".join(parts), self.headers.get("Range") or "")
        try:
            if failure is not None and not failure.drop:
                raise _HubError(failure.status, failure.error_code, f"injected failure {failure.status}")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(method, parts[2] + "/" + parts[3], parts[4:], parse_qs(split.query), body)
            elif len(parts) >= 5 and parts[2] == "resolve" and method in ("HEAD", "GET"):
                self._resolve_file(method, parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]), failure)
            else:
                raise _HubError(404, None, "no such endpoint")
        except _HubError as err:
            self._error(method, err)

    def _repo(self, repo_id: str, files: bool) -> Repo:
        """The repo, or the error its visitor gets: 404 (absent), 401 (private, no accepted token), 401/403 (gated
        files without a granted token)."""
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if repo.private and token not in repo.tokens:
            raise _HubError(401, "RepoNotFound", "Invalid username or password.")
        if repo.gated and files and token not in repo.tokens:
            status = 403 if token else 401
            raise _HubError(status, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in.")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str:
        commit = self.hub._resolve(repo, revision)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    # -------------------------------------------------------------------------------------------- resolve
    def _resolve_file(self, method: str, repo_id: str, revision: str, path: str, failure: Failure | None) -> None:
        repo = self._repo(repo_id, files=True)
        commit = self._commit(repo, revision)
        files = repo.commits[commit]
        if path not in files:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on \"{revision}\"", commit)
        data = files[path]
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if path.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
        else:
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
        start = 0
        wanted = self.headers.get("Range") or ""
        if method == "GET" and wanted.startswith("bytes=") and wanted[6:].split("-")[0].isdigit():
            start = min(int(wanted[6:].split("-")[0]), len(data))
        payload = data[start:]
        self.send_response(206 if start else 200)
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(payload))
        for key, value in headers.items():
            self.send_header(key, value)
        if failure is not None and failure.drop and method == "GET":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])  # half the body, then the connection is gone
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        if method == "GET":
            self.wfile.write(payload)

    # -------------------------------------------------------------------------------------------- api
    def _api(self, method: str, repo_id: str, rest: list[str], query: dict[str, list[str]], body: bytes) -> None:
        repo = self._repo(repo_id, files=False)
        if method == "GET" and (not rest or rest[0] == "revision"):
            revision = rest[1] if len(rest) > 1 else "main"
            commit = self._commit(repo, revision)
            blobs = (query.get("blobs") or ["false"])[0].lower() == "true"
            siblings = [self._sibling(path, data, blobs) for path, data in sorted(repo.commits[commit].items())]
            info = {"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
                    "author": repo_id.split("/")[0], "sha": commit, "private": repo.private,
                    "gated": "auto" if repo.gated else False, "disabled": False, "tags": [], "downloads": 0, "likes": 0,
                    "lastModified": "2026-01-01T00:00:00.000Z", "siblings": siblings}
            self._json(info)
        elif method == "GET" and rest and rest[0] == "tree" and len(rest) >= 2:
            self._repo(repo_id, files=True)
            commit = self._commit(repo, rest[1])
            folder = "/".join(rest[2:]).strip("/")
            recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
            self._json(self._tree(repo.commits[commit], folder, recursive))
        elif method == "POST" and rest and rest[0] == "paths-info" and len(rest) >= 2:
            self._repo(repo_id, files=True)
            commit = self._commit(repo, rest[1])
            form = parse_qs(body.decode())
            files = repo.commits[commit]
            wanted = form.get("paths") or []
            entries = [self._entry(p, files[p]) for p in wanted if p in files]
            folders = {p for p in wanted if p not in files and any(f.startswith(p.rstrip("/") + "/") for f in files)}
            entries += [{"type": "directory", "oid": git_blob_sha1(p.encode()), "size": 0, "path": p} for p in sorted(folders)]
            self._json(entries)
        else:
            raise _HubError(404, None, "no such endpoint")

    @staticmethod
    def _lfs(path: str, data: bytes) -> dict | None:
        if not path.endswith(LFS_SUFFIXES):
            return None
        return {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}

    def _sibling(self, path: str, data: bytes, blobs: bool) -> dict:
        if not blobs:
            return {"rfilename": path}
        lfs = self._lfs(path, data)
        sibling = {"rfilename": path, "size": len(data), "blobId": git_blob_sha1(data)}
        if lfs:
            sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
        return sibling

    def _entry(self, path: str, data: bytes) -> dict:
        entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        lfs = self._lfs(path, data)
        if lfs:
            entry["lfs"] = lfs
        return entry

    def _tree(self, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
        prefix = folder + "/" if folder else ""
        entries: list[dict] = []
        folders: set[str] = set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                sub = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and sub not in folders:
                    folders.add(sub)
                    entries.append({"type": "directory", "oid": git_blob_sha1(sub.encode()), "size": 0, "path": sub})
            if recursive or len(parts) == 1:
                entries.append(self._entry(path, files[path]))
        if folder and not entries:
            raise _HubError(404, "EntryNotFound", f"{folder} does not exist")
        return entries

    # -------------------------------------------------------------------------------------------- replies
    def _json(self, data: object) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, method: str, err: _HubError) -> None:
        payload = json.dumps({"error": err.message}).encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if err.code:
            self.send_header("X-Error-Code", err.code)
        self.send_header("X-Error-Message", err.message)
        if err.commit:
            self.send_header("X-Repo-Commit", err.commit)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)


# ------------------------------------------------------------------------------------------------- wiring
def endpoint_constants() -> list[str]:
    """The names of huggingface_hub's string constants that were built from the endpoint at import (they hold
    the endpoint's text): what :func:`use_hub` must patch."""
    import huggingface_hub.constants as c

    endpoint = c.ENDPOINT
    return sorted(n for n, v in vars(c).items() if n.isupper() and isinstance(v, str) and v.startswith(endpoint)
                  and not n.startswith("_"))


def use_hub(url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point huggingface_hub and cxrdemo at the Hub at ``url``, with an empty ``HF_HOME`` at ``home`` (no token
    file, an empty cache) and online (see the module doc for why both the environment and the constants)."""
    import huggingface_hub.constants as c
    import huggingface_hub.hf_api as hf_api

    home.mkdir(parents=True, exist_ok=True)
    cache = home / "hub"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_ETAG_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    original = c.ENDPOINT
    for name in endpoint_constants():
        monkeypatch.setattr(c, name, getattr(c, name).replace(original, url, 1))
    monkeypatch.setattr(c, "HF_HOME", str(home))
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_api.api, "endpoint", url)


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool = True) -> None:
    """``HF_HUB_OFFLINE=1`` as a user sets it: the variable (cxrdemo reads it at call time) and the constant
    huggingface_hub read at import."""
    import huggingface_hub.constants as c

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", offline)


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A started :class:`HubServer` with huggingface_hub and cxrdemo pointed at it, an empty Hub cache in
    ``tmp_path / "hf-home"``; stopped afterwards. Import it into a test module (``from hub_server import hub``)."""
    server = HubServer().start()
    use_hub(server.url, tmp_path / "hf-home", monkeypatch)
    try:
        yield server
    finally:
        server.stop()
