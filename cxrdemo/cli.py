"""Command line: argument parsing only; every subcommand calls package functions.

    python -m cxrdemo predict IMAGE [IMAGE ...] [--weights SRC] [--cam METHOD] [--target CLASS]
                                    [--threshold N] [--device D] [--json PATH|-] [--render DIR] [--debug]
    python -m cxrdemo train ...      (see cxrdemo.train)
    python -m cxrdemo cv ...         (see cxrdemo.cv_command)
    python -m cxrdemo soup ...       (see cxrdemo.soup)
    python -m cxrdemo evaluate ...   (see cxrdemo.evaluate)
    python -m cxrdemo bench ...      (see cxrdemo.bench)

Errors: exit code 1 and one line on stderr starting with ``error:``; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import CxrDemoError


def _add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from .cams import CAM_METHOD_KEYS as CAM_METHODS, DEFAULT_CAM_THRESHOLD

    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or DICOM radiographs")
    p.add_argument("--weights", default=None, metavar="SRC", help="model folder, Hub id owner/name[@rev] (default: $CXRDEMO_WEIGHTS or weights/)")
    p.add_argument("--sha256", default=None, help="refuse weights whose model.safetensors has another sha256")
    p.add_argument("--cam", default="gradcam", metavar="METHOD", help=f"CAM method: {', '.join(CAM_METHODS)} or none (default gradcam)")
    p.add_argument("--target", default=None, metavar="CLASS", help="class the CAM explains (default: top-1)")
    p.add_argument("--threshold", type=int, default=DEFAULT_CAM_THRESHOLD, metavar="N", help="CAM box threshold 1..254 (CLN: 127 or 180)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--json", default="-", metavar="PATH|-", help="write JSON: '-' prints one line per image (default); a path gets a JSON list")
    p.add_argument("--render", default=None, metavar="DIR", help="also write the four panels and their composite as PNG into DIR")


def run_predict(args: argparse.Namespace) -> int:
    """``predict``: analyse each image, print/write JSON, optionally render; 1 if any image failed."""
    from .imaging import load_image
    from .predict import Predictor

    predictor = Predictor.from_source(args.weights, device=args.device, sha256=args.sha256)
    cam_method = None if str(args.cam).lower() == "none" else args.cam
    if cam_method:
        from .cams import check_method, check_threshold

        check_method(cam_method)
        check_threshold(args.threshold)
    if args.target:
        predictor.class_index(args.target)
    render_dir = Path(args.render) if args.render else None
    results: list[dict[str, Any]] = []
    failed = 0
    for image in args.images:
        try:
            radiograph = load_image(image)
            analysis = predictor.analyse(radiograph, cam_method=cam_method, target=args.target, cam_threshold=args.threshold)
            if render_dir is not None:
                _render(radiograph, analysis, render_dir)
        except CxrDemoError as exc:
            failed += 1
            message = str(exc)
            # Most messages start with the file already ("x.png is corrupt..."): never say the path twice.
            named = str(image) in message or Path(str(image)).name in message
            print(f"error: {message}" if named else f"error: {image}: {message}", file=sys.stderr)
            continue
        for note in analysis.notes:
            print(f"note: {analysis.image}: {note}", file=sys.stderr)
        doc = analysis.to_json()
        results.append(doc)
        if args.json == "-":
            print(json.dumps(doc), flush=True)
    if args.json != "-":
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if render_dir is not None and results:
        print(f"note: panels of {len(results)} image(s) written to {render_dir.resolve()}", file=sys.stderr)
    return 1 if failed else 0


def _render(radiograph, analysis, folder: Path) -> None:
    """``--render``: ``<stem>_{prediction,comparison,probabilities,cam}.png`` (the disclaimer, and the training /
    validation note if any, under each) and their composite ``<stem>_panels.png`` in ``folder`` (:func:`run_predict` says where,
    once). An unwritable folder is a one-line error (:class:`~cxrdemo.render.files.PanelWriteError`)."""
    from .render import Hints, render_panels
    from .render.files import write_panels, write_report

    hints = Hints(no_cam="rerun with --cam METHOD to see where the model looked")
    panels = render_panels(radiograph, analysis, hints=hints)
    stem = Path(analysis.image).stem or "radiograph"
    write_panels(panels, folder, stem, film_format="png", footer_lines=panels.footer)
    write_report(panels, folder, stem, name="panels")


def _subcommands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]]:
    """name -> (help, add_arguments, run). Tool modules are imported lazily so ``predict`` starts fast."""

    def lazy(module: str, adder: str, runner: str):
        def add(p: argparse.ArgumentParser) -> None:
            getattr(__import__(f"cxrdemo.{module}", fromlist=[adder]), adder)(p)

        def run(a: argparse.Namespace) -> int:
            return getattr(__import__(f"cxrdemo.{module}", fromlist=[runner]), runner)(a)

        return add, run

    return {
        "predict": ("analyse radiographs and print JSON", _add_predict_arguments, run_predict),
        "train": ("train a multi-task model (CLN protocol)", *lazy("train", "add_train_arguments", "run_train")),
        "evaluate": ("evaluate a model: AUC and IoU accuracy (CLN Tables 1-2) and its CAMs (plausibility, faithfulness, sanity), with CIs", *lazy("evaluate", "add_evaluate_arguments", "run_evaluate")),
        "cv": ("k-fold cross-validation: a recipe's out-of-fold estimate, its thresholds, and the card of the model refitted on every image", *lazy("cv_command", "add_cv_arguments", "run_cv_command")),
        "soup": ("average the weights of models trained on one split into one model (a model soup), with its card", *lazy("soup", "add_soup_arguments", "run_soup")),
        "bench": ("benchmark the pipeline against the bare network", *lazy("bench", "add_bench_arguments", "run_bench")),
    }


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s arguments are loaded (none when ``None``: ``--help`` stays torch-free)."""
    parser = argparse.ArgumentParser(prog="python -m cxrdemo", description="cxrdemo: chest X-ray multi-task model validation (research use only)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add, _) in _subcommands().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if command == name:
            add(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    commands = _subcommands()
    parser = build_parser(command if command in commands else None)
    args = parser.parse_args(argv)
    args.argv = argv  # what the user typed after the program name (train records it in the model card)
    try:
        return commands[args.command][2](args)
    except CxrDemoError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: unexpected {exc.__class__.__name__}: {exc} (rerun with --debug and report it)", file=sys.stderr)
        return 1
