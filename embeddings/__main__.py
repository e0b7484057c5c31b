"""Command line: pooled features, projections, layer metrics and an HTML report for a dataset.

Usage::

    python -m embeddings FOLDER --model SPEC --layers L1,L2 [--projection umap] --out DIR
                         [--weights W] [--labels NAMES|FILE] [--input-size H[,W]]
                         [--mean R,G,B --std R,G,B] [--resize N|F|none] [--model-arg KEY=VALUE]

The model options are those of every command line (:mod:`explain.cli_options`).

Writes to ``DIR``: ``features/<layer>.npy`` (pooled, ``(N, D)`` float32), ``samples.csv`` (one
row per image: file, label, prediction, confidence), ``projections.csv``, ``metrics.csv``,
``cka.csv``, ``skipped.csv`` and ``report.html`` (interactive figures, works offline).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from explain.cli_options import add_model_options, error_line, load_model_from_args
from explain.errors import ExplainError

from .projection import METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embeddings",
        description="Per-layer embeddings of a dataset: pooled activations, 2-D/3-D projections, "
        "layer metrics (k-NN, linear probe, silhouette, trustworthiness, CKA) and an HTML report.",
    )
    parser.add_argument(
        "dataset",
        help="a folder (one sub-folder per class, or flat), a .zip, "
        "an image file, or 'builtin:shapes'",
    )
    add_model_options(parser)
    parser.add_argument("--layers", help="comma-separated module paths (default: a few stages)")
    parser.add_argument("--projection", choices=METHODS, default="umap")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--pooling", default="auto", help="auto, avg, max, cls or flatten")
    parser.add_argument("--max-images", type=int, help="sub-sample to this many, by class")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--color-by", default="label", choices=("label", "prediction", "correct", "confidence")
    )
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
    parser.add_argument("--out", required=True, help="output folder")
    return parser


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ExplainError as exc:
        print(error_line(exc), file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from .collect import collect_activations
    from .figures import cka_heatmap, html_page, metrics_chart, small_multiples
    from .metrics import cka_matrix, layer_metrics
    from .projection import DEFAULT_METRIC, project_layers

    handle = load_model_from_args(args)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    cache = False if args.no_cache else args.cache_dir
    acts = collect_activations(
        handle,
        args.dataset,
        layers,
        pooling=args.pooling,
        batch_size=args.batch_size,
        progress=True,
        cache_dir=cache,
        max_images=args.max_images,
        seed=args.seed,
    )
    out = Path(args.out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    for name, features in acts.features.items():
        np.save(out / "features" / f"{_safe(name)}.npy", features)

    with tqdm(total=len(acts.layers), desc=f"{args.projection} projections", unit="layer") as bar:
        layouts = project_layers(
            acts.features,
            method=args.projection,
            dim=args.dim,
            seed=args.seed,
            align=not args.no_align,
            progress=lambda done, _total: bar.update(done - bar.n),
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

    title = f"Embeddings of {args.dataset} in {handle.name}"
    summary = (
        f"<p>{len(acts)} images, {len(acts.skipped)} skipped; model accuracy "
        f"{'n/a' if acts.accuracy is None else f'{acts.accuracy:.3f}'}; "
        f"{args.projection} {args.dim}-D, seed {args.seed}; pooling "
        f"{html.escape(str(acts.pooling))}.</p>"
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
    (out / "report.html").write_text(html_page(sections, title), encoding="utf-8")

    print(
        f"{len(acts)} images ({len(acts.skipped)} skipped), layers {', '.join(acts.layers)}"
        f"{' (from cache)' if acts.from_cache else ''}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"wrote {out}/: features/*.npy, samples.csv, projections.csv, metrics.csv, cka.csv, "
        "skipped.csv, report.html"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
