"""Model sources: the models a server names (``CXRDEMO_MODELS``), and the one gate every typed source passes before
it is resolved (:func:`check_source`).

On a public server (:func:`cxrdemo.publicmode.is_public`) a visitor may only pick a named model or type a Hub id
``owner/name[@revision]``: a typed folder would let a stranger load (and probe the existence of) any folder of the
server. Every other text gets the same one-line refusal (:func:`refusal`: it names the server's models), whatever
exists on the server. Outside
public mode (a local user) folders keep working.

``CXRDEMO_MODELS`` is ``name=source`` entries separated by ``;`` (like ``CXRDEMO_AUDIT_DATASETS``): a source is a
model folder (absolute, or relative to the repository root) or a Hub id. ``default`` (the embedded weights, or
``$CXRDEMO_WEIGHTS``) is always offered. A malformed entry is left out with a one-line note.

The gate runs before any resolution (folder, Hub, or the formats other modules add): :func:`model_key` calls it,
and every page and API endpoint that takes a source goes through :func:`model_key`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError

#: The environment variable naming the server's models.
ENV = "CXRDEMO_MODELS"
#: The name of the default model (always offered).
DEFAULT_NAME = "default"
#: How a public server's one answer (:func:`refusal`) to any source that is neither a named model nor a Hub id begins.
#: The answer must not depend on what the text is or what exists on the server (no echo, no "does not exist", no "is a
#: file"); it names the server's models (its configuration, the same for every visitor).
REFUSED = "this server loads only its own models and Hugging Face Hub ids"
#: At most this many model names are listed in the refusal.
LISTED_NAMES = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ABSOLUTE = re.compile(r"(?<![\w.:/-])(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\'\"`,;()]+[/\\])*([^\s/\\'\"`,;()]*)")


def refusal(named: Mapping[str, str]) -> str:
    """The one line a public server answers to every source it refuses: :data:`REFUSED`, then the names the visitor
    may pick (those of ``named``: ``default`` and ``CXRDEMO_MODELS``'s) and the Hub id forms."""
    names = list(named)[:LISTED_NAMES]
    more = ", ..." if len(named) > LISTED_NAMES else ""
    listed = f" ({', '.join(names)}{more})" if names else ""
    return f"{REFUSED}: pick one of its models{listed}, or type a Hub id owner/name or owner/name@revision"


def repo_root() -> Path:
    """The repository root (where relative ``CXRDEMO_MODELS`` folders are looked up)."""
    from ..models.weights import EMBEDDED_DIR

    return EMBEDDED_DIR.parent


def parse_models(text: str | None, root: str | os.PathLike | None = None) -> tuple[dict[str, str], list[str]]:
    """The named models of a ``CXRDEMO_MODELS`` value (name -> what to resolve: an absolute folder, or
    ``hf://owner/name[@revision]``), and one note per entry left out. ``default`` is not among them (it is always
    offered, see :func:`named_models`)."""
    from ..locations import REVISION_REFUSED, has_bad_revision
    from ..models.weights import HUB_PREFIX, parse_hub_id, path_exists

    base = Path(root) if root is not None else repo_root()
    found: dict[str, str] = {}
    notes: list[str] = []
    for entry in (text or "").split(";"):
        if not entry.strip():
            continue
        name, sep, spec = (part.strip() for part in entry.partition("="))
        if not sep or not spec:
            notes.append(f"{ENV} entry {entry.strip()[:60]!r}: write name=folder or name=owner/name[@revision] (left out)")
        elif not _NAME.match(name) or name == DEFAULT_NAME or name in found:
            notes.append(f"{ENV} entry {name[:60]!r}: a name is letters, digits, '_', '.' or '-', used once, not 'default' (left out)")
        else:
            path = Path(spec).expanduser()
            path = path if path.is_absolute() else base / path
            hub = spec[len(HUB_PREFIX):] if spec.startswith(HUB_PREFIX) else spec
            if has_bad_revision(hub):
                notes.append(f"{ENV} entry {name!r}: {REVISION_REFUSED} (left out)")
            elif not spec.startswith(HUB_PREFIX) and path_exists(path) and path.is_dir():
                found[name] = str(path.resolve())
            elif parse_hub_id(hub) is not None:
                found[name] = HUB_PREFIX + hub
            else:
                notes.append(f"{ENV} entry {name!r}: {spec[:80]!r} is neither a folder nor a Hub id (left out)")
    return found, notes


def named_models(environ: Mapping[str, str] | None = None, root: str | os.PathLike | None = None) -> dict[str, str]:
    """The models a visitor may pick by name: ``default`` (``""``: the default source) first, then ``CXRDEMO_MODELS``'s."""
    env = os.environ if environ is None else environ
    return {DEFAULT_NAME: "", **parse_models(env.get(ENV), root)[0]}


def check_source(text: str | None, public: bool, named: Mapping[str, str]) -> str:
    """The gate: what to resolve for the typed source ``text``.

    Returns ``""`` for the default model, a named model's source, a Hub id (``hf://owner/name[@revision]`` in public
    mode, so that it is never looked up as a folder), or, outside public mode, ``text`` itself (a folder).

    Raises:
        InputError: in public mode, :func:`refusal` for any text that is neither a name of ``named`` nor a Hub id.
    """
    from ..models.weights import HUB_PREFIX, parse_hub_id

    value = str(text or "").strip()
    if value in ("", DEFAULT_NAME):
        return named.get(DEFAULT_NAME, "")
    if value in named:
        return named[value]
    _refuse_bad_revision(value)
    if not public:
        return value
    hub = value[len(HUB_PREFIX):] if value.startswith(HUB_PREFIX) else value
    if parse_hub_id(hub) is not None:
        return HUB_PREFIX + hub
    return _prefixed_public_source(value, named)


def _refuse_bad_revision(value: str) -> None:
    """:data:`~cxrdemo.locations.REVISION_REFUSED` (one line, the same for every bad revision, in and out of public
    mode) when ``value``, with or without a format prefix or ``hf://``, is a Hub id whose revision is no branch, tag
    or commit name; checked before anything looks at a file or the network."""
    from ..locations import REVISION_REFUSED, has_bad_revision
    from ..models.loader import parse_source
    from ..models.weights import HUB_PREFIX

    where = parse_source(value).where
    if has_bad_revision(where[len(HUB_PREFIX):] if where.startswith(HUB_PREFIX) else where):
        raise InputError(REVISION_REFUSED)


#: The canonical prefix of each format that a public server accepts before a Hub id (cxrdemo.models.loader).
_HUB_FORMAT_PREFIXES = {"cxrdemo": "cxrdemo:", "timm": "timm:", "transformers": "hf:"}


def _prefixed_public_source(value: str, named: Mapping[str, str]) -> str:
    """Public mode: a format prefix before a Hub id (``timm:owner/name``, ``hf:owner/name@rev``) becomes that prefix
    before the Hub-only form (never a server folder); ``xrv:NAME`` (or a bare name) is kept when NAME is one of
    torchxrayvision's own weight names (fetched by the library from its own addresses, never a path). Anything else
    is refused (:func:`refusal`)."""
    from ..models.loader import is_xrv_name, parse_source
    from ..models.weights import HUB_PREFIX, parse_hub_id

    spec = parse_source(value)
    where = spec.where[len(HUB_PREFIX):] if spec.where.startswith(HUB_PREFIX) else spec.where
    if spec.format in _HUB_FORMAT_PREFIXES and parse_hub_id(where) is not None:
        return _HUB_FORMAT_PREFIXES[spec.format] + HUB_PREFIX + where
    if spec.format in ("torchxrayvision", None) and is_xrv_name(spec.where):
        return "xrv:" + spec.where
    raise InputError(refusal(named))


def source_label(text: str | None, public: bool, named: Mapping[str, str]) -> str:
    """What the outputs call the model of ``text`` (after :func:`check_source` accepted it): in public mode its name,
    ``default`` or its Hub id; outside it a name of ``CXRDEMO_MODELS``, else ``""`` (the outputs name the folder)."""
    from ..models.weights import HUB_PREFIX

    value = str(text or "").strip()
    if public:
        value = value[len(HUB_PREFIX):] if value.startswith(HUB_PREFIX) else value
        return value or DEFAULT_NAME
    return value if value in named and value != DEFAULT_NAME else ""


def source_choices(environ: Mapping[str, str] | None = None) -> list[str]:
    """The names the model fields offer (``default`` first)."""
    return list(named_models(environ))


def hide_paths(message: str) -> str:
    """``message`` with every absolute path (``/srv/models/x``, ``~/y``, ``C:\\z``) cut to its last part: what a
    public server shows instead of its folders in an error line."""
    return _ABSOLUTE.sub(lambda m: m.group(1) or "…", message)
