"""Options every command line shares: which model, with which weights, labels and
preprocessing, on which device; and how errors are printed.

Used by ``python -m explain``, ``python -m explain.evaluate`` and ``python -m embeddings``::

    parser = argparse.ArgumentParser(...)
    add_model_options(parser)
    args = parser.parse_args(argv)
    handle = load_model_from_args(args)

Options: ``--model SPEC`` (``pkg.module:factory(depth=56)`` takes factory arguments as Python
literals), ``--model-arg KEY=VALUE`` (repeatable), ``--weights``, ``--labels`` (comma-separated or
a file with one name per line), ``--input-size H[,W]``, ``--mean R,G,B``, ``--std R,G,B``,
``--resize`` (shorter side before a centre crop, ``none`` to resize straight to the input size, or
a crop fraction such as ``0.875``), ``--interpolation`` and ``--device``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import ExplainError, ModelLoadError
from .factory_spec import parse_model_args
from .models import DEFAULT, ModelHandle, load_model

MODEL_HELP = (
    "builtin:efficientnet-lite0 (ImageNet, offline), builtin:shapes, torchvision:<name>, "
    "hf:<hub id or folder>, or package.module:factory (arguments as in "
    "package.module:factory(depth=56))"
)


# -- parsing ----------------------------------------------------------------------------------
def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


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


# -- the options ------------------------------------------------------------------------------
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
    )


def error_line(exc: BaseException) -> str:
    """``"error: <message> Try: <hint>"`` on one line, for stderr."""
    return "error: " + " ".join(str(exc).split())
