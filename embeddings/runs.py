"""Activations of a dataset as a run folder (:mod:`explain.runs`): computed block by block in
this process or on Ray, read back as :class:`~embeddings.collect.Activations` or one column at
a time.

Columns of every block file (one row per image that could be read):

=================  ==========================================================================
``index``          int64, the image's position in the (sub-sampled) dataset
``path``           string, where the image lives (file path, ``archive.zip/member``, ...)
``name``           string, its name inside the dataset (``"cat/001.jpg"``)
``label``          int64, index into ``label_names`` of ``run.json`` (-1: no label)
``label_name``     string, the true class ("" when unlabelled)
``prediction``     int64, the model's top-1 class (index into ``class_names``)
``confidence``     float32, its probability
``probabilities``  fixed_size_list<float32>[num_classes], the softmax
``feature:LAYER``  fixed_size_list<float32>[D], the pooled features of one layer
=================  ==========================================================================

Images that could not be read are listed in each block's metadata (``RunFolder.skipped``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explain.datasets import stratified_indices
from explain.errors import DatasetError, ImageLoadError, RunError
from explain.layers import LayerInfo
from explain.progress import Progress
from explain.runs import Block, Engine, RunFolder, RunStats, open_run, run_blocks, vector_column
from explain.runs.folder import column_matrix, run_key, table_of

from .cache import default_cache_dir

#: ``kind`` of an activations run in ``run.json``.
KIND = "activations"
#: Images per block file by default.
BLOCK_SIZE = 256


def feature_column(layer: str) -> str:
    """The column holding a layer's pooled features."""
    return f"feature:{layer}"


def _read_one(dataset: Any, index: int) -> tuple[int, Any, str]:
    try:
        return index, dataset.load(index).image, ""
    except (ImageLoadError, DatasetError, OSError, ValueError) as exc:
        return index, None, str(exc) or type(exc).__name__


def read_images(
    dataset: Any, start: int, stop: int, threads: int = 1
) -> tuple[list[Any], list[int], list[tuple[int, str]]]:
    """Decode images ``start..stop`` (with ``threads`` threads: PIL decodes outside the GIL).

    Returns:
        (PIL images, their indices, ``[(index, reason)]`` of those that could not be read).
    """
    indices = range(start, stop)
    if threads > 1 and len(indices) > 1:
        with ThreadPoolExecutor(min(threads, len(indices))) as pool:
            loaded = list(pool.map(lambda i: _read_one(dataset, i), indices))
    else:
        loaded = [_read_one(dataset, i) for i in indices]
    images = [image for _, image, reason in loaded if not reason]
    kept = [i for i, _, reason in loaded if not reason]
    failed = [(i, reason) for i, _, reason in loaded if reason]
    return images, kept, failed


@dataclass
class ActivationsTask:
    """The work of one activations run (picklable: what a Ray worker receives).

    Attributes:
        recipe: how workers load the model (``None``: in-process only).
        fingerprint: the driver's model fingerprint.
        dataset: the images (already sub-sampled).
        layers: module paths in depth order; poolings: layer -> pooling.
        widths: layer -> pooled feature width (for blocks without a readable image).
        num_classes: the model's classes.
    """

    recipe: Any
    fingerprint: str
    dataset: Any
    layers: list[str]
    poolings: dict[str, str]
    widths: dict[str, int]
    num_classes: int

    def run_block(self, handle: Any, block: Block) -> tuple[Any, dict[str, Any]]:
        from .collect import forward_pooled

        infos = [handle.layer(name) for name in self.layers]
        images, indices, failed = read_images(
            self.dataset, block.start, block.stop, torch.get_num_threads()
        )
        if images:
            features, probs = forward_pooled(
                handle, handle.preprocess(images), infos, self.poolings
            )
        else:
            features = {n: np.zeros((0, self.widths[n]), np.float32) for n in self.layers}
            probs = np.zeros((0, self.num_classes), np.float32)
        items = [self.dataset.items[i] for i in indices]
        table = activation_table(
            np.asarray(indices, dtype=np.int64),
            [item.location for item in items],
            [item.name for item in items],
            np.asarray([item.label for item in items], dtype=np.int64),
            self.dataset.label_names,
            probs,
            {name: features[name] for name in self.layers},
        )
        skipped = [(self.dataset.items[i].name, reason) for i, reason in failed]
        return table, {"skipped": skipped}


def activation_table(
    indices: np.ndarray,
    paths: Sequence[str],
    names: Sequence[str],
    labels: np.ndarray,
    label_names: Sequence[str],
    probabilities: np.ndarray,
    features: Mapping[str, np.ndarray],
) -> Any:
    """The rows of an activations block (see the module docstring) as a ``pyarrow.Table``.

    Args:
        indices: ``(B,)`` positions in the dataset; paths, names: ``B`` strings each.
        labels: ``(B,)`` int64 (-1 unknown); label_names: the dataset's class names.
        probabilities: ``(B, num_classes)``; features: layer -> ``(B, D)``.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    columns: dict[str, Any] = {
        "index": np.asarray(indices, dtype=np.int64),
        "path": list(paths),
        "name": list(names),
        "label": np.asarray(labels, dtype=np.int64),
        "label_name": [label_names[i] if i >= 0 else "" for i in labels],
        "prediction": probs.argmax(axis=1).astype(np.int64),
        "confidence": probs.max(axis=1, initial=0.0).astype(np.float32),
        "probabilities": vector_column(probs),
    }
    for name, values in features.items():
        columns[feature_column(name)] = vector_column(values)
    return table_of(columns)


def save_activations(
    acts: Any, out: str | os.PathLike, *, block_size: int = BLOCK_SIZE, model: str = ""
) -> RunFolder:
    """Write in-memory :class:`~embeddings.collect.Activations` as an activations run folder
    (the format every reader takes: the dashboard, pandas, :func:`read_activations`).

    Raises:
        RunError: ``out`` holds another run.
    """
    layers = list(acts.features)
    n = len(acts)
    folder = RunFolder.create(
        out,
        kind=KIND,
        key=acts.key or run_key({"saved": layers, "n": n, "paths": list(acts.paths[:1000])}),
        items=n,
        block_size=block_size,
        params={
            "model": model,
            "model_name": model,
            "dataset": f"{n} images",
            "layers": layers,
            "columns": {name: feature_column(name) for name in layers},
            "widths": {name: int(arr.shape[1]) for name, arr in acts.features.items()},
            "pooling": dict(acts.pooling) or dict.fromkeys(layers, "avg"),
            "layer_infos": {
                name: _info_dict(acts.layer_infos.get(name) or LayerInfo(name, "vector", ()))
                for name in layers
            },
            "class_names": list(acts.class_names),
            "label_names": list(acts.label_names),
            "listing_skipped": [list(s) for s in acts.skipped],
        },
    )
    for block in folder.missing():
        rows = slice(block.start, block.stop)
        table = activation_table(
            acts.indices[rows],
            acts.paths[rows],
            acts.names[rows],
            acts.labels[rows],
            acts.label_names,
            acts.probabilities[rows],
            {name: arr[rows] for name, arr in acts.features.items()},
        )
        folder.write_block(block, table)
    folder.update(status="complete")
    return folder


def feature_widths(
    handle: Any, infos: Sequence[LayerInfo], poolings: Mapping[str, str]
) -> dict[str, int]:
    """Layer -> pooled feature width, from one forward pass of a blank input."""
    from .collect import forward_pooled

    h, w = handle.input_size
    features, _ = forward_pooled(handle, torch.zeros(1, 3, h, w), infos, poolings)
    return {name: int(arr.shape[1]) for name, arr in features.items()}


def default_run_dir(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a run without ``out=`` goes: ``<activation cache>/runs/<key>``."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / "runs" / key


def collect_run(
    handle: Any,
    data: Any,
    infos: Sequence[LayerInfo],
    poolings: Mapping[str, str],
    key: str,
    engine: Engine,
    out: str | os.PathLike,
    *,
    block_size: int = BLOCK_SIZE,
    progress: Progress | None = None,
) -> tuple[RunFolder, RunStats]:
    """Compute (or finish) the activations run of ``data`` in ``out`` with ``engine``.

    Returns:
        (the run folder, complete; what this call computed and reused).
    """

    layers = [info.name for info in infos]
    engine.check_model(handle)  # before any work
    widths = feature_widths(handle, infos, poolings)
    folder = RunFolder.create(
        out,
        kind=KIND,
        key=key,
        items=len(data),
        block_size=block_size,
        params={
            "model": handle.spec,
            "model_name": handle.name,
            "fingerprint": handle.fingerprint,
            "dataset": data.description,
            "layers": layers,
            "columns": {name: feature_column(name) for name in layers},
            "widths": widths,
            "pooling": dict(poolings),
            "layer_infos": {info.name: _info_dict(info) for info in infos},
            "class_names": list(handle.labels),
            "label_names": list(data.label_names),
            "listing_skipped": [list(s) for s in data.skipped],
            "preprocess": handle.preprocessor.describe(),
        },
    )
    recipe = engine.recipe_for(handle, folder)
    task = ActivationsTask(
        recipe,
        handle.fingerprint,
        data,
        layers,
        dict(poolings),
        widths,
        handle.num_classes,
    )
    stats = run_blocks(engine, task, folder, handle, progress, "activations")
    return folder, stats


def _info_dict(info: LayerInfo) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(info).items()}


def _info_of(data: Mapping[str, Any]) -> LayerInfo:
    fields = dict(data)
    for name in ("shape", "grid"):
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    return LayerInfo(**fields)


def run_features(
    run: RunFolder | str | os.PathLike, layer: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """One layer's pooled features ``(N, D)`` float32 (only that column is read), or the
    ``rows`` of them.

    Raises:
        RunError: not an activations run, or no such layer in it.
    """
    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    layers = folder.params.get("layers", [])
    if layer not in layers:
        raise RunError(
            f"The run {folder.path} has no layer {layer!r}.",
            hint=f"its layers are {', '.join(layers)}.",
        )
    column = folder.read([feature_column(layer)]).column(0)
    if rows is not None:
        column = column.take(np.asarray(rows, dtype=np.int64))
    return column_matrix(column)


def sample_rows(
    run: RunFolder | str | os.PathLike, max_points: int | None, seed: int = 0
) -> tuple[np.ndarray | None, str]:
    """A stratified, seeded sample of a run's rows when it has more than ``max_points``
    (only the label column is read).

    Returns:
        (sorted row indices, or ``None`` to keep every row; a note saying what was sampled,
        "" when nothing was).
    """
    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    n = folder.num_rows()
    if max_points is None or n <= max_points:
        return None, ""
    labels = folder.read(["label"]).column(0).to_numpy()
    rows = stratified_indices(labels, int(max_points), seed)
    note = (
        f"a stratified sample of {len(rows):,} of the run's {n:,} images (seed {seed}) is "
        "shown and projected; every image stays in the run folder."
    )
    return rows, note


def read_activations(
    run: RunFolder | str | os.PathLike,
    layers: Sequence[str] | None = None,
    rows: np.ndarray | None = None,
) -> Any:
    """An activations run folder as :class:`~embeddings.collect.Activations`.

    Args:
        run: the folder (or an open :class:`~explain.runs.RunFolder`).
        layers: read only these layers (default all; each is one column on disk).
        rows: read only these rows (indices into the run's rows), e.g. a sample of a large run.

    Raises:
        RunError: not an activations run, an unknown layer, or no block written yet.
    """
    from .collect import Activations

    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    if folder.kind != KIND:
        raise RunError(f"{folder.path} holds a run of {folder.kind}, not of activations.")
    if not folder.written():
        raise RunError(f"{folder.path} holds no block yet.", hint="run it (or resume it) first.")
    params = folder.params
    chosen = list(params["layers"]) if layers is None else list(layers)
    unknown = [name for name in chosen if name not in params["layers"]]
    if unknown:
        raise RunError(
            f"The run {folder.path} has no layer {unknown[0]!r}.",
            hint=f"its layers are {', '.join(params['layers'])}.",
        )
    meta_columns = ["index", "path", "name", "label", "probabilities"]
    table = folder.read(meta_columns + [feature_column(n) for n in chosen])
    if rows is not None:
        table = table.take(np.asarray(rows, dtype=np.int64))
    infos = {name: _info_of(params["layer_infos"][name]) for name in chosen}
    skipped = [tuple(s) for s in params.get("listing_skipped", [])] + folder.skipped()
    return Activations(
        features={name: column_matrix(table.column(feature_column(name))) for name in chosen},
        labels=table.column("label").to_numpy().astype(np.int64),
        label_names=list(params["label_names"]),
        paths=table.column("path").to_pylist(),
        names=table.column("name").to_pylist(),
        indices=table.column("index").to_numpy().astype(np.int64),
        probabilities=column_matrix(table.column("probabilities")),
        class_names=list(params["class_names"]),
        layer_infos=infos,
        pooling={name: params["pooling"][name] for name in chosen},
        skipped=skipped,
        key=str(folder.manifest.get("key", "")),
        run=str(folder.path),
    )
