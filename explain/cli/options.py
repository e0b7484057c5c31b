"""Arguments every command line shares: which model (with which weights, labels and
preprocessing, on which device), lists of layers and methods, numbers, the output folder.

::

    parser = command_parser(prog, description)  # with the model options
    parser.add_argument(...)  # the command's own
    add_output_options(parser, quiet_help="...")  # --out DIR, -q
    args = parser.parse_args(argv)
    handle = load_model_from_args(args)
    layers = layer_names(handle, args.layers)

Model options: ``--model SPEC`` (``pkg.module:factory(depth=56)`` takes factory arguments as
Python literals), ``--model-arg KEY=VALUE`` (repeatable), ``--weights``, ``--labels``
(comma-separated or a file with one name per line), ``--input-size H[,W]``, ``--mean R,G,B``,
``--std R,G,B``, ``--resize`` (shorter side before a centre crop, ``none`` to resize straight to
the input size, or a crop fraction such as ``0.875``), ``--interpolation`` and ``--device``; for
CLIP models (``clip:<hub id or folder>``, ``open_clip:<name>``) the classes are text prompts:
``--prompts "a dog;a cat"`` or ``--prompts-file FILE`` (one prompt per line).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cams import METHODS, check_method
from ..errors import ExplainError, ModelLoadError, PromptError
from ..factory_spec import parse_model_args
from ..layers import resolve_layers
from ..models import DEFAULT, ModelHandle, load_model, spec_help
from ..models.prompts import check_prompts

#: The sources and how to write their specs, from the registry (one place for every command
#: line, the dashboard's picker and the error hints).
MODEL_HELP = (
    f"{spec_help()} Factory arguments as in package.module:factory(depth=56), or --model-arg;"
    " CLIP specs take --prompts."
)
LAYERS_HELP = (
    "comma-separated module paths; 'default' (the usual Grad-CAM layer), 'all' (every layer "
    "with a map), or patterns such as 'layer4.*'"
)


# -- lists and numbers ------------------------------------------------------------------------
def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def unit_float(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def pixel_box(text: str) -> tuple[int, int, int, int]:
    """An argparse type: ``X0,Y0,X1,Y1`` in pixels."""
    parts = split_list(text)
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"give X0,Y0,X1,Y1 in pixels, got {text!r}")
    try:
        x0, y0, x1, y1 = (int(p) for p in parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"give four whole numbers, got {text!r}") from exc
    return x0, y0, x1, y1


def _size(text: str) -> tuple[int, int]:
    parts = split_list(text.lower().replace("x", ","))
    try:
        sizes = [int(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"give H or H,W in pixels, got {text!r}") from exc
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"give H or H,W in pixels, got {text!r}")
    return (sizes[0], sizes[-1])


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = [float(p) for p in split_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"give three numbers R,G,B, got {text!r}") from exc
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"give three numbers R,G,B (or one), got {text!r}")
    return values[0], values[1], values[2]


def _resize(text: str) -> dict[str, Any]:
    """``none`` -> no crop; an integer -> shorter side; a fraction in (0, 1] -> crop fraction."""
    if text.strip().lower() in ("none", "no", "squash"):
        return {"resize": None}
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"give a shorter side in pixels, a crop fraction or 'none', got {text!r}"
        ) from exc
    if 0 < value <= 1 and not text.strip().isdigit():
        return {"crop_fraction": value}
    if value >= 1 and value == int(value):
        return {"resize": int(value)}
    raise argparse.ArgumentTypeError(
        f"give a shorter side in pixels, a crop fraction or 'none', got {text!r}"
    )


# -- values that need the model or the registry -----------------------------------------------
def parse_weights(text: str) -> Any:
    """``DEFAULT``/``pretrained`` -> pretrained, ``none``/``random`` -> random init, else a file
    or a weights name."""
    if Path(text).exists():
        return text
    if text.lower() in ("default", "pretrained"):
        return DEFAULT
    if text.lower() in ("none", "random"):
        return None
    return text


def parse_labels(text: str | None) -> list[str] | None:
    """Class names from a file (one per line; blank lines ignored) or a comma-separated list."""
    if not text:
        return None
    path = Path(text).expanduser()
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExplainError(f"Cannot read the labels file {path}: {exc}") from exc
    else:
        lines = text.split(",")
    labels = [line.strip() for line in lines if line.strip()]
    if not labels:
        raise ExplainError(f"--labels {text!r} gives no class name.")
    return labels


def parse_prompts(text: str | None, file: str | Path | None) -> list[str] | None:
    """CLIP prompts from ``--prompts`` (separated by ``;`` or new lines: a prompt may hold
    commas) and / or ``--prompts-file`` (one per line, blank lines ignored); ``None`` when
    neither is given."""
    if text is None and file is None:
        return None
    lines: list[str] = []
    if file is not None:
        path = Path(file).expanduser()
        try:
            lines.extend(path.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"Cannot read the prompts file {path}: {exc}") from exc
    if text is not None:
        lines.extend(text.replace(";", "\n").splitlines())
    return check_prompts(lines)


def resolve_methods(text: str) -> list[str]:
    """Comma-separated method names (``grad-cam``, ``Score_CAM``, ``gradcam++`` ...) or
    ``all`` -> canonical names from :data:`explain.METHODS`."""
    out: list[str] = []
    for token in split_list(text):
        if token.lower() == "all":
            out.extend(METHODS)
            continue
        try:
            out.append(check_method(token).name)
        except ExplainError as exc:
            raise ExplainError(
                f"Unknown method {token!r}.",
                hint=f"choose from {', '.join(METHODS)} (comma-separated), or 'all'.",
            ) from exc
    if not out:
        raise ExplainError("No method was given.", hint="e.g. --method gradcam")
    return list(dict.fromkeys(out))


def layer_names(handle: ModelHandle, text: str, *, maps_only: bool = True) -> list[str]:
    """``--layers`` (comma-separated paths, ``default``, ``all``, patterns) -> module paths, by
    :func:`explain.layers.resolve_layers`."""
    return [info.name for info in resolve_layers(handle, split_list(text), maps_only=maps_only)]


# -- the options ------------------------------------------------------------------------------
def command_parser(
    prog: str, description: str, epilog: str | None = None, *, model_required: bool = True
) -> argparse.ArgumentParser:
    """A command's argument parser, with the model options every command takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    add_model_options(parser, required=model_required)
    return parser


def add_model_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add the model options (see the module docstring) to ``parser``, in their own group."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, metavar="SPEC", help=MODEL_HELP)
    group.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword argument for a package.module:factory model (a Python literal); "
        "repeat for several, e.g. --model-arg depth=56",
    )
    group.add_argument(
        "--weights",
        default=DEFAULT,
        metavar="W",
        help="DEFAULT (pretrained, the default), none (random init), a weights name such as "
        "IMAGENET1K_V2, or a state-dict / checkpoint / safetensors file",
    )
    group.add_argument(
        "--labels",
        metavar="NAMES|FILE",
        help="class names: comma-separated, or a text file with one name per line",
    )
    group.add_argument(
        "--prompts",
        metavar="'P1;P2'",
        help="CLIP models: the classes, as text prompts separated by ';' (e.g. 'a dog;a cat "
        "wearing a hat')",
    )
    group.add_argument(
        "--prompts-file",
        metavar="FILE",
        help="CLIP models: a text file with one prompt per line",
    )
    group.add_argument(
        "--input-size",
        type=_size,
        metavar="H[,W]",
        help="the model's input size; without --resize, images are resized straight to it",
    )
    group.add_argument(
        "--mean", type=_triple, metavar="R,G,B", help="normalisation mean of values in [0, 1]"
    )
    group.add_argument(
        "--std", type=_triple, metavar="R,G,B", help="normalisation std of values in [0, 1]"
    )
    group.add_argument(
        "--resize",
        type=_resize,
        metavar="N|F|none",
        help="resize policy: N = shorter side in pixels before a centre crop to the input "
        "size, F = crop fraction (0.875: crop 224 from 256), none = resize straight to the "
        "input size",
    )
    group.add_argument(
        "--interpolation", choices=("bilinear", "bicubic", "nearest"), help="(default: model's)"
    )
    group.add_argument("--device", default="auto", help="auto (the default), cpu, cuda, cuda:1")


def add_output_options(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    """``--out DIR`` (required) and ``-q/--quiet``."""
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def add_engine_options(parser: argparse.ArgumentParser, block_size: int) -> None:
    """``--engine``, ``--address``, ``--num-workers``, ``--block-size``: run the work in blocks
    (in this process or on Ray) and write a run folder to ``--out``."""
    group = parser.add_argument_group(
        "engine (dataset-scale runs: results go to --out as a run folder of Parquet blocks; "
        "an interrupted run resumes)"
    )
    group.add_argument(
        "--engine",
        choices=("local", "ray"),
        help="local (this process) or ray (a pool of model workers on a Ray cluster)",
    )
    group.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster: ray://HOST:10001, HOST:6379 or auto (default: a new local Ray); "
        "implies --engine ray",
    )
    group.add_argument(
        "--num-workers",
        type=positive_int,
        metavar="N",
        help="Ray workers, each with the model loaded once (default: one per GPU, else per "
        "CPU); implies --engine ray",
    )
    group.add_argument(
        "--block-size",
        type=positive_int,
        default=block_size,
        metavar="N",
        help=f"images per block file (default: {block_size})",
    )


def engine_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~explain.runs.Engine` the engine options ask for, or ``None`` when none
    was given (the command's usual in-memory path)."""
    if args.engine is None and args.address is None and args.num_workers is None:
        return None
    from ..runs import resolve_engine

    return resolve_engine(args.engine, address=args.address, num_workers=args.num_workers)


def preprocess_overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    """The preprocessing fields given on the command line (``None`` when none was): the model
    keeps its own for the rest (ImageNet's defaults for a package.module:factory model)."""
    fields: dict[str, Any] = {}
    if args.input_size is not None:
        fields["input_size"] = args.input_size
    if args.mean is not None:
        fields["mean"] = args.mean
    if args.std is not None:
        fields["std"] = args.std
    if args.resize is not None:
        fields.update(args.resize)
    if args.interpolation is not None:
        fields["interpolation"] = args.interpolation
    return fields or None


def load_model_from_args(args: argparse.Namespace) -> ModelHandle:
    """:func:`~explain.load_model` with the options of :func:`add_model_options`."""
    if not args.model:
        raise ModelLoadError("No model was given.", hint="e.g. --model builtin:efficientnet-lite0")
    return load_model(
        args.model,
        weights=parse_weights(str(args.weights)),
        device=args.device,
        labels=parse_labels(args.labels),
        preprocess=preprocess_overrides(args),
        model_args=parse_model_args(args.model_arg) or None,
        prompts=parse_prompts(args.prompts, args.prompts_file),
    )
