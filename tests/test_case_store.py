"""Sessions keep a handle; the cases live in one byte-budgeted store (issue 19, finding 5)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.errors import InputError
from cxrdemo.imaging import Radiograph
from cxrdemo.webapp.case_store import (
    BUDGET_ENV,
    DEFAULT_BUDGET_MB,
    OBJECT_OVERHEAD,
    CaseExpired,
    CaseHandle,
    CaseStore,
    case_bytes,
    state_budget,
)

MB = 2**20
IMAGE = "00000468_017.png"


@pytest.fixture(scope="module")
def case(boxed_view):
    return boxed_view.case


def _sized(case, side: int):
    """``case`` with a ``side x side`` radiograph (its pixels are what a large upload costs)."""
    pixels = np.zeros((side, side), dtype=np.uint8)
    return replace(case, radiograph=Radiograph(pixels, f"big{side}.png", "png"))


def test_case_bytes_counts_the_radiograph_and_the_forward_pass(case):
    size = case_bytes(case)
    arrays = case.radiograph.pixels.nbytes + case.inference.features.untyped_storage().nbytes()
    assert size >= arrays + OBJECT_OVERHEAD
    big = _sized(case, 2000)
    # Only the radiograph changed: the difference is exactly its pixels' difference (4,000,000 bytes vs the old).
    assert case_bytes(big) - size == big.radiograph.pixels.nbytes - case.radiograph.pixels.nbytes
    view = big.radiograph.pixels[:10]  # a view counts its whole base, once
    assert case_bytes([view, big.radiograph.pixels]) == OBJECT_OVERHEAD + big.radiograph.pixels.nbytes


def test_store_evicts_least_recently_used_beyond_the_budget(case):
    one = case_bytes(_sized(case, 1000))
    store = CaseStore(budget_bytes=3 * one)
    handles = [store.put(_sized(case, 1000)) for _ in range(3)]
    assert len(store) == 3 and store.bytes == 3 * one
    store.get(handles[0])  # used: now the most recent
    extra = store.put(_sized(case, 1000))
    assert len(store) == 3 and store.bytes <= store.budget and store.evicted == 1
    with pytest.raises(CaseExpired) as err:
        store.get(handles[1])  # the least recently used went
    message = str(err.value)
    assert "\n" not in message and "expired" in message and "upload the radiograph again" in message
    assert "big1000.png" in message
    for h in (handles[0], handles[2], extra):
        assert store.get(h) is not None


def test_same_session_reuses_its_slot(case):
    store = CaseStore(budget_bytes=100 * MB)
    handle = store.put(case)
    again = store.put(case, handle)
    assert again.token == handle.token and len(store) == 1 and store.bytes == case_bytes(case)


def test_newest_case_is_kept_even_over_the_budget(case):
    store = CaseStore(budget_bytes=1)
    first = store.put(case)
    second = store.put(case)
    assert store.get(second) is case and len(store) == 1
    assert store.peek(first) is None  # peek never raises
    with pytest.raises(CaseExpired):
        store.get(first)


def test_idle_cases_expire():
    now = [0.0]
    store = CaseStore(budget_bytes=100 * MB, max_idle_s=10, sizer=lambda c: 1, clock=lambda: now[0])
    fake = type("C", (), {"radiograph": Radiograph(np.zeros((16, 16), np.uint8), "a.png", "png")})()
    handle = store.put(fake)
    now[0] = 11.0
    with pytest.raises(CaseExpired):
        store.get(handle)
    assert store.bytes == 0


def test_no_handle_and_foreign_values(case):
    store = CaseStore(budget_bytes=MB)
    assert store.get(None) is None
    with pytest.raises(Exception, match="reload the page"):
        store.get("not-a-handle")  # type: ignore[arg-type]
    with pytest.raises(CaseExpired):
        store.get(CaseHandle("guessed-token"))
    store.drop("whatever")  # type: ignore[arg-type]  (Gradio's delete callback may pass anything)


def test_budget_variable():
    assert state_budget({}) == DEFAULT_BUDGET_MB * MB
    assert state_budget({BUDGET_ENV: "64"}) == 64 * MB
    assert state_budget({BUDGET_ENV: ""}) == DEFAULT_BUDGET_MB * MB
    for bad in ("x", "-1", "0", "nan", "inf"):  # issue 27 E5: one line naming the variable, never a silent default
        with pytest.raises(InputError, match=rf"^{BUDGET_ENV}='{bad}' is not a positive number"):
            state_budget({BUDGET_ENV: bad})


def test_many_threads_keep_the_accounting_exact(case):
    """Concurrent puts, gets and drops from 8 threads: the byte count always equals the sum of what is kept."""
    store = CaseStore(budget_bytes=10 * case_bytes(case))

    def work():
        for _ in range(50):
            h = store.put(case)
            store.peek(h)
            store.drop(h) if len(store) % 3 == 0 else None

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.bytes == len(store) * case_bytes(case) <= store.budget


def test_page_handlers_keep_a_handle_and_say_expired_in_one_line(tmp_path: Path, model_dir: Path, images_dir: Path):
    """Two sessions on a 1-byte budget: the second's analysis evicts the first's case; the first gets one line
    ("expired... upload again") from the next button it presses, then analyses again and works."""
    import gradio as gr

    import app_server

    module = app_server.load_app_module()
    from cxrdemo.webapp.resources import make_resources
    from cxrdemo.webapp.state import Settings

    (tmp_path / "none").mkdir()
    resources = make_resources(app_server.REPO, examples_folder=tmp_path / "none", export_root=tmp_path / "exports")
    resources.default = Settings(source=str(model_dir), device="cpu")
    resources.cases = CaseStore(budget_bytes=1)
    with gr.Blocks():
        ui = module.create_ui(resources)
        h = module.create_event_handlers(ui, resources)
    image = str(images_dir / IMAGE)
    controls = (str(model_dir), "cpu", "gradcam", "top-1", 127, None)
    first = h.analyse(image, *controls, None, None)[ui.case_state]
    assert isinstance(first, CaseHandle) and resources.cases.get(first).radiograph.name == IMAGE
    assert isinstance(h.settings(first, *controls, None)[ui.case_state], CaseHandle)
    second = h.analyse(image, *controls, None, None)[ui.case_state]
    assert second.token != first.token and len(resources.cases) == 1
    with pytest.raises(gr.Error) as err:
        h.apply(first, "100, 100, 300, 300, Nodule", None, (), None)
    assert "expired" in str(err.value) and "\n" not in str(err.value)
    again = h.analyse(image, *controls, first, None)[ui.case_state]
    assert again.token == first.token and resources.cases.get(again) is not None
