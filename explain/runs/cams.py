"""Class-activation maps of many image files as a run folder (``python -m explain --engine``).

One row per image, method and target (``rank`` 0, or 0..K-1 with ``TopK``). Columns:

==================  =========================================================================
``index``           int64, the image's position in the input list
``path``            string, the image file
``name``            string, its unique stem (as the overlay files of ``python -m explain``)
``method``          string, the CAM method
``rank``            int64, which of the image's targets (0 for a single target)
``target``          int64, the class explained; ``target_label``: its name
``prediction``      int64, the model's top-1 class; ``confidence``: its probability
``probability``     float32, the probability of the class explained
``map:LAYER``       fixed_size_list<float32>[H*W], the normalised map at the input size
``raw:LAYER``       fixed_size_list<float32>[h*w], the map at the layer's resolution
==================  =========================================================================

``run.json`` gives ``input_size`` ``(H, W)`` and each layer's ``raw_shape`` ``(h, w)``;
:func:`read_maps` gives the maps back as ``(N, H, W)`` arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cams import compute_cams
from ..errors import RunError
from ..images import load_images
from ..progress import Progress
from ..targets import TopK
from .engine import Engine, RunStats, run_blocks
from .folder import Block, RunFolder, column_matrix, open_run, run_key, table_of

#: ``kind`` of a CAM run in ``run.json``.
KIND = "cams"
#: Images per block file by default.
BLOCK_SIZE = 64


def map_column(layer: str, raw: bool = False) -> str:
    """The column of a layer's maps (``raw``: at the layer's resolution)."""
    return f"{'raw' if raw else 'map'}:{layer}"


@dataclass
class CamTask:
    """The work of one CAM run (picklable: what a Ray worker receives).

    Attributes:
        recipe, fingerprint: the model (see :class:`~explain.runs.engine.BlockTask`).
        files: image paths; names: their unique stems.
        methods, layers: what to compute.
        target: ``None`` (top-1), a class index, or :class:`~explain.targets.TopK`.
        options: more ``compute_cams`` keywords (``aug_smooth``, ``eigen_smooth``,
            ``batch_size``, ``max_channels``).
    """

    recipe: Any
    fingerprint: str
    files: list[str]
    names: list[str]
    methods: list[str]
    layers: list[str]
    target: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def run_block(self, handle: Any, block: Block) -> tuple[Any, dict[str, Any]]:
        indices = list(range(block.start, block.stop))
        loaded, kept, skipped = [], [], []
        for i in indices:
            images, failed = load_images([self.files[i]])
            if failed:
                skipped.append((self.files[i], failed[0][1]))
            else:
                loaded.append(images[0])
                kept.append(i)
        notes = [n for image in loaded for n in image.notes]
        if not loaded:
            return table_of({"index": np.zeros(0, np.int64)}), {
                "skipped": skipped,
                "notes": notes,
            }
        x = handle.preprocess([image.image for image in loaded])
        parts: list[dict[str, Any]] = []
        for method in self.methods:
            res = compute_cams(handle, x, self.layers, method, self.target, **self.options)
            notes.extend(res.notes)
            parts.append(self._rows(res, kept))
        columns = {
            name: _concat([part[name] for part in parts]) for name in parts[0]
        }  # methods one after another, each image's targets together
        return table_of(columns), {"skipped": skipped, "notes": list(dict.fromkeys(notes))}

    def _rows(self, res: Any, kept: Sequence[int]) -> dict[str, Any]:
        n = len(kept)
        multi = isinstance(self.target, TopK)
        k = res.targets.shape[1] if multi else 1
        targets = res.targets.reshape(n, k)
        probs = np.asarray(res.probs, dtype=np.float32)
        top = probs.argmax(axis=1)
        rows = np.repeat(np.arange(n), k)
        out: dict[str, Any] = {
            "index": np.asarray(kept, dtype=np.int64)[rows],
            "path": [self.files[kept[r]] for r in rows],
            "name": [self.names[kept[r]] for r in rows],
            "method": [res.method] * (n * k),
            "rank": np.tile(np.arange(k, dtype=np.int64), n),
            "target": targets.reshape(-1).astype(np.int64),
            "target_label": [name for names in res.target_names for name in names],
            "prediction": top[rows].astype(np.int64),
            "confidence": probs[rows, top[rows]],
            "probability": probs[rows, np.maximum(targets.reshape(-1), 0)],
        }
        for layer in self.layers:
            out[map_column(layer)] = res.maps[layer].reshape(n * k, -1)
            out[map_column(layer, raw=True)] = res.raw[layer].reshape(n * k, -1)
        return out


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [x for part in parts for x in part]


def cam_key_parts(
    handle: Any,
    files: Sequence[str],
    methods: Sequence[str],
    layers: Sequence[str],
    target: Any,
    options: dict[str, Any],
) -> dict[str, Any]:
    """What a CAM run's results depend on (for its key): the model, the options and every
    file's path, size and modification time."""
    stamps = []
    for path in files:
        try:
            st = os.stat(path)
            stamps.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            stamps.append([str(path), None, None])
    return {
        "spec": handle.spec,
        "weights": handle.fingerprint,
        "preprocess": handle.preprocessor.describe(),
        "methods": list(methods),
        "layers": list(layers),
        "target": repr(target),
        "options": options,
        "files": stamps,
    }


def cam_run(
    handle: Any,
    files: Sequence[str | os.PathLike],
    names: Sequence[str],
    methods: Sequence[str],
    layers: Sequence[str],
    out: str | os.PathLike,
    engine: Engine,
    *,
    target: Any = None,
    options: dict[str, Any] | None = None,
    block_size: int = BLOCK_SIZE,
    progress: Progress | None = None,
) -> tuple[RunFolder, RunStats]:
    """Compute (or finish) the maps of ``files`` in the run folder ``out`` with ``engine``.

    Args:
        handle: the model (loaded here; Ray workers load it again from its recipe).
        files: image paths; names: a unique stem for each.
        methods, layers: canonical method names and module paths.
        out: the run folder.
        engine: an :class:`~explain.runs.engine.Engine`.
        target: ``None`` (top-1), a class index, or :class:`~explain.targets.TopK`.
        options: more ``compute_cams`` keywords.
        block_size: images per block file (a resumed run keeps its own).
        progress: ``progress(done, total, message)`` in images.

    Returns:
        (the run folder, what this call computed and reused).
    """

    paths = [str(Path(f).expanduser().resolve()) for f in files]
    options = dict(options or {})
    engine.check_model(handle)  # before any work
    key = run_key(cam_key_parts(handle, paths, methods, layers, target, options))
    folder = RunFolder.create(
        out,
        kind=KIND,
        key=key,
        items=len(paths),
        block_size=block_size,
        params={
            "model": handle.spec,
            "model_name": handle.name,
            "fingerprint": handle.fingerprint,
            "methods": list(methods),
            "layers": list(layers),
            "target": repr(target),
            "options": options,
            "input_size": list(handle.input_size),
            "raw_shapes": {layer: _raw_shape(handle, layer) for layer in layers},
            "class_names": list(handle.labels),
            "files": paths,
        },
    )
    recipe = engine.recipe_for(handle, folder)
    task = CamTask(
        recipe, handle.fingerprint, paths, list(names), list(methods), list(layers), target,
        options,
    )  # fmt: skip
    stats = run_blocks(engine, task, folder, handle, progress, "maps")
    return folder, stats


def _raw_shape(handle: Any, layer: str) -> list[int] | None:
    grid = handle.map_layer(layer).grid
    return list(grid) if grid is not None else None


def read_table(run: RunFolder | str | os.PathLike) -> Any:
    """A CAM run's rows without the maps, as a ``pandas.DataFrame``."""
    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    names = [n for n in folder.schema().names if not n.startswith(("map:", "raw:"))]
    return folder.to_pandas(names)


def read_maps(run: RunFolder | str | os.PathLike, layer: str, *, raw: bool = False) -> np.ndarray:
    """Every row's map at ``layer``: ``(rows, H, W)`` float32 (``raw``: ``(rows, h, w)`` at
    the layer's resolution), rows as in :func:`read_table`.

    Raises:
        RunError: not a CAM run, or no such layer in it.
    """
    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    params = folder.params
    if layer not in params["layers"]:
        raise RunError(
            f"The run {folder.path} has no maps at {layer!r}.",
            hint=f"its layers are {', '.join(params['layers'])}.",
        )
    flat = column_matrix(folder.read([map_column(layer, raw)]).column(0))
    h, w = params["input_size"]
    if raw:
        shape = params["raw_shapes"].get(layer)
        h, w = shape if shape else (1, flat.shape[1])
    return flat.reshape(len(flat), h, w)


__all__ = ["BLOCK_SIZE", "KIND", "CamTask", "cam_run", "map_column", "read_maps", "read_table"]
