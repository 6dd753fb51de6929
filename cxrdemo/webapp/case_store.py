"""The server's cases, within one memory budget: a browser session keeps a :class:`CaseHandle` (a random token),
the :class:`~cxrdemo.webapp.state.Case` itself (the radiograph at full size, the cached forward pass, the analysis)
lives in one :class:`CaseStore` owned by the app's resources.

Kept in ``gr.State``, each session held its own full-size radiograph: 200 sessions of 7000x7000 images took a server
from 1.45 GB to 10.75 GB for up to 2 hours (issue 19). Here every case is counted in bytes (:func:`case_bytes`) and the
least recently used are dropped once the total passes the budget (``CXRDEMO_STATE_BUDGET_MB``, default
:data:`DEFAULT_BUDGET_MB` MB), or when unused for :data:`MAX_IDLE_S`. A session whose case was dropped gets a
one-line :class:`CaseExpired` ("upload it again"), never a traceback.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..publicmode import clip_text
from .state import Case

#: The variable that sets the budget, in MB (MiB).
BUDGET_ENV = "CXRDEMO_STATE_BUDGET_MB"
#: Default budget of all sessions' cases together, MiB: 5 cases of 7000x7000 px, or ~250 of NIH's 1024 px films.
DEFAULT_BUDGET_MB = 256
#: A case unused this long is dropped (what ``gr.State(time_to_live=7200)`` did per session).
MAX_IDLE_S = 7200.0
#: Counted per case on top of its arrays: the Python objects around them (dataclasses, strings, small lists).
OBJECT_OVERHEAD = 64 * 1024


class CaseExpired(InputError):
    """The session's case is no longer kept on the server (memory budget or idle time): analyse it again."""


@dataclass(frozen=True)
class CaseHandle:
    """What a browser session keeps: the token of its case in the :class:`CaseStore` and the image's name.

    Attributes:
        token: random, unguessable (another session cannot name it).
        image: the radiograph's file name, for the "expired" message.
    """

    token: str
    image: str = ""


def state_budget(environ: Mapping[str, str] | None = None) -> int:
    """The budget in bytes: ``CXRDEMO_STATE_BUDGET_MB`` MiB (a positive number), else :data:`DEFAULT_BUDGET_MB`."""
    from ..envnumbers import env_number

    return int(env_number(BUDGET_ENV, DEFAULT_BUDGET_MB, environ, maximum=2**20) * 2**20)


def case_bytes(case: Any) -> int:
    """The bytes ``case`` holds: every NumPy array and torch tensor reachable through its dataclass fields, lists,
    tuples and dicts (each buffer once), plus :data:`OBJECT_OVERHEAD`."""
    seen: set[int] = set()
    buffers: set[int] = set()  # a view counts its base array's memory, once
    total = OBJECT_OVERHEAD
    stack = [case]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in buffers:
                buffers.add(id(base))
                total += int(base.nbytes)
        elif hasattr(obj, "untyped_storage") and hasattr(obj, "element_size"):  # a torch tensor (torch-free here)
            storage = obj.untyped_storage()
            if storage.data_ptr() not in buffers:
                buffers.add(storage.data_ptr())
                total += int(storage.nbytes())
        elif dataclasses.is_dataclass(obj):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif isinstance(obj, Mapping):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
    return total


class CaseStore:
    """A thread-safe LRU of cases keyed by random token, byte-accounted against a budget; owned by the app.

    The newest case is always kept, even alone over the budget (its visitor is looking at it); older ones go first.
    So memory stays within the budget plus one case.
    """

    def __init__(
        self,
        budget_bytes: int | None = None,
        max_idle_s: float = MAX_IDLE_S,
        sizer: Callable[[Any], int] = case_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``budget_bytes``: default :func:`state_budget`; ``sizer`` and ``clock`` are for tests."""
        self.budget = state_budget() if budget_bytes is None else int(budget_bytes)
        self.max_idle_s = max_idle_s
        self._sizer, self._clock = sizer, clock
        self._items: OrderedDict[str, tuple[Case, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted = 0

    @property
    def bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def put(self, case: Case, handle: CaseHandle | None = None) -> CaseHandle:
        """Keep ``case`` (under ``handle``'s token when given: one entry per session) and return its handle."""
        token = handle.token if isinstance(handle, CaseHandle) else secrets.token_urlsafe(18)
        size = self._sizer(case)
        now = self._clock()
        with self._lock:
            self._remove(token)
            self._items[token] = (case, size, now)
            self._bytes += size
            self._shrink(now)
        return CaseHandle(token, clip_text(case.radiograph.name))

    def get(self, handle: CaseHandle | None) -> Case | None:
        """The case of ``handle`` (``None`` for no handle: nothing analysed yet); :class:`CaseExpired` when dropped."""
        if handle is None:
            return None
        if not isinstance(handle, CaseHandle):
            raise InputError("this page's state is not a case handle; reload the page and analyse the radiograph")
        now = self._clock()
        with self._lock:
            item = self._items.get(handle.token)
            if item is not None and now - item[2] > self.max_idle_s:
                self._remove(handle.token)
                item = None
            if item is None:
                name = f" ({handle.image})" if handle.image else ""
                raise CaseExpired(
                    f"this case{name} expired: the server keeps only the most recent cases within its memory budget "
                    f"({self.budget / 2**20:.0f} MB); upload the radiograph again"
                )
            case, size, _ = item
            self._items[handle.token] = (case, size, now)
            self._items.move_to_end(handle.token)
            return case

    def peek(self, handle: CaseHandle | None) -> Case | None:
        """The case of ``handle``, or ``None`` when there is none or it was dropped (never raises)."""
        try:
            return self.get(handle)
        except InputError:
            return None

    def drop(self, handle: CaseHandle | None) -> None:
        """Forget ``handle``'s case (its session ended)."""
        if isinstance(handle, CaseHandle):
            with self._lock:
                self._remove(handle.token)

    def _remove(self, token: str) -> None:
        item = self._items.pop(token, None)
        if item is not None:
            self._bytes -= item[1]

    def _shrink(self, now: float) -> None:
        """Drop idle cases, then the least recently used until within the budget (the newest always stays)."""
        for token in [t for t, (_, _, used) in self._items.items() if now - used > self.max_idle_s]:
            self._remove(token)
            self.evicted += 1
        while self._bytes > self.budget and len(self._items) > 1:
            self._remove(next(iter(self._items)))
            self.evicted += 1
