"""The ``explain`` command: class-activation maps for a batch of image files, written to a folder.

::

    python -m explain IMAGE... --model SPEC [--weights W] [--layers L1,L2] [--method gradcam|all]
                      [--target auto|IDX|NAME|topK] [--contrast IDX|NAME] --out DIR
                      [--prompts 'P1;P2' | --prompts-file FILE]  (CLIP models)
                      [--labels NAMES|FILE] [--input-size H[,W]] [--mean R,G,B --std R,G,B]
                      [--resize N|F|none] [--model-arg KEY=VALUE] [--device D]

The model options are those of every command line (:mod:`explain.cli.options`). With a CLIP
model the classes are the prompts, so ``--target`` and ``--contrast`` take prompts too.
``--contrast B`` explains "why the target rather than B" (the score ``logit[target] -
logit[B]``). Among several methods (``--method all``), those that do not apply to the model
(attention methods on a CNN, CAM without a pooling + linear head) are skipped with a note in the
summary; the run fails only when none applies.

For every image, method, layer (and class, with ``--target topK``) it writes
``<stem>__<method>__<layer>.png`` (the overlay), ``.npy`` (the normalised map, ``(H, W)``
float32 in [0, 1] at the model's input resolution) and ``.raw.npy`` (the map at the layer's
resolution, before normalisation), then one ``summary.json`` for the whole run: predictions,
targets, files written, files skipped (with reasons), timings and notes.

With ``--engine local|ray`` (or ``--address``, ``--num-workers``) the maps go instead to a run
folder in ``--out`` (:mod:`explain.runs.cams`: ``run.json`` and one Parquet file per block of
``--block-size`` images, written as each block is done, in this process or by Ray workers); the
same command again resumes an interrupted run.

Exit status (:mod:`explain.cli.command`): 0 when at least one image was explained, 1 when none
was (say, every file was unreadable), 2 for usage errors (unknown model, layer, method or class;
bad options), 130 when interrupted, with one clear message on stderr and no traceback; the
summary of an interrupted or failed run lists what was written before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..cams import METHOD_INFO, METHODS, CamResult, applicable_methods, compute_cams
from ..errors import ExplainError, MethodNotApplicable, TargetError
from ..images import LoadedImage, load_images
from ..models import ModelHandle
from ..predictions import top_classes
from ..progress import Progress, notify, within
from ..render import COLORMAPS, gradient_image, overlay
from ..targets import Contrast, TopK
from .command import NOTHING_DONE, OK, prepare_out, progress_bar, run_command, safe_part, say
from .options import (
    LAYERS_HELP,
    add_engine_options,
    add_output_options,
    command_parser,
    engine_from_args,
    layer_names,
    load_model_from_args,
    positive_int,
    resolve_methods,
    unit_float,
)

PROG = "python -m explain"
SUMMARY_NAME = "summary.json"
#: Predictions listed per image in the summary.
TOP_PREDICTIONS = 5
#: Units of the progress bar (the whole run).
_BAR_UNITS = 1000

__all__ = [
    "SUMMARY_NAME",
    "build_parser",
    "expand_inputs",
    "main",
    "resolve_target",
    "unique_names",
]


# -- file names and targets ---------------------------------------------------------------------
def unique_names(names: Sequence[str]) -> list[str]:
    """Sanitised names, made unique (case-insensitively, for macOS and Windows file systems):
    the first of equal names is kept, later ones get ``-2``, ``-3``, ... (never another
    input's own name)."""
    safe = [safe_part(name) for name in names]
    reserved = {name.casefold() for name in safe}
    used: set[str] = set()
    out = []
    for name in safe:
        candidate, n = name, 1
        while candidate.casefold() in used or (
            candidate != name and candidate.casefold() in reserved
        ):
            n += 1
            candidate = f"{name}-{n}"
        used.add(candidate.casefold())
        out.append(candidate)
    return out


def resolve_target(handle: ModelHandle, text: str) -> Any:
    """``auto`` (top-1 class) -> ``None``; a class index or label -> that index; ``topK`` ->
    :class:`~explain.targets.TopK` (one map per class)."""
    t = text.strip()
    if t.lower() in ("auto", "top1", "top-1", ""):
        return None
    if re.fullmatch(r"[+-]?\d+", t):
        return handle.class_index(int(t))
    if t.lower() in (label.lower() for label in handle.labels):
        return handle.class_index(t)
    top = re.fullmatch(r"top-?(\d+)", t.lower())
    if top:
        k = int(top[1])
        if not 1 <= k <= handle.num_classes:
            raise TargetError(f"--target {t}: {handle.name} has {handle.num_classes} classes.")
        return TopK(k)
    return handle.class_index(t)  # raises with close label names


def contrast_target(handle: ModelHandle, target: Any, other: str | None) -> Any:
    """``--contrast`` over the resolved ``--target``: :class:`~explain.targets.Contrast`
    (``target`` None: each image's top class); the target as it is without ``--contrast``."""
    if other is None:
        return target
    if isinstance(target, TopK):
        raise TargetError("--contrast explains one class against another: give one --target.")
    text = other.strip()
    index = handle.class_index(int(text) if re.fullmatch(r"[+-]?\d+", text) else text)
    return Contrast(target, index)


def expand_inputs(
    items: Sequence[str], exclude: Path | None = None
) -> tuple[list[Path], list[dict[str, str]]]:
    """Files as given; folders -> the image files directly inside them (sorted), but not the
    overlays of an earlier run in ``exclude`` (the output folder).

    Returns:
        (paths to read, skipped entries for folders without images).
    """
    suffixes = set(Image.registered_extensions())
    paths: list[Path] = []
    skipped: list[dict[str, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            ours = exclude is not None and exclude.is_dir() and path.resolve() == exclude.resolve()
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not (ours and _is_output(p.name))
            )
            if not found:
                skipped.append({"file": str(path), "reason": "the folder has no image files."})
            paths.extend(found)
        else:
            paths.append(path)
    return paths, skipped


def _is_output(name: str) -> bool:
    """Whether a file name is one this command writes (``<stem>__<method>__<layer>...png``)."""
    parts = name.split("__")
    return len(parts) >= 3 and parts[1] in METHOD_INFO and name.endswith(".png")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``python -m explain`` argument parser."""
    parser = command_parser(
        prog,
        "Class-activation maps (Grad-CAM and family) for image files: overlays "
        "(.png), maps (.npy) and one summary.json.",
        "Example: python -m explain photos/ --model torchvision:resnet50 "
        "--layers layer3,layer4 --method gradcam,scorecam --out maps/",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument(
        "--layers", default="default", metavar="L1,L2", help=f"{LAYERS_HELP} (default: default)"
    )
    parser.add_argument(
        "--method",
        default="gradcam",
        metavar="M1,M2",
        help=f"comma-separated, from: {', '.join(METHODS)}; or 'all' (methods that do not "
        "apply to the model are skipped with a note) (default: gradcam)",
    )
    parser.add_argument(
        "--target",
        default="auto",
        metavar="auto|IDX|NAME|topK",
        help="class to explain: auto (top-1, the default), a class index or label (a prompt "
        "for CLIP models), or topK (one map for each of the K most probable classes)",
    )
    parser.add_argument(
        "--contrast",
        metavar="IDX|NAME",
        help="why the --target class rather than this one: explains logit(target) - "
        "logit(this) (with --target auto, each image's top class; its second when the top "
        "one is this)",
    )
    parser.add_argument("--colormap", default="jet", choices=COLORMAPS, help="(default: jet)")
    parser.add_argument(
        "--alpha", type=unit_float, default=0.5, help="heatmap opacity, 0 to 1 (default: 0.5)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="images per pass (default: 16)"
    )
    parser.add_argument(
        "--aug-smooth", action="store_true", help="average over flipped / brightened copies"
    )
    parser.add_argument(
        "--eigen-smooth",
        action="store_true",
        help="first principal component of the contributions instead of their sum",
    )
    parser.add_argument(
        "--max-channels",
        type=positive_int,
        default=None,
        metavar="N",
        help="Score-CAM / Ablation-CAM: perturb only the N channels of highest variance "
        "(approximate, faster)",
    )
    add_engine_options(parser, block_size=64)
    add_output_options(parser, quiet_help="no progress bar and no final line")
    return parser


# -- the run ------------------------------------------------------------------------------------
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _prob(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Run:
    """One command: reads images batch by batch, computes every method, writes as it goes."""

    def __init__(self, args: argparse.Namespace, command: Sequence[str]):
        self.args = args
        self.start = time.perf_counter()
        self.out: Path = args.out
        self.methods = resolve_methods(args.method)
        self.handle: ModelHandle | None = None
        self.layers: list[str] = []
        self.layer_tags: dict[str, str] = {}
        self.targets: Any = None
        self.images: list[dict[str, Any]] = []
        self.files: list[str] = []
        self.skipped: list[dict[str, str]] = []
        self.notes: list[str] = []
        self.timings: dict[str, float] = {"load_model": 0.0, "read_images": 0.0, "write": 0.0}
        self.method_time = dict.fromkeys(self.methods, 0.0)
        self.skipped_methods: dict[str, str] = {}
        self.status = "running"
        self.error: str | None = None
        self.command = shlex.join(command)
        self.bar: Progress | None = None
        self.step, self.steps = 0, 0  # (batch, method) steps done and to do

    # -- steps -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load the model and check layers and target (usage errors come out here)."""
        args = self.args
        t0 = time.perf_counter()
        self.handle = load_model_from_args(args)
        self.timings["load_model"] = time.perf_counter() - t0
        self.layers = layer_names(self.handle, args.layers)
        self.targets = contrast_target(
            self.handle, resolve_target(self.handle, args.target), args.contrast
        )
        _, skipped = applicable_methods(self.handle, self.methods)
        for method, why in skipped.items():
            self._skip_method(method, why)
        if args.max_channels and all(METHOD_INFO[m].kind != "perturbation" for m in self.methods):
            raise ExplainError("--max-channels applies to Score-CAM and Ablation-CAM only.")
        self.layer_tags = dict(zip(self.layers, unique_names(self.layers), strict=True))
        prepare_out(self.out)
        self._note(*self.handle.notes)
        h, w = self.handle.input_size
        self._note(
            f"maps and overlays are at the model's input resolution {h}x{w} (each image "
            "resized / cropped as the model sees it)."
        )

    def explain(self, inputs: Sequence[str]) -> None:
        paths, skipped = expand_inputs(inputs, exclude=self.out)
        for entry in skipped:
            self._skip(entry["file"], entry["reason"])
        names = unique_names([p.stem for p in paths])
        jobs = list(zip(paths, names, strict=True))
        self.steps = math.ceil(len(jobs) / self.args.batch_size) * len(self.methods)
        with progress_bar("explaining", self.args.quiet) as self.bar:
            for chunk in _chunks(jobs, self.args.batch_size):
                self._batch(chunk)
        self.bar = None

    def _skip_method(self, method: str, why: str) -> None:
        """Leave out a method that does not apply to the model (a note); an error when it was
        the last one."""
        self.skipped_methods[method] = why
        self.methods = [m for m in self.methods if m != method]
        self.method_time.pop(method, None)
        self._note(f"{method} skipped: {why}")
        say(f"skipped {method}: {_one_line(why)}")
        if not self.methods:
            reasons = "; ".join(f"{m}: {w.rstrip('.')}" for m, w in self.skipped_methods.items())
            raise MethodNotApplicable(
                f"No method asked for applies to {self.args.model} ({reasons}).",
                hint="use a CAM method such as --method gradcam.",
            )

    def _advance(self, steps: int, message: str) -> None:
        self.step += steps
        notify(self.bar, round(_BAR_UNITS * self.step / max(self.steps, 1)), _BAR_UNITS, message)

    def _within_step(self) -> Progress:
        """The progress of the current step (a perturbation method's batches) on the bar."""
        n = max(self.steps, 1)
        return within(self.bar, self.step / n, (self.step + 1) / n, _BAR_UNITS)

    def _batch(self, chunk: Sequence[tuple[Path, str]]) -> None:
        assert self.handle is not None
        t0 = time.perf_counter()
        good: list[tuple[Path, str, LoadedImage]] = []
        for path, name in chunk:
            loaded, failed = load_images([path])
            if failed:
                self._skip(str(path), failed[0][1])
            else:
                good.append((path, name, loaded[0]))
        self.timings["read_images"] += time.perf_counter() - t0
        if not good:
            self._advance(len(self.methods), "explaining")
            return
        pictures = [item[2].image for item in good]
        pixels = self.handle.prepare(pictures)  # (n, H, W, 3) uint8, as the model sees them
        x = self.handle.preprocess(pictures)
        records = [
            {
                "file": str(path),
                "name": name,
                "original_size": list(loaded.original_size),
                "notes": list(loaded.notes),
                "outputs": [],
            }
            for path, name, loaded in good
        ]
        self.images.extend(records)  # listed as soon as one method has written its files
        for method in list(self.methods):
            title = METHOD_INFO[method].title
            notify(self._within_step(), 0, 1, title)
            t1 = time.perf_counter()
            perturbs = METHOD_INFO[method].kind == "perturbation"
            try:
                res = compute_cams(
                    self.handle,
                    x,
                    self.layers,
                    method,
                    self.targets,
                    eigen_smooth=self.args.eigen_smooth,
                    aug_smooth=self.args.aug_smooth,
                    batch_size=self.args.batch_size,
                    max_channels=self.args.max_channels if perturbs else None,
                    progress=self._within_step(),
                )
            except MethodNotApplicable as exc:  # found only while computing (CAM's head check)
                self._skip_method(method, exc.message)
                self._advance(1, title)
                continue
            self.method_time[method] += time.perf_counter() - t1
            self._note(*res.notes)
            if "predictions" not in records[0]:
                self._predictions(records, res)
            t2 = time.perf_counter()
            self._write(records, pixels, res)
            self.timings["write"] += time.perf_counter() - t2
            self._advance(1, title)

    def _predictions(self, records: list[dict[str, Any]], res: CamResult) -> None:
        top = top_classes(res.probs, TOP_PREDICTIONS, self.handle.labels)
        targets = res.targets.reshape(len(records), -1)
        for i, record in enumerate(records):
            record["predictions"] = [
                {"index": int(c), "label": label, "probability": _prob(p)}
                for c, label, p in zip(
                    top.indices[i], top.labels[i], top.probabilities[i], strict=True
                )
            ]
            record["targets"] = [
                {"index": int(c), "label": name}
                for c, name in zip(targets[i], res.target_names[i], strict=True)
            ]

    def _write(self, records: list[dict[str, Any]], pixels: np.ndarray, res: CamResult) -> None:
        args = self.args
        multi = isinstance(self.targets, TopK)
        for layer in self.layers:
            maps = res.maps[layer]
            raws = res.raw[layer]
            for i, record in enumerate(records):
                count = maps.shape[1] if multi else 1
                for j in range(count):
                    heat = maps[i, j] if multi else maps[i]
                    raw = raws[i, j] if multi else raws[i]
                    name = res.target_names[i][j]
                    index = int(res.targets[i, j] if multi else res.targets[i])
                    base = f"{record['name']}__{res.method}__{self.layer_tags[layer]}"
                    if multi:
                        base += f"__top{j + 1}-{safe_part(name)}"
                    entry = {
                        "method": res.method,
                        "layer": layer,
                        "target": {"index": index, "label": name},
                        "overlay": f"{base}.png",
                        "map": f"{base}.npy",
                        "raw": f"{base}.raw.npy",
                    }
                    picture = overlay(pixels[i], heat, alpha=args.alpha, cmap=args.colormap)
                    Image.fromarray(picture).save(self.out / entry["overlay"], format="PNG")
                    np.save(self.out / entry["map"], np.asarray(heat, np.float32))
                    np.save(self.out / entry["raw"], np.asarray(raw, np.float32))
                    if layer in res.pixels:  # pixel-level methods: the attribution itself
                        px = res.pixels[layer][i, j] if multi else res.pixels[layer][i]
                        entry["pixels"] = f"{base}.pixels.png"
                        Image.fromarray(gradient_image(px)).save(self.out / entry["pixels"])
                    files = [
                        v for k, v in entry.items() if k in ("overlay", "map", "raw", "pixels")
                    ]
                    self.files.extend(files)
                    record["outputs"].append(entry)

    def _skip(self, file: str, reason: str) -> None:
        self.skipped.append({"file": file, "reason": reason})
        say(f"skipped {file}: {_one_line(reason)}")

    def _note(self, *notes: str) -> None:
        for note in notes:
            if note not in self.notes:
                self.notes.append(note)

    # -- report ------------------------------------------------------------------------------
    @property
    def explained(self) -> list[dict[str, Any]]:
        """Records of the images with at least one map written."""
        return [record for record in self.images if record["outputs"]]

    def summary(self) -> dict[str, Any]:
        args = self.args
        handle = self.handle
        timings = {k: round(v, 4) for k, v in self.timings.items()}
        timings["methods"] = {k: round(v, 4) for k, v in self.method_time.items()}
        timings["total"] = round(time.perf_counter() - self.start, 4)
        return {
            "command": self.command,
            "status": self.status,
            "error": self.error,
            "model": {
                "spec": args.model,
                "name": handle.name if handle else None,
                "weights": str(args.weights),
                "device": str(handle.device) if handle else None,
                "input_size": list(handle.input_size) if handle else None,
                "num_classes": handle.num_classes if handle else None,
            },
            "methods": self.methods,
            "skipped_methods": self.skipped_methods,
            "layers": self.layers,
            "target": args.target,
            "contrast": args.contrast,
            "settings": {
                "colormap": args.colormap,
                "alpha": args.alpha,
                "batch_size": args.batch_size,
                "aug_smooth": args.aug_smooth,
                "eigen_smooth": args.eigen_smooth,
                "max_channels": args.max_channels,
            },
            "explained": len(self.explained),
            "images": self.explained,
            "skipped": self.skipped,
            "files": self.files,
            "timings_s": timings,
            "notes": self.notes,
        }

    def fail(self, exc: BaseException) -> None:
        """Record a failure in the summary, when the output folder exists by then."""
        if self.handle is None or not self.out.is_dir():
            return
        interrupted = isinstance(exc, KeyboardInterrupt)
        self.status = "interrupted" if interrupted else "error"
        self.error = "interrupted by the user" if interrupted else str(exc)
        with contextlib.suppress(OSError):
            self.write_summary()

    def write_summary(self) -> Path:
        path = self.out / SUMMARY_NAME
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.summary(), indent=2), encoding="utf-8")
        partial.replace(path)  # never a half-written summary
        return path


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(
        build_parser(prog), argv, lambda args: _main(args, [*shlex.split(prog), *argv])
    )


def _main(args: argparse.Namespace, command: Sequence[str]) -> int:
    engine = engine_from_args(args)
    if engine is not None:
        return _main_engine(args, engine)
    run = _Run(args, command)
    try:
        run.setup()
        run.explain(args.images)
    except (ExplainError, OSError, KeyboardInterrupt) as exc:
        run.fail(exc)  # what was written so far stays listed
        raise
    run.status = "ok"
    try:
        summary_path = run.write_summary()
    except OSError as exc:
        raise ExplainError(f"Cannot write {run.out / SUMMARY_NAME}: {exc}") from exc
    explained = len(run.explained)
    if not args.quiet:
        print(
            f"Explained {explained} image(s) with {', '.join(run.methods)} at "
            f"{len(run.layers)} layer(s); {len(run.files)} files in {run.out}; "
            f"{len(run.skipped)} skipped. Summary: {summary_path}"
        )
    if explained == 0:
        print("error: no image could be explained (see the skipped files above).", file=sys.stderr)
        return NOTHING_DONE
    return OK


def _main_engine(args: argparse.Namespace, engine: Any) -> int:
    """``--engine``: the maps of every image as a run folder of Parquet blocks in ``--out``
    (:mod:`explain.runs.cams`), computed in this process or on Ray; resumes a run there."""
    from ..runs.cams import cam_run

    handle = load_model_from_args(args)
    layers = layer_names(handle, args.layers)
    methods = resolve_methods(args.method)
    target = resolve_target(handle, args.target)
    paths, skipped = expand_inputs(args.images, exclude=args.out)
    for entry in skipped:
        say(f"skipped {entry['file']}: {entry['reason']}")
    if not paths:
        print("error: no image file was given.", file=sys.stderr)
        return NOTHING_DONE
    names = unique_names([p.stem for p in paths])
    prepare_out(args.out)
    options = {
        "aug_smooth": args.aug_smooth,
        "eigen_smooth": args.eigen_smooth,
        "batch_size": args.batch_size,
        "max_channels": args.max_channels,
    }
    with progress_bar("maps", args.quiet, unit="img") as bar:
        folder, stats = cam_run(
            handle, paths, names, methods, layers, args.out, engine, target=target,
            options=options, block_size=args.block_size, progress=bar,
        )  # fmt: skip
    for name, reason in folder.skipped():
        say(f"skipped {name}: {_one_line(reason)}")
    rows = folder.num_rows()
    if not args.quiet:
        print(
            f"{rows} map row(s) ({len(methods)} method(s), {len(layers)} layer(s)) of "
            f"{len(paths)} image(s) in {folder.path} with {engine.describe()}: "
            f"{stats.computed} block(s) computed, {stats.reused} reused, "
            f"{len(folder.skipped())} image(s) skipped; {stats.seconds:.1f} s."
        )
    if rows == 0:
        print("error: no image could be explained (see the skipped files above).", file=sys.stderr)
        return NOTHING_DONE
    return OK
