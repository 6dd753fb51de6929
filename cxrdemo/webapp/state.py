"""The values a browser session keeps and shows: :class:`Settings` (the controls), :class:`Case` (one radiograph
under review, kept in ``gr.State``) and :class:`CaseView` (what the page shows for it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..boxes import Box
from ..cams import CamRequest
from ..compare import GroundTruth
from ..imaging import Radiograph
from ..results import Analysis

if TYPE_CHECKING:  # imported lazily at run time: torch and the model stack load on first use
    from ..predict import Inference
    from ..render import Panels
    from .models import ModelKey

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``: how a long step tells the page where it is (the app passes ``gr.Progress``)."""


def no_progress(fraction: float, message: str) -> None:
    """A :data:`Progress` that reports nowhere."""
    return None


@dataclass(frozen=True)
class Settings:
    """What the user chose in the controls.

    Attributes:
        source: model source: ``""``/``"default"`` (embedded weights or ``$CXRDEMO_WEIGHTS``), a folder, or a Hub
            id ``owner/name[@revision]``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        cam: the CAM method, target class (``None`` = top-1) and box threshold, checked.
        score_threshold: a detector's boxes are shown above it (``None``: the model's documented one, else 0.5);
            ignored for a classifier.
    """

    source: str = ""
    device: str = "auto"
    cam: CamRequest = field(default_factory=CamRequest)
    score_threshold: float | None = None

    @classmethod
    def from_controls(
        cls,
        source: str | None,
        device: str | None,
        method: str | None,
        target: str | None,
        threshold: int | float | str | None,
        score_threshold: int | float | str | None = None,
    ) -> "Settings":
        """Settings from raw control values, checked (unknown method or threshold, a score threshold outside
        [0, 1]: :class:`~cxrdemo.errors.InputError`)."""
        return cls(
            source=(source or "").strip(),
            device=(device or "auto").strip() or "auto",
            cam=CamRequest.of(method, target, threshold),
            score_threshold=_score_threshold(score_threshold),
        )


def _score_threshold(value: int | float | str | None) -> float | None:
    """A detector score threshold control's value: blank -> ``None``, else a number in [0, 1] (one-line error)."""
    from ..compare import check_score_threshold

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check_score_threshold(value, "detector score threshold")


@dataclass
class Case:
    """One radiograph under review: everything needed to redo the CAM or the comparison without the network.

    Attributes:
        radiograph: the decoded image (original size).
        key: the model that made :attr:`inference`.
        inference: the forward pass (probabilities, boxes, feature map).
        settings: the settings of :attr:`analysis`.
        truth: the user's ground-truth boxes (original pixels, checked); ``None`` means "NIH's list", ``()`` that
            the user applied no boxes (no ground truth).
        analysis: the current result.
        shown_notes: the notes already shown to the user as a warning for this radiograph (each is shown once).
        ground_truth: the checked ground truth of :attr:`analysis`, reused while the model is unchanged (``None``:
            check it again).
    """

    radiograph: Radiograph
    key: "ModelKey"
    inference: "Inference"
    settings: Settings
    truth: tuple[Box, ...] | None
    analysis: Analysis
    shown_notes: frozenset[str] = frozenset()
    ground_truth: GroundTruth | None = None

    @property
    def truth_source(self) -> str:
        """``"user"``, ``"NIH"`` or ``""`` (no ground truth)."""
        return self.analysis.truth_source


@dataclass
class CaseView:
    """What the page shows for a case (built by :func:`cxrdemo.webapp.view.build_view`).

    Attributes:
        case: the case (the app keeps it in ``gr.State``).
        panels: the four rendered panels (prediction, comparison, probabilities, CAM).
        label: ``{"Class (threshold 0.50)": probability}`` for a ranked ``gr.Label``, highest first.
        summary: Markdown: top class, notes, the IoU table (or how to add ground truth), CAM, timings.
        json: the CLI / API JSON of the analysis (its ``timings_ms`` includes ``render``).
        target_choices: ``(label, value)`` pairs for the target-class control: top-1 first, then every class.
        messages: notes not yet shown for this radiograph, to show once as a warning (the summary lists all).
        forward_ran: whether this view needed a forward pass (``False`` when the cached one was reused).
        render_ms: time the case waited for its panels once the analysis was done (the film is resized for display
            while the network runs); kept here: the analysis is never changed once built.
        redraw: the panels the page must replace (the others cannot have changed).
        target_info: a line under the target-class control (says when the method ignores the target).
        truth_table: Markdown shown beside *Apply ground truth*: the IoU table, or that there is no ground truth.
    """

    case: Case
    panels: "Panels"
    label: dict[str, float]
    summary: str
    json: dict[str, Any]
    target_choices: list[tuple[str, str]]
    messages: list[str] = field(default_factory=list)
    forward_ran: bool = True
    render_ms: float = 0.0
    redraw: tuple[str, ...] = ("prediction", "comparison", "probabilities", "cam")
    target_info: str = ""
    truth_table: str = ""

    @property
    def timings_ms(self) -> dict[str, float]:
        """Every stage's time, the analysis' and the drawing of the panels."""
        return {**self.case.analysis.timings_ms, "render": self.render_ms}

    @property
    def status(self) -> str:
        """One line for the page's status bar (on the first screen, above the panels): the top finding, what ran
        and how long it took."""
        total = sum(self.timings_ms.values())
        how = "model run" if self.forward_ran else "CAM and comparison redone from the cached forward pass"
        top = self.case.analysis.top
        return (f"{self.case.analysis.image}: top finding **{top.label} {top.probability:.1%}**; "
                f"{how}, {total:.0f} ms of computation.")  # fmt: skip
