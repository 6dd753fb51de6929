"""Issue 27 E5: every numeric environment setting goes through one checked parser (cxrdemo.envnumbers); a bad value
(text, NaN, infinity, negative) is one line naming the variable, and the app refuses to start with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from cxrdemo.envnumbers import env_number
from cxrdemo.errors import InputError


def test_env_number_accepts_numbers_and_the_default() -> None:
    assert env_number("X", 50, {}) == 50 and env_number("X", 50, {"X": "  "}) == 50
    assert env_number("X", 50, {"X": "2.5"}) == 2.5 and env_number("X", 1, {"X": "4"}, integer=True) == 4
    assert env_number("X", 1, {"X": "8.0"}, integer=True, minimum=1, maximum=64) == 8


@pytest.mark.parametrize(
    ("raw", "kwargs", "words"),
    [
        ("nan", {}, "is not a positive number"),
        ("inf", {}, "is not a positive number"),
        ("-inf", {}, "is not a positive number"),
        ("-3", {}, "is not a positive number"),
        ("0", {}, "is not a positive number"),
        ("fifty", {}, "is not a positive number"),
        ("1e400", {}, "is not a positive number"),
        ("2.5", {"integer": True, "minimum": 1}, "is not a whole number of at least 1"),
        ("70000", {"integer": True, "minimum": 1, "maximum": 65535}, "is not a whole number in 1..65535"),
        ("A" * 10_000, {}, "is not a positive number"),
    ],
)
def test_env_number_refuses_with_one_line_naming_the_variable(raw: str, kwargs: dict, words: str) -> None:
    with pytest.raises(InputError, match=words) as err:
        env_number("CXRDEMO_X", 5, {"CXRDEMO_X": raw}, **kwargs)
    message = str(err.value)
    assert message.startswith("CXRDEMO_X=") and "\n" not in message and len(message) < 200


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CXRDEMO_MAX_UPLOAD_MB", "nan"), ("CXRDEMO_MAX_UPLOAD_MB", "inf"), ("CXRDEMO_MAX_DICOM_MB", "inf"),
     ("CXRDEMO_STATE_BUDGET_MB", "-1"), ("CXRDEMO_CONCURRENCY", "many"), ("GRADIO_SERVER_PORT", "99999")],
)
def test_the_app_refuses_to_start_with_one_line(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """check_settings (run by app.main and prepare) reads every numeric setting: the first bad one is the error."""
    from cxrdemo.webapp.resources import check_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError, match=rf"^{variable}='{value}' is not "):
        check_settings()


def test_python_app_py_stops_at_start_with_the_line(tmp_path) -> None:
    """``CXRDEMO_MAX_UPLOAD_MB=nan python app.py``: exit 1, one ``error:`` line, no traceback, nothing served."""
    env = {"PATH": "/usr/bin:/bin", "CXRDEMO_MAX_UPLOAD_MB": "nan", "GRADIO_ANALYTICS_ENABLED": "False", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr[-2000:]
    assert lines[-1].startswith("error: CXRDEMO_MAX_UPLOAD_MB='nan' is not a positive number"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
