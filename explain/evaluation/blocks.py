"""An evaluation as a run folder (:mod:`explain.runs`): the per-image measures of blocks of
images, computed in this process or on Ray, then the paired tests and the summary on the whole
table, as :func:`~explain.evaluation.evaluate` does in memory.

Every value of an image depends on that image alone (see
:func:`~explain.evaluation.runner.measure`), so the run's table equals the in-memory one.
Columns of every block file (one row per image x method x layer x metric):

===============  ==============================================================================
``row``          int64, the row of the image within its block (``image`` = rows of the blocks
                 before + ``row``)
``item``         int64, the image's position among the images chosen from the dataset
``path``         string, where the image lives; ``name``: its name in the dataset
``label``        int64, the true class (-1 unknown); ``target``: the class explained;
                 ``prediction``: the top-1 class
``method``       string (``"random"`` / ``"gaussian"`` for the baselines); ``layer``: string
``metric``       string; ``category``, ``direction``: from :data:`~explain.evaluation.METRICS`
``value``        float64
``curve``        list<float64>, the image's curve for metrics that have one (else null)
===============  ==============================================================================

Each block's metadata holds its images (labels, object sizes), the curves' x values, notes and
skipped files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..datasets import is_builtin_spec, load_dataset
from ..errors import ExplainError
from ..metric_info import MetricInfo
from ..models import ModelHandle
from ..progress import Progress
from ..runs import Block, Engine, RunFolder, open_run, resolve_engine, run_blocks
from ..runs.folder import run_key
from .base import METRICS
from .data import DEFAULT_SHAPES, _in_memory, read_dataset, select_items
from .faithfulness import Curves
from .result import CurveKey, EvaluationResult
from .settings import EvaluationSettings

#: ``kind`` of an evaluation run in ``run.json``.
KIND = "evaluation"
#: Images per block file by default.
BLOCK_SIZE = 64
_SEP = "\t"  # joins (method, layer, metric) in JSON keys


@dataclass
class EvaluationTask:
    """The work of one evaluation run (picklable: what a Ray worker receives).

    Attributes:
        recipe, fingerprint: the model (see :class:`~explain.runs.engine.BlockTask`).
        dataset: the chosen images, in order (item ``i`` of the run is ``dataset.items[i]``).
        methods, layers, metrics: what to measure (canonical names, metric names).
        targets: ``"predicted"``, ``"label"`` or one class index.
        settings: how to measure.
    """

    recipe: Any
    fingerprint: str
    dataset: Any
    methods: list[str]
    layers: list[str]
    metrics: list[str]
    targets: Any
    settings: EvaluationSettings

    def run_block(self, handle: Any, block: Block) -> tuple[Any, dict[str, Any]]:
        from .runner import _assemble, _image_frame, measure

        part = self.dataset.subset(range(block.start, block.stop))
        part.skipped, part.notes = [], []  # the driver reports the listing's own
        try:
            data = read_dataset(handle, part, id_offset=block.start)
        except ExplainError as exc:  # no usable image in this block
            skipped = [(item.name, exc.message) for item in part.items]
            return _empty_table(), {"rows": 0, "skipped": skipped, "images": {}}
        notes = list(data.notes)
        chosen = [METRICS[name] for name in self.metrics]
        m = measure(
            handle, data, self.methods, self.layers, chosen, self.targets, self.settings, None,
            notes,
        )  # fmt: skip
        table = _assemble(m.frames, data, m.targets, m.predictions)
        rows = table["image"].to_numpy()
        ids = data.row_ids
        table.insert(1, "item", ids[rows])
        table.insert(2, "path", [part.items[int(i) - block.start].location for i in ids[rows]])
        table = table.rename(columns={"image": "row"})
        curves = [
            _curve_of(m.curves, key, int(r)) for key, r in zip(_keys(table), rows, strict=True)
        ]
        images = _image_frame(data, m.targets, m.predictions, self.settings.small_object)
        images = images.drop(columns=["small objects"], errors="ignore")
        images.insert(1, "item", ids)
        meta = {
            "rows": len(data),
            "images": {k: [_plain(v) for v in col] for k, col in images.to_dict("list").items()},
            "curve_x": {_SEP.join(k): [float(v) for v in c.x] for k, c in m.curves.items()},
            "stages": m.stages,
            "sanity_rows": m.sanity_rows,
            "skipped": [list(s) for s in data.skipped],
            "notes": notes,
        }
        return _arrow(table, curves), meta


def _keys(table: pd.DataFrame) -> list[CurveKey]:
    return list(zip(table["method"], table["layer"], table["metric"], strict=True))


def _curve_of(curves: dict[CurveKey, Curves], key: CurveKey, row: int) -> list[float] | None:
    c = curves.get(key)
    if c is None or row >= len(c.values):
        return None
    return [float(v) for v in c.values[row]]


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NA as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _arrow(table: pd.DataFrame, curves: list[list[float] | None]) -> Any:
    import pyarrow as pa

    out = pa.Table.from_pandas(table, preserve_index=False)
    return out.append_column("curve", pa.array(curves, type=pa.list_(pa.float64())))


def _empty_table() -> Any:
    import pyarrow as pa

    return pa.table({"row": pa.array([], pa.int64())})


# -- the driver ---------------------------------------------------------------------------------
def evaluate_run(
    handle: ModelHandle,
    dataset: Any,
    methods: list[str],
    layers: list[str],
    chosen: list[MetricInfo],
    *,
    targets: Any,
    labels: Any,
    masks: Any,
    annotations: Any,
    max_images: int | None,
    settings: EvaluationSettings,
    progress: Progress | None,
    engine: str | Engine | None,
    out: str | os.PathLike | None,
    block_size: int | None,
) -> EvaluationResult:
    """:func:`~explain.evaluation.evaluate` as a run folder (see the module docstring)."""

    s = settings
    if out is None:
        raise ExplainError("An evaluation run needs a folder.", hint="give out='run-folder/'.")
    if labels is not None or masks is not None or _in_memory(dataset, annotations):
        raise ExplainError(
            "A run reads its images from files; these are in memory.",
            hint="give a folder, a zip or 'builtin:shapes' (or evaluate without engine=).",
        )
    if not (isinstance(targets, str | int | np.integer) or targets is None):
        raise ExplainError(
            "A run takes targets='predicted', 'label' or one class index.",
            hint="for one class per image, evaluate without engine=.",
        )
    t0 = time.perf_counter()
    engine = resolve_engine(engine)
    count = (max_images or DEFAULT_SHAPES) if is_builtin_spec(dataset) else None
    data = load_dataset(dataset, count, s.seed, annotations=annotations)
    indices, notes = select_items(data, max_images, s.seed)
    if not len(indices):
        raise ExplainError(f"No usable image in {data.description}.")
    if not data.has_truth and any(m.needs_masks for m in chosen):
        skipped = [m.name for m in chosen if m.needs_masks]
        notes.append(f"no object masks in this dataset: {', '.join(skipped)} skipped.")
        chosen = [m for m in chosen if not m.needs_masks]
    chosen_data = data.subset(indices)
    engine.check_model(handle)  # before any work
    target = targets if isinstance(targets, str) or targets is None else int(targets)
    description = (
        data.description
        if len(indices) == len(data)
        else f"{len(indices)} of {len(data)} images from {data.description}"
    )
    params = {
        "model": handle.spec,
        "data": description,
        "methods": methods,
        "layers": layers,
        "metrics": [m.name for m in chosen],
        "targets": target if isinstance(target, str) else "given",
        **s.as_params(),
    }
    key = run_key(
        {
            "weights": handle.fingerprint,
            "preprocess": handle.preprocessor.describe(),
            "classes": list(handle.labels),
            "dataset": chosen_data.signature(),
            "target": repr(target),
            **params,
        }
    )
    folder = RunFolder.create(
        out,
        kind=KIND,
        key=key,
        items=len(indices),
        block_size=block_size or BLOCK_SIZE,
        params={
            **params,
            "class_names": list(handle.labels),
            "listing_skipped": [list(x) for x in data.skipped],
            "listing_notes": notes,
        },
    )
    recipe = engine.recipe_for(handle, folder)
    task = EvaluationTask(
        recipe, handle.fingerprint, chosen_data, methods, layers, [m.name for m in chosen],
        target, s,
    )  # fmt: skip
    stats = run_blocks(engine, task, folder, handle, progress, "evaluation")
    result = read_evaluation(folder, s, t0=t0)
    result.timings["blocks"] = stats.seconds
    return result


def read_evaluation(
    run: RunFolder | str | os.PathLike,
    settings: EvaluationSettings | None = None,
    *,
    t0: float | None = None,
) -> EvaluationResult:
    """An evaluation run folder as an :class:`EvaluationResult` (tests and summary computed
    here from the whole table).

    Args:
        run: the folder, or an open :class:`~explain.runs.RunFolder`.
        settings: the settings of the tests (default: those the run was made with).

    Raises:
        RunError: not an evaluation run, or no block written yet.
    """
    import pyarrow.parquet as pq

    from .runner import _TABLE_COLUMNS, conclude

    start = time.perf_counter() if t0 is None else t0
    folder = run if isinstance(run, RunFolder) else open_run(run, KIND)
    params = folder.params
    s = settings or _settings_of(params)
    frames, images, curve_x, stages, sanity_rows = [], [], {}, [], 0
    notes = list(params.get("listing_notes", []))
    skipped = [tuple(x) for x in params.get("listing_skipped", [])]
    offset = 0
    for path, meta in zip(folder.files(), folder.block_meta(), strict=True):
        table = pq.read_table(path).to_pandas()
        if len(table):
            table["image"] = table["row"] + offset
            frames.append(table)
        if meta.get("images"):
            frame = pd.DataFrame(meta["images"])
            frame["image"] += offset
            images.append(frame)
        offset += int(meta.get("rows", 0))
        curve_x.update(meta.get("curve_x", {}))
        stages = meta.get("stages") or stages
        sanity_rows += int(meta.get("sanity_rows", 0))
        notes.extend(meta.get("notes", []))
        skipped.extend(tuple(x) for x in meta.get("skipped", []))
    if not images:
        raise ExplainError(f"No image of the run {folder.path} could be evaluated.")
    whole = _in_memory_order(frames) if frames else pd.DataFrame(columns=_TABLE_COLUMNS)
    image_frame = _images(pd.concat(images, ignore_index=True), s.small_object)
    table = whole.reindex(columns=_TABLE_COLUMNS)
    curves = _curves(whole, curve_x)
    notes = list(dict.fromkeys(notes))
    if skipped:
        notes.insert(0, f"{len(skipped)} file(s) skipped while reading the data.")
    chosen = [METRICS[name] for name in params["metrics"]]
    summary_params = {
        **{k: params[k] for k in ("model", "data", "methods", "layers", "metrics", "targets")},
        "images": len(image_frame),
        **s.as_params(),
        "sanity_images": sanity_rows,
        "run": str(folder.path),
    }
    timings = {"read": time.perf_counter() - start}
    return conclude(table, image_frame, curves, stages, chosen, notes, summary_params, timings, s,
                    start)  # fmt: skip


def _in_memory_order(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of every block in the order of the in-memory table: by (method, layer, metric)
    in order of first appearance, then by image."""
    whole = pd.concat(frames, ignore_index=True)
    keys = pd.MultiIndex.from_frame(whole[["method", "layer", "metric"]])
    rank = pd.factorize(keys)[0]
    order = np.lexsort((whole["image"].to_numpy(), rank))
    return whole.iloc[order].reset_index(drop=True)


def _settings_of(params: dict[str, Any]) -> EvaluationSettings:
    fields = {k: params[k] for k in EvaluationSettings.__dataclass_fields__ if k in params}
    return EvaluationSettings(**fields)


def _images(frame: pd.DataFrame, small_object: float) -> pd.DataFrame:
    """The images table of the whole run (as :func:`~explain.evaluation.runner._image_frame`)."""
    columns = ["image", "name", "label", "target", "prediction", "correct"]
    extra = [c for c in ("object_fraction", "boxes") if c in frame]
    out = frame[columns + extra].copy()
    out["correct"] = pd.array(out["correct"].tolist(), dtype="boolean")
    if "object_fraction" in out:
        out["object_fraction"] = out["object_fraction"].astype(np.float64)
        out["small objects"] = out["object_fraction"] < small_object
    return out.reset_index(drop=True)


def _curves(table: pd.DataFrame, curve_x: dict[str, list[float]]) -> dict[CurveKey, Curves]:
    """Per-image curves from the ``curve`` column, in the order they first appear."""
    if table.empty or "curve" not in table:
        return {}
    rows = table[table["curve"].notna()]
    out: dict[CurveKey, Curves] = {}
    for key, group in rows.groupby(["method", "layer", "metric"], sort=False):
        name = _SEP.join(key)
        values = np.stack([np.asarray(v, dtype=np.float64) for v in group["curve"]])
        x = np.asarray(curve_x.get(name, np.arange(values.shape[1])), dtype=np.float64)
        out[key] = Curves(x, values, group["value"].to_numpy(np.float64), key[2])
    return out


__all__ = ["BLOCK_SIZE", "KIND", "EvaluationTask", "evaluate_run", "read_evaluation"]
