"""The ``cxrdemo`` command (also ``python -m cxrdemo``): parse the arguments, check them, call the package.

    cxrdemo predict IMAGE [IMAGE ...] [--weights SRC] [--cam METHOD] [--target CLASS]
                    [--threshold N] [--score-threshold T] [--device D] [--json PATH|-] [--render DIR] [--debug]
    cxrdemo train ...      (see cxrdemo.training.train)
    cxrdemo cv ...         (see cxrdemo.training.cv_command)
    cxrdemo soup ...       (see cxrdemo.training.soup)
    cxrdemo evaluate ...   (see cxrdemo.evaluate)
    cxrdemo bench ...      (see cxrdemo.bench.pipeline)

``predict`` checks its paths and settings before it imports torch (:func:`check_predict_arguments`), so a
mistyped path answers at once; ``--help`` imports nothing heavy. The subcommands' own modules are imported only
when they run. Errors: exit code 1 and one line on stderr starting with ``error:``; a traceback only with
``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import CxrDemoError, InputError


def _add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from .cams import CAM_METHOD_KEYS as CAM_METHODS, DEFAULT_CAM_THRESHOLD

    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or DICOM radiographs")
    p.add_argument("--weights", default=None, metavar="SRC", help="model folder, Hub id owner/name[@rev] (default: $CXRDEMO_WEIGHTS or weights/)")
    p.add_argument("--sha256", default=None, help="refuse weights whose model.safetensors has another sha256")
    p.add_argument("--cam", default="gradcam", metavar="METHOD", help=f"CAM method: {', '.join(CAM_METHODS)} or none (default gradcam)")
    p.add_argument("--target", default=None, metavar="CLASS", help="class the CAM explains (default: top-1)")
    p.add_argument("--threshold", type=int, default=DEFAULT_CAM_THRESHOLD, metavar="N", help="CAM box threshold 1..254 (CLN: 127 or 180)")
    p.add_argument("--score-threshold", type=float, default=None, metavar="T",
                   help="a detector's boxes shown above this score, 0..1 (default: the model's documented one, else 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--json", default="-", metavar="PATH|-", help="write JSON: '-' prints one line per image (default); a path gets a JSON list")
    p.add_argument("--render", default=None, metavar="DIR", help="also write the four panels and their composite as PNG into DIR")


def precheck_weights(source: str | None) -> None:
    """Check a local model folder's config files before torch is imported, so that a bad or hostile folder is refused
    with one line in a fraction of a second (the full checks run at load time). The format is read from the prefix
    or the files (:func:`cxrdemo.models.loader.folder_format`, torch-free): a cxrdemo config gets every check of
    :class:`~cxrdemo.models.config.ModelConfig`, a timm or transformers config its size bounds
    (:func:`cxrdemo.models.bounds.check_folder_bounds`).

    Raises:
        ConfigError: the folder's config.json is wrong (one line).
    """
    from .errors import CxrDemoError
    from .models.config import CONFIG_NAME, ModelConfig
    from .models.loader import folder_format, parse_source

    if not source:
        return
    try:
        spec = parse_source(str(source))
        path = Path(spec.where).expanduser()
        found = path.is_dir() and (path / CONFIG_NAME).is_file()
    except (CxrDemoError, OSError, ValueError):
        return  # the source's shape is checked (and explained) by check_predict_arguments
    if not found or spec.format == "torchxrayvision":
        return
    fmt = spec.format or folder_format(path)
    if fmt == "cxrdemo":
        ModelConfig.load(path)
    elif fmt in ("timm", "transformers"):  # a torchvision detector's config is checked by its adapter's reader
        from .models.bounds import check_folder_bounds

        check_folder_bounds(path, fmt)


def check_predict_arguments(args: argparse.Namespace) -> list[str]:
    """The checks of ``predict`` that need no model, run before torch is imported: the weight source names an
    existing folder or a Hub id, the CAM method and threshold are valid, the output paths can be written. Raises a
    one-line :class:`CxrDemoError` for those; returns the images whose bytes pass
    :func:`cxrdemo.imaging.check_image_file` (format from the magic, size caps, PNG/JPEG header), after printing one
    ``error:`` line for each that does not (a text file named ``.png`` is answered before torch is imported)."""
    from .imaging import check_image_file
    from .locations import check_source_shape, default_source

    text = str(args.weights).strip() if args.weights is not None else ""
    check_source_shape(default_source() if text in ("", "default") else text)
    if str(args.cam).lower() != "none":
        from .cams import check_method, check_threshold

        check_method(args.cam)
        check_threshold(args.threshold)
    if getattr(args, "score_threshold", None) is not None:
        from .compare import check_score_threshold

        check_score_threshold(args.score_threshold, "--score-threshold")
    if args.json != "-":
        out = Path(args.json)
        if out.is_dir():
            raise InputError(f"--json {args.json} is a folder; give a file name (or - to print)")
        if not out.parent.is_dir():
            raise InputError(f"--json {args.json}: the folder {out.parent} does not exist; create it first")
    if args.render and Path(args.render).exists() and not Path(args.render).is_dir():
        raise InputError(f"--render {args.render} is a file; give a folder (it is created when missing)")
    readable = []
    for image in args.images:
        try:
            check_image_file(Path(image))  # its bytes: format, size, header (torch-free)
        except CxrDemoError as exc:
            _print_image_error(image, exc)
            continue
        readable.append(image)
    return readable


def _print_image_error(image: str, exc: CxrDemoError) -> None:
    message = str(exc)
    # Most messages start with the file already ("x.png is corrupt..."): never say the path twice.
    named = str(image) in message or Path(str(image)).name in message
    print(f"error: {message}" if named else f"error: {image}: {message}", file=sys.stderr)


def run_predict(args: argparse.Namespace) -> int:
    """``predict``: analyse each image, print/write JSON, optionally render; 1 if any image failed."""
    precheck_weights(args.weights)
    images = check_predict_arguments(args)
    failed = len(args.images) - len(images)
    if not images:
        return 1
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
    for image in images:
        try:
            radiograph = load_image(image)
            analysis = predictor.analyse(radiograph, cam_method=cam_method, target=args.target, cam_threshold=args.threshold,
                                         score_threshold=getattr(args, "score_threshold", None))
            if render_dir is not None:
                _render(radiograph, analysis, render_dir)
        except CxrDemoError as exc:
            failed += 1
            _print_image_error(image, exc)
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


#: Path options of the tool subcommands checked before their modules (and torch) load: option -> what it names.
PATH_OPTIONS = {
    "--images": "folder",
    "--labels": "NIH-format label CSV file",
    "--boxes": "NIH-format box CSV file",
    "--teacher-predictions": "predictions CSV file",
    "--baseline-predictions": "predictions CSV file",
    "--names": "text file of image names",
}
#: Weight-source options of the tool subcommands (a folder or a Hub id, checked like ``predict --weights``).
SOURCE_OPTIONS = ("--weights", "--compare-weights")
#: The options each tool subcommand has checked early. ``train`` checks its CSVs itself, in an order its messages
#: rely on (a bad teacher file is named before a missing label file), and ``soup`` its ingredients first.
EARLY_CHECKS: dict[str, tuple[str, ...]] = {
    "evaluate": (*PATH_OPTIONS, *SOURCE_OPTIONS),
    "bench": (*PATH_OPTIONS, *SOURCE_OPTIONS),
    "train": ("--images",),
}


def check_path_options(argv: Sequence[str], options: Sequence[str]) -> None:
    """A one-line :class:`CxrDemoError` for one of ``options`` (of :data:`PATH_OPTIONS`, :data:`SOURCE_OPTIONS`) in
    ``argv`` (``--opt VALUE`` or ``--opt=VALUE``) that names nothing, before the subcommand's module imports torch;
    the subcommand still checks everything else itself."""
    from .locations import check_source_shape

    for i, arg in enumerate(argv):
        option, sep, value = arg.partition("=")
        if option not in options:
            continue
        if not sep:
            if i + 1 >= len(argv):
                continue  # argparse says that the value is missing
            value = argv[i + 1]
        if option in ("--labels", "--boxes"):
            from .datasets.names import strip_layout

            value = strip_layout(value)  # vindr:annotations_train.csv names annotations_train.csv
            if value.strip().lower() == "nih":
                continue  # NIH's embedded box list
        path = Path(value).expanduser()
        if option in SOURCE_OPTIONS:
            check_source_shape(value)
        elif PATH_OPTIONS[option] == "folder":
            if not path.is_dir():
                raise InputError(f"{option} {value} is not a folder; give the folder that holds the radiographs")
        elif not path.is_file():
            raise InputError(f"{value} does not exist; give an {PATH_OPTIONS[option]}" if PATH_OPTIONS[option].startswith("NIH")
                             else f"{value} does not exist; give a {PATH_OPTIONS[option]}")  # fmt: skip


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
        "train": ("train a multi-task model (CLN protocol)", *lazy("training.train", "add_train_arguments", "run_train")),
        "evaluate": ("evaluate a model: AUC and IoU accuracy (CLN Tables 1-2) and its CAMs (plausibility, faithfulness, sanity), with CIs", *lazy("evaluate", "add_evaluate_arguments", "run_evaluate")),
        "cv": ("k-fold cross-validation: a recipe's out-of-fold estimate, its thresholds, and the card of the model refitted on every image", *lazy("training.cv_command", "add_cv_arguments", "run_cv_command")),
        "soup": ("average the weights of models trained on one split into one model (a model soup), with its card", *lazy("training.soup", "add_soup_arguments", "run_soup")),
        "bench": ("benchmark the pipeline against the bare network", *lazy("bench.pipeline", "add_bench_arguments", "run_bench")),
    }


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s arguments are loaded (none when ``None``: ``--help`` stays torch-free)."""
    parser = argparse.ArgumentParser(prog="cxrdemo", description="cxrdemo: chest X-ray multi-task model validation (research use only)")
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
    if command in EARLY_CHECKS and not {"-h", "--help"} & set(argv):
        try:  # a mistyped path answers before the subcommand's module loads torch
            check_path_options(argv, EARLY_CHECKS[command])
        except CxrDemoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
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
