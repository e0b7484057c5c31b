"""The ``evaluate`` command: evaluate CAM methods on a dataset and write the tables and curves.

::

    python -m explain.evaluation --model SPEC [--weights W] --data FOLDER|builtin:shapes
                                 [--boxes boxes.csv | --annotations VOC_DIR|coco.json|MASK_DIR]
                                 [--methods gradcam,gradcampp] [--layers L1,L2]
                                 [--metrics deletion,insertion|faithfulness|all] --out DIR
                                 [--labels ...] [--input-size H[,W]] [--mean R,G,B --std R,G,B]
                                 [--resize N|F|none] [--model-arg KEY=VALUE] [--device D]

The model options are those of every command line (:mod:`explain.cli.options`).

Writes ``table.csv`` (one row per image x method x layer x metric), ``summary.csv`` (per
method, layer and metric, with the random-map and Gaussian-map baselines), ``verdicts.csv``
(every method against every baseline by a paired test over images: mean difference, interval,
p-value, verdict; on all images and on small objects), ``images.csv`` (per image: label,
prediction, object size), ``report.md`` (the verdict tables), ``curves.csv`` (per image) and
``mean_curves.csv`` (deletion, insertion, ROAD, randomisation cascade) and ``meta.json``
(settings, notes, timings, metric descriptions). With ``--boxes`` or ``--annotations`` the images
of ``--data`` come with ground truth (object boxes or masks, which follow the images through the
model's resize and crop), so the localisation metrics are scored. With ``--region
X0,Y0,X1,Y1`` it also checks whether the model relies on that region (``bias.json``); with
``--bias-study`` it runs the built-in shapes demonstration instead of an evaluation.

With ``--engine local|ray`` (or ``--address``, ``--num-workers``) the per-image measures are a
run folder in ``DIR`` too (:mod:`explain.evaluation.blocks`: ``run.json`` and Parquet blocks,
computed in this process or by Ray workers, resumed when interrupted); the tables above are then
made from it.

Exit status (:mod:`explain.cli.command`): 0 on success, 2 for usage errors (unknown model, layer,
method or metric; a dataset that cannot be read), 130 when interrupted; one clear message on
stderr, no traceback.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import ExplainError
from ..evaluation import METRICS, AnnotatedDataset, evaluate, find_bias, shapes_bias_study
from ..models import ModelHandle
from .command import OK, prepare_out, progress_bar, run_command
from .options import (
    LAYERS_HELP,
    add_engine_options,
    add_output_options,
    command_parser,
    engine_from_args,
    layer_names,
    load_model_from_args,
    pixel_box,
    positive_int,
    resolve_methods,
    split_list,
)

PROG = "python -m explain.evaluation"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``python -m explain.evaluation`` argument parser."""
    parser = command_parser(
        prog,
        "Measure how far class-activation maps can be trusted: faithfulness "
        "(deletion, insertion, Average Drop, ROAD), localisation (pointing game, energy "
        "pointing game, Grad-CAM box localisation and top-1 localisation error, on your own "
        "annotated images) and the randomisation sanity check, each against random and centred "
        "Gaussian baseline maps by a paired test over images.",
        "Examples: python -m explain.evaluation --model builtin:shapes --data "
        "builtin:shapes --methods gradcam,gradcampp --layers layer3 --max-images 100 --out "
        "eval/ | python -m explain.evaluation --model builtin:efficientnet-lite0 --data "
        "imagenet-val/images --boxes imagenet-val/boxes.csv --targets label --metrics "
        "localisation --out eval/",
        model_required=False,  # --model is needed unless --bias-study
    )
    parser.add_argument(
        "--data",
        default="builtin:shapes",
        metavar="FOLDER",
        help="a folder with one sub-folder of images per class (or a flat folder with "
        "--boxes/--annotations), or builtin:shapes (builtin:shapes:class with the corner "
        "marker); default builtin:shapes",
    )
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument(
        "--boxes",
        type=Path,
        metavar="CSV",
        help="object boxes of the --data images: a CSV with file, x0,y0,x1,y1 (pixel edges, "
        "x1/y1 exclusive; or xmin,ymin,xmax,ymax or x,y,w,h) and optionally label (class index) "
        "and/or class_name, one row per object",
    )
    truth.add_argument(
        "--annotations",
        type=Path,
        metavar="PATH",
        help="ground truth of the --data images: a boxes CSV, a COCO instances JSON, a Pascal "
        "VOC folder of .xml files, or a folder of PNG masks (same file names as the images)",
    )
    parser.add_argument(
        "--voc-zero-based",
        action="store_true",
        help="read Pascal VOC coordinates as pixel edges instead of the devkit's 1-based "
        "inclusive indices",
    )
    parser.add_argument("--methods", default="gradcam", metavar="M1,M2", help="CAM methods")
    parser.add_argument("--layers", default="default", metavar="L1,L2", help=LAYERS_HELP)
    parser.add_argument(
        "--metrics",
        default="all",
        metavar="NAMES",
        help=f"comma-separated from {', '.join(METRICS)}, or a category (faithfulness, "
        "localisation, randomisation), or all",
    )
    parser.add_argument(
        "--targets", default="predicted", choices=["predicted", "label"], help="class explained"
    )
    parser.add_argument(
        "--max-images",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate a seeded random subset of N images (--bias-study: N per condition, 60)",
    )
    parser.add_argument("--steps", type=positive_int, default=20, help="deletion/insertion steps")
    parser.add_argument(
        "--deletion-baseline", default="zero", choices=["zero", "blur", "mean"], metavar="B"
    )
    parser.add_argument("--tolerance", type=float, default=0.0, help="pointing-game pixels")
    parser.add_argument(
        "--loc-threshold",
        type=float,
        default=0.15,
        metavar="F",
        help="box localisation keeps the pixels >= F x the map's maximum (Grad-CAM: 0.15)",
    )
    parser.add_argument("--iou", type=float, default=0.5, help="IoU that counts as localised")
    parser.add_argument(
        "--small-object",
        type=float,
        default=0.5,
        metavar="F",
        help="the 'small objects' subset: objects covering less than F of the image (0.5)",
    )
    parser.add_argument(
        "--test",
        default="wilcoxon",
        choices=["wilcoxon", "bootstrap"],
        help="paired test over images behind every verdict",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument(
        "--max-channels",
        type=positive_int,
        default=None,
        metavar="N",
        help="Score-CAM/Ablation-CAM: perturb only the N channels of highest variance "
        "(approximate, faster)",
    )
    parser.add_argument("--sanity-images", type=positive_int, default=None, metavar="N")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--region", type=pixel_box, default=None, metavar="X0,Y0,X1,Y1", help="check reliance on it"
    )
    parser.add_argument("--region-name", default="the marked region")
    parser.add_argument(
        "--bias-study",
        action="store_true",
        help="run the built-in demonstration (shapes-biased vs shapes, marker on/off)",
    )
    add_engine_options(parser, block_size=64)
    add_output_options(parser, quiet_help="no progress bar, no summary")
    return parser


def _run(args: argparse.Namespace) -> str:
    with progress_bar("evaluating", args.quiet, unit="u") as bar:
        if args.bias_study:
            prepare_out(args.out)
            study = shapes_bias_study(n=args.max_images or 60, progress=bar)
            study.table.to_csv(args.out / "bias_study.csv", index=False)
            (args.out / "bias_study.json").write_text(
                json.dumps({"verdicts": study.verdicts}, indent=2), encoding="utf-8"
            )
            return "\n".join(f"{model}: {verdict}" for model, verdict in study.verdicts.items())
        handle = load_model_from_args(args)
        layers = layer_names(handle, args.layers)
        methods = resolve_methods(args.methods)
        metrics = None if args.metrics.strip().lower() == "all" else split_list(args.metrics)
        dataset = _dataset(args)
        engine = engine_from_args(args)
        prepare_out(args.out)  # once the model and the options are known to be right
        run = {} if engine is None else {"engine": engine, "out": args.out}
        result = evaluate(
            handle, dataset, methods, layers, metrics,
            targets=args.targets, max_images=args.max_images, steps=args.steps,
            deletion_baseline=args.deletion_baseline, pointing_tolerance=args.tolerance,
            loc_threshold=args.loc_threshold, iou_threshold=args.iou,
            small_object=args.small_object, test=args.test, alpha=args.alpha,
            max_channels=args.max_channels, sanity_images=args.sanity_images,
            batch_size=args.batch_size, seed=args.seed, progress=bar,
            block_size=args.block_size if engine is not None else None, **run,
        )  # fmt: skip
        paths = result.save(args.out)
        lines = [f"notes: {'; '.join(result.notes)}"] if result.notes else []
        if args.region is not None:
            x = _inputs(handle, args)
            report = find_bias(
                handle, x, args.region, method=methods[0], layer=layers[0],
                region_name=args.region_name,
            )  # fmt: skip
            bias = {
                "verdict": report.verdict,
                "details": report.details,
                "share_region": report.share_region,
                "region_area": report.region_area,
                "density_region": report.density_region,
                "flip_rate": report.flip_rate,
            }
            (args.out / "bias.json").write_text(json.dumps(bias, indent=2), encoding="utf-8")
            lines.append(f"{report.verdict} {report.details}")
    shown = result.summary[["method", "layer", "metric", "mean", "random", "gaussian"]]
    table = shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    verdicts = [f"- {line}" for line in result.sentences()]
    wrote = f"Wrote {', '.join(p.name for p in paths.values())} to {args.out}."
    if "run" in result.params:
        wrote += f" Per-image rows: the run folder {result.params['run']} (run.json, blocks/)."
    return "\n".join([table, "Paired tests over images:", *verdicts, *lines, wrote])


def _dataset(args: argparse.Namespace):
    """``--data``, with its ground truth when ``--boxes`` or ``--annotations`` is given."""
    truth = args.boxes or args.annotations
    if truth is None:
        return args.data
    if str(args.data).startswith("builtin:"):
        raise ExplainError(
            "--boxes/--annotations describe your own images: give them with --data FOLDER."
        )
    return AnnotatedDataset(args.data, truth, one_based=not args.voc_zero_based)


def _inputs(handle: ModelHandle, args: argparse.Namespace) -> torch.Tensor:
    """The model input of the evaluated images (same subset and seed as the evaluation)."""
    from ..evaluation.data import load_eval_data

    return load_eval_data(handle, _dataset(args), max_images=args.max_images, seed=args.seed).x


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    return run_command(build_parser(prog), argv, _main)


def _main(args: argparse.Namespace) -> int:
    if args.model is None and not args.bias_study:
        raise ExplainError("--model SPEC is required (e.g. --model builtin:shapes).")
    start = time.perf_counter()
    text = _run(args)
    if not args.quiet:
        print(text)
        print(f"({time.perf_counter() - start:.1f} s)")
    return OK
