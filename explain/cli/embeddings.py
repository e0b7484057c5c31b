"""The ``embeddings`` command: pooled features, projections, layer metrics and an HTML report for
a dataset.

Usage::

    python -m embeddings FOLDER --model SPEC --layers L1,L2 [--projection umap] --out DIR
                         [--weights W] [--labels NAMES|FILE] [--input-size H[,W]]
                         [--mean R,G,B --std R,G,B] [--resize N|F|none] [--model-arg KEY=VALUE]

The model options are those of every command line (:mod:`explain.cli.options`); exit status as
for every command (:mod:`explain.cli.command`). With ``--engine local|ray`` (or ``--address``,
``--num-workers``) the activations are a run folder in ``DIR`` (:mod:`embeddings.runs`: Parquet
blocks instead of ``features/*.npy``), computed in this process or by Ray workers and resumed
when interrupted; the projections and the report then cover at most ``--max-points`` images.

Writes to ``DIR``: ``features/<layer>.npy`` (pooled, ``(N, D)`` float32), ``samples.csv`` (one
row per image: file, label, prediction, confidence), ``projections.csv``, ``metrics.csv``,
``cka.csv``, ``skipped.csv`` and ``report.html`` (interactive figures, works offline).

The ``embeddings`` package is imported inside the functions only: ``explain`` (the library
``embeddings`` builds on) never imports it when it is itself imported.
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import options
from .command import OK, prepare_out, progress_bar, run_command, safe_part

PROG = "python -m embeddings"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``python -m embeddings`` argument parser."""
    from embeddings.figures import COLOR_BY
    from embeddings.projection import METHODS

    parser = options.command_parser(
        prog,
        "Per-layer embeddings of a dataset: pooled activations, 2-D/3-D projections, "
        "layer metrics (k-NN, linear probe, silhouette, trustworthiness, CKA) and an HTML report.",
    )
    parser.add_argument(
        "dataset",
        help="a folder (one sub-folder per class, or flat), a .zip, "
        "an image file, or 'builtin:shapes'",
    )
    parser.add_argument(
        "--layers",
        metavar="L1,L2",
        help="comma-separated module paths, 'default', 'all' (every layer with a map, token or "
        "vector output) or patterns such as 'layer*' (default: the last block of each stage)",
    )
    parser.add_argument("--projection", choices=METHODS, default="umap")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--pooling", default="auto", help="auto, avg, max, cls or flatten")
    parser.add_argument(
        "--max-images",
        type=options.positive_int,
        metavar="N",
        help="sub-sample to this many, by class",
    )
    parser.add_argument("--batch-size", type=options.positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--color-by", default="label", choices=COLOR_BY)
    parser.add_argument(
        "--cache-dir",
        help="activation cache (default: $GCE_CACHE_DIR or ~/.cache/gradcam-explorer/activations)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument(
        "--no-align",
        action="store_true",
        help="do not Procrustes-align the layouts of neighbouring layers",
    )
    parser.add_argument(
        "--max-points",
        type=options.positive_int,
        default=1_000_000,
        metavar="N",
        help="with --engine: project and report a stratified sample of at most N images of the "
        "run (default: 1,000,000); the run folder keeps them all",
    )
    options.add_engine_options(parser, block_size=256)
    options.add_output_options(parser, quiet_help="no progress bars and no printed table")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the command; returns the exit status."""
    return run_command(build_parser(prog), argv, run)


def run(args: argparse.Namespace) -> int:
    """Collect, project, measure and write everything (see the module docstring)."""
    import pandas as pd

    from embeddings.collect import collect_activations
    from embeddings.metrics import cka_matrix, layer_metrics
    from embeddings.projection import DEFAULT_METRIC, project_layers

    handle = options.load_model_from_args(args)
    layers = options.split_list(args.layers) if args.layers else None  # None: a few suggested ones
    engine = options.engine_from_args(args)
    run_options = (
        {}
        if engine is None
        else {
            "engine": engine,
            "out": prepare_out(args.out),
            "block_size": args.block_size,
            "max_points": args.max_points,
        }
    )
    with progress_bar("activations", args.quiet, unit="img") as bar:
        acts = collect_activations(
            handle,
            args.dataset,
            layers,
            pooling=args.pooling,
            batch_size=args.batch_size,
            progress=bar,
            cache_dir=False if args.no_cache else args.cache_dir,
            max_images=args.max_images,
            seed=args.seed,
            **run_options,
        )
    out = prepare_out(args.out)
    if engine is None:  # a run keeps its features in its Parquet blocks
        (out / "features").mkdir(exist_ok=True)
        for name, features in acts.features.items():
            np.save(out / "features" / f"{safe_part(name)}.npy", features)

    with progress_bar(f"{args.projection} projections", args.quiet, unit="layer") as bar:
        layouts = project_layers(
            acts.features,
            method=args.projection,
            dim=args.dim,
            seed=args.seed,
            align=not args.no_align,
            progress=bar,
        )
    table = layer_metrics(
        acts.features,
        acts.labels,
        layouts if args.dim == 2 else None,
        seed=args.seed,
        trust_metric=DEFAULT_METRIC[args.projection],
    )
    names, cka = cka_matrix(acts.features)

    samples = pd.DataFrame(
        {
            "row": np.arange(len(acts)),
            "name": acts.names,
            "path": acts.paths,
            "label": acts.label_text,
            "prediction": acts.prediction_text,
            "confidence": acts.confidence,
            "correct": np.where(acts.targets >= 0, acts.correct, None),
        }
    )
    samples.to_csv(out / "samples.csv", index=False)
    coords = pd.DataFrame({"row": np.arange(len(acts))})
    axes = "xyz"[: args.dim]
    for name, layout in layouts.items():
        for k, axis in enumerate(axes):
            coords[f"{name}_{axis}"] = layout[:, k]
    coords.to_csv(out / "projections.csv", index=False)
    table.to_csv(out / "metrics.csv", index=False)
    pd.DataFrame(cka, index=names, columns=names).to_csv(out / "cka.csv")
    pd.DataFrame(acts.skipped, columns=["file", "reason"]).to_csv(out / "skipped.csv", index=False)
    page = _report(args, handle.name, acts, layouts, table, names, cka)
    (out / "report.html").write_text(page, encoding="utf-8")

    if not args.quiet:
        print(
            f"{len(acts)} images ({len(acts.skipped)} skipped), layers {', '.join(acts.layers)}"
            f"{' (from cache)' if acts.from_cache else ''}"
            + (f"; run folder {acts.run} ({engine.describe()})" if engine is not None else "")
        )
        for note in acts.notes:
            print(f"note: {note}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        features = "run.json, blocks/*.parquet" if engine is not None else "features/*.npy"
        print(
            f"wrote {out}/: {features}, samples.csv, projections.csv, metrics.csv, cka.csv, "
            "skipped.csv, report.html"
        )
    return OK


def _report(
    args: argparse.Namespace,
    model: str,
    acts: Any,
    layouts: dict[str, np.ndarray],
    table: Any,
    names: list[str],
    cka: np.ndarray,
) -> str:
    """``report.html``: the figures of the run on one offline page."""
    from embeddings.figures import cka_heatmap, html_page, metrics_chart, small_multiples

    title = f"Embeddings of {args.dataset} in {model}"
    summary = (
        f"<p>{len(acts)} images, {len(acts.skipped)} skipped; model accuracy "
        f"{'n/a' if acts.accuracy is None else f'{acts.accuracy:.3f}'}; "
        f"{args.projection} {args.dim}-D, seed {args.seed}; pooling "
        f"{html.escape(str(acts.pooling))}.</p>"
        + "".join(f"<p>Note: {html.escape(note)}</p>" for note in acts.notes)
    )
    sections = [
        ("Summary", summary),
        (f"{args.projection.upper()} by layer", small_multiples(acts, layouts, args.color_by)),
        ("Layer metrics", metrics_chart(table, accuracy=acts.accuracy)),
        ("Metrics table", table.to_html(index=False, float_format=lambda v: f"{v:.3f}")),
        ("Similarity between layers", cka_heatmap(names, cka)),
    ]
    if acts.skipped:
        rows = "".join(
            f"<tr><td>{html.escape(f)}</td><td>{html.escape(r)}</td></tr>"
            for f, r in acts.skipped[:200]
        )
        sections.append(("Skipped files", f"<table>{rows}</table>"))
    return html_page(sections, title)
