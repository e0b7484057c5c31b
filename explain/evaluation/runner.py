"""``evaluate``: every chosen metric for every method and layer, on a dataset, in one call.

The result is a tidy table (one row per image x method x layer x metric), a summary per
method, layer and metric with the two baseline maps beside it, verdicts from paired tests
against each baseline (on all images and on the images whose object covers less than half of
the picture), and the per-image curves. Maps of the baselines (a seeded random map and a
centred Gaussian, the "centre baseline") go through exactly the same metrics, under the method
names ``"random"`` and ``"gaussian"`` with an empty layer.

The pieces: :mod:`~explain.evaluation.settings` (how to measure),
:mod:`~explain.evaluation.data` (what to measure on), :mod:`~explain.evaluation.scoring` (the
per-map metrics), :mod:`~explain.evaluation.randomisation` (the sanity check),
:mod:`~explain.evaluation.verdicts` (the paired tests) and :mod:`~explain.evaluation.result`
(what comes back).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..cams import check_method, compute_cams
from ..cams.core import CamResult
from ..errors import ExplainError
from ..layers import resolve_layers
from ..metric_info import MetricInfo
from ..models import ModelHandle
from ..progress import Progress
from .base import METRICS, resolve_metrics
from .baselines import BASELINES, baseline_maps
from .data import EvalData, load_eval_data
from .faithfulness import Curves
from .randomisation import cascade_stages, cascading_randomisation, spearman, ssim
from .result import CurveKey, EvaluationResult, summarise
from .scoring import Scorer, score_frame
from .settings import EvaluationSettings
from .tracker import StepTracker
from .verdicts import compare_with_baselines

_TABLE_COLUMNS = [
    "image",
    "name",
    "label",
    "target",
    "prediction",
    "method",
    "layer",
    "metric",
    "category",
    "direction",
    "value",
]

__all__ = ["EvaluationResult", "EvaluationSettings", "evaluate", "summarise"]


def _resolve_targets(
    handle: ModelHandle, data: EvalData, targets: Any, predictions: np.ndarray
) -> np.ndarray:
    if targets is None or (isinstance(targets, str) and targets in ("predicted", "top1", "auto")):
        return predictions.copy()
    if isinstance(targets, str) and targets in ("label", "labels", "true"):
        unknown = int((data.labels < 0).sum())
        if unknown:
            raise ExplainError(
                f"targets='label' needs a known label for every image; {unknown} have none.",
                hint="use targets='predicted', or a dataset whose class names match the model's.",
            )
        return data.labels.copy()
    arr = np.asarray(targets).ravel()
    if len(arr) == 1:
        arr = np.repeat(arr, len(data))
    if len(arr) != len(data):
        raise ExplainError(f"{len(arr)} targets were given for {len(data)} images.")
    return np.array([handle.class_index(int(t)) for t in arr], dtype=np.int64)


def _head(result: CamResult, layers: Sequence[str], n: int) -> CamResult:
    """The first ``n`` images of a single-target :class:`CamResult`."""
    return CamResult(
        {layer: result.maps[layer][:n] for layer in layers},
        {layer: result.raw[layer][:n] for layer in layers},
        result.targets[:n],
        result.probs[:n],
        result.method,
        pixels={layer: px[:n] for layer, px in result.pixels.items()},
    )


def evaluate(
    handle: ModelHandle,
    dataset: Any,
    methods: str | Sequence[str] = ("gradcam",),
    layers: str | Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    *,
    targets: Any = "predicted",
    labels: Sequence[int] | None = None,
    masks: np.ndarray | None = None,
    annotations: Any = None,
    max_images: int | None = None,
    settings: EvaluationSettings | None = None,
    progress: Progress | None = None,
    engine: Any = None,
    out: Any = None,
    block_size: int | None = None,
    **options: Any,
) -> EvaluationResult:
    """Evaluate CAM methods at some layers with the chosen metrics.

    With ``engine`` or ``out``, the per-image measures are a run
    (:mod:`explain.evaluation.blocks`): blocks of images are measured in this process
    (``engine="local"``) or by a pool of Ray actors (``engine="ray"`` or an
    :class:`~explain.runs.RayEngine`), each block written to ``out`` as a Parquet file as soon
    as it is done (an interrupted run resumes); the tests and summary are then computed from
    the whole table, as in memory.

    Args:
        handle: the model.
        dataset: see :func:`~explain.evaluation.data.load_eval_data`: ``"builtin:shapes"``, a
            folder, a zip archive, any :mod:`explain.datasets` dataset (an
            :class:`~explain.datasets.AnnotatedDataset` included), arrays, a tensor,
            ``(images, labels[, masks])``, ...
        methods: CAM methods (see ``explain.METHODS``); a method that cannot run on this model
            (CAM without a GAP + linear head, say) is skipped with a note.
        layers: layers (default ``handle.default_layer``).
        metrics: names from ``METRICS``, a category (``"faithfulness"``, ...), or None for all;
            localisation is skipped (with a note) where there are no masks.
        targets: ``"predicted"`` (the top-1 class, default), ``"label"`` (the true class), or
            one class index per image. The same class is explained and scored.
        labels, masks: for arrays, tensors and lists of images (see ``load_eval_data``).
        annotations: ground truth for a folder, zip or list of images: a boxes CSV, a COCO
            JSON, a Pascal VOC folder, a folder of PNG masks, or uploaded CSV/JSON bytes (boxes
            and masks follow the images through the model's resize and crop).
        max_images: evaluate a seeded subset of this size (stratified by class).
        settings: how to measure (:class:`~explain.evaluation.settings.EvaluationSettings`;
            default settings when None).
        progress: ``progress(done, total, message)``.
        engine: ``None`` (in memory), ``"local"``, ``"ray"`` or an
            :class:`~explain.runs.Engine`; needs a dataset read from files (a folder, a zip,
            ``"builtin:shapes"``, an :mod:`explain.datasets` dataset).
        out: the run folder (required with an engine).
        block_size: images per block file (default
            :data:`explain.evaluation.blocks.BLOCK_SIZE`; a resumed run keeps its own).
        **options: any field of :class:`~explain.evaluation.settings.EvaluationSettings`
            (``steps=10``, ``seed=1``, ``baselines=("random",)``, ``batch_size=32``, ...);
            they override ``settings``.

    Returns:
        :class:`~explain.evaluation.result.EvaluationResult`.

    Raises:
        ExplainError: an unknown method, layer, metric or baseline, a bad setting, or data
            that cannot be read (before any map is computed).
        TypeError: a keyword that is no setting.
    """
    t0 = time.perf_counter()
    s = (settings or EvaluationSettings()).replace(**options)
    methods = [methods] if isinstance(methods, str) else list(methods)
    # Canonical names; an unknown method is a usage error, not something to skip.
    methods = list(dict.fromkeys(check_method(m).name for m in methods))
    layers = [info.name for info in resolve_layers(handle, layers)]
    chosen = resolve_metrics(metrics)
    if not methods and not s.baselines:
        raise ExplainError("Nothing to evaluate: no method and no baseline.")
    if engine is not None or out is not None:
        from .blocks import evaluate_run

        return evaluate_run(
            handle, dataset, methods, layers, chosen, targets=targets, labels=labels,
            masks=masks, annotations=annotations, max_images=max_images, settings=s,
            progress=progress, engine=engine, out=out, block_size=block_size,
        )  # fmt: skip
    data = load_eval_data(
        handle, dataset, labels=labels, masks=masks, annotations=annotations,
        max_images=max_images, seed=s.seed,
    )  # fmt: skip
    notes = list(data.notes)
    chosen = _usable_metrics(data, chosen, notes)
    timings = {"data": time.perf_counter() - t0}
    m = measure(handle, data, methods, layers, chosen, targets, s, progress, notes)
    timings.update(m.timings)
    table = _assemble(m.frames, data, m.targets, m.predictions)
    images = _image_frame(data, m.targets, m.predictions, s.small_object)
    params = {
        "model": handle.spec,
        "data": data.description,
        "images": len(data),
        "methods": methods,
        "layers": layers,
        "metrics": [metric.name for metric in chosen],
        "targets": targets if isinstance(targets, str) else "given",
        **s.as_params(),
        "sanity_images": m.sanity_rows,
    }
    return conclude(table, images, m.curves, m.stages, chosen, notes, params, timings, s, t0)


@dataclass
class Measured:
    """The per-image results of :func:`measure`.

    Attributes:
        frames: table rows (``image``, ``method``, ``layer``, ``metric``, ``value``).
        curves: ``(method, layer, metric) -> Curves``.
        targets, predictions: ``(N,)`` class explained and top-1 class.
        stages: names of the randomisation stages (empty if not run).
        sanity_rows: images the randomisation check ran on (the first rows).
        timings: seconds per step.
    """

    frames: list[pd.DataFrame]
    curves: dict[CurveKey, Curves]
    targets: np.ndarray
    predictions: np.ndarray
    stages: list[str]
    sanity_rows: int
    timings: dict[str, float]


def measure(
    handle: ModelHandle,
    data: EvalData,
    methods: Sequence[str],
    layers: Sequence[str],
    chosen: Sequence[MetricInfo],
    targets: Any,
    s: EvaluationSettings,
    progress: Progress | None,
    notes: list[str],
) -> Measured:
    """Every chosen metric of every method's maps (and the baselines') on ``data``, per image.

    Every value of an image depends on that image alone (random maps and ROAD noise are seeded
    by :attr:`EvalData.row_ids`), so measuring a dataset block by block gives the values of
    measuring it whole. Methods that cannot run here add a line to ``notes``.
    """
    x, n = data.x, len(data)
    ids = data.row_ids
    timings: dict[str, float] = {}
    probs = handle.predict(x, batch_size=s.batch_size)
    predictions = probs.argmax(axis=1)
    tgt = _resolve_targets(handle, data, targets, predictions)
    p_target = probs[np.arange(n), tgt].astype(np.float64)

    sanity_metrics = [m.name for m in chosen if m.group == "randomisation"]
    # The check runs on the first images of the dataset (rows of one image stay together).
    first = n if s.sanity_images is None else max(1, int(s.sanity_images))
    sanity_n = int(np.sum(ids < first)) if sanity_metrics else 0
    stages = cascade_stages(handle, s.sanity_depth, s.sanity_stages) if sanity_metrics else []
    tracker = StepTracker(progress, 1.0)
    scorer = Scorer(handle, data, tgt, p_target, list(chosen), s, tracker, predictions, ids)
    n_maps = len(methods) * len(layers) + len(s.baselines)
    cam_units = 3.0 * n  # a forward and a backward pass per image, about
    sanity_units = 3.0 * sanity_n * len(methods) * len(stages)
    tracker.total = max(
        1.0, cam_units * len(methods) + n_maps * sum(scorer.weights().values()) + sanity_units
    )

    start = time.perf_counter()
    cam_results = _method_maps(handle, x, methods, layers, tgt, s, tracker, cam_units, notes)
    sources = [(m, layer, r.maps[layer]) for m, r in cam_results.items() for layer in layers]
    size = (int(x.shape[-2]), int(x.shape[-1]))
    sources.extend((name, "", baseline_maps(name, n, size, s.seed, ids)) for name in s.baselines)
    timings["maps"] = time.perf_counter() - start

    for method, layer, maps in sources:
        scorer.score(method, layer, maps)
    timings.update(scorer.timings)

    frames, curves = scorer.frames, scorer.curves
    if sanity_metrics and sanity_n:
        start = time.perf_counter()
        callback = tracker.step(sanity_units, "randomisation sanity check")
        _sanity(
            handle, x[:sanity_n], cam_results, sources, layers, tgt[:sanity_n], sanity_metrics,
            len(stages), s, callback, frames, curves,
        )  # fmt: skip
        tracker.finish()
        timings["randomisation"] = time.perf_counter() - start
    return Measured(
        frames, curves, tgt, predictions, [stage.name for stage in stages], sanity_n, timings
    )


def conclude(
    table: pd.DataFrame,
    images: pd.DataFrame,
    curves: dict[CurveKey, Curves],
    stages: list[str],
    chosen: Sequence[MetricInfo],
    notes: list[str],
    params: dict[str, Any],
    timings: dict[str, float],
    s: EvaluationSettings,
    t0: float,
) -> EvaluationResult:
    """Paired tests against the baselines and the summary, on the whole table: the
    :class:`EvaluationResult` of an evaluation (in memory or read from a run folder)."""
    start = time.perf_counter()
    subsets = {"all": images["image"].to_numpy()}
    if "small objects" in images:
        subsets["small objects"] = images.loc[images["small objects"], "image"].to_numpy()
    verdicts = compare_with_baselines(
        table, subsets, baselines=list(s.baselines), test=s.test, confidence=s.confidence,
        alpha=s.alpha, n_resamples=s.n_resamples, seed=s.seed,
    )  # fmt: skip
    timings["statistics"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - t0
    params = {
        **params,
        "subsets": {name: len(idx) for name, idx in subsets.items()},
        "p_adjustment": "holm (within each subset)",
        "sanity_stages": list(stages),
    }
    return EvaluationResult(
        table, summarise(table, verdicts), curves, list(stages), list(chosen), notes, params,
        timings, verdicts, images,
    )  # fmt: skip


def _usable_metrics(data: EvalData, chosen: list[MetricInfo], notes: list[str]) -> list[MetricInfo]:
    """The chosen metrics the data allows (localisation needs masks), with notes on the rest."""
    if data.skipped:
        notes.append(f"{len(data.skipped)} file(s) skipped while reading the data.")
    if data.masks is None and any(m.needs_masks for m in chosen):
        skipped = [m.name for m in chosen if m.needs_masks]
        notes.append(f"no object masks in this dataset: {', '.join(skipped)} skipped.")
        chosen = [m for m in chosen if not m.needs_masks]
    unlabelled = int((data.labels < 0).sum())
    if unlabelled and any(m.name == "localisation_error" for m in chosen):
        notes.append(
            f"localisation_error needs the true class: {unlabelled} image(s) without a known "
            "label have no value."
        )
    return chosen


def _method_maps(
    handle: ModelHandle,
    x: torch.Tensor,
    methods: Sequence[str],
    layers: Sequence[str],
    tgt: np.ndarray,
    s: EvaluationSettings,
    tracker: StepTracker,
    units: float,
    notes: list[str],
) -> dict[str, CamResult]:
    """Every method's maps at every layer; a method that cannot run here is a note."""
    results: dict[str, CamResult] = {}
    for method in methods:
        callback = tracker.step(units, f"{method}: maps")
        try:
            extra = {"max_channels": s.max_channels} if s.max_channels and _perturbs(method) else {}
            res = compute_cams(
                handle, x, list(layers), method, tgt.tolist(), batch_size=s.cam_batch_size,
                progress=callback, **extra,
            )  # fmt: skip
        except ExplainError as exc:
            notes.append(f"{method} skipped: {exc}")
            continue
        finally:
            tracker.finish()
        results[method] = res
        notes.extend(n for n in (f"{method}: {note}" for note in res.notes) if n not in notes)
    return results


def _sanity(
    handle: ModelHandle,
    x: torch.Tensor,
    cam_results: dict[str, CamResult],
    sources: Sequence[tuple[str, str, np.ndarray]],
    layers: Sequence[str],
    tgt: np.ndarray,
    metrics: Sequence[str],
    n_stages: int,
    s: EvaluationSettings,
    progress: Progress,
    frames: list[pd.DataFrame],
    curves: dict[CurveKey, Curves],
) -> None:
    """The randomisation check of every method (rows and curves added to ``frames`` and
    ``curves``), and its value for the baselines (their maps ignore the model)."""
    n = len(x)
    if cam_results:
        sanity = cascading_randomisation(
            handle, x, list(cam_results), list(layers), tgt, depth=s.sanity_depth,
            stages=s.sanity_stages, seed=s.seed, batch_size=s.cam_batch_size,
            original={m: _head(r, layers, n) for m, r in cam_results.items()}, progress=progress,
        )  # fmt: skip
        stage_x = np.arange(1, n_stages + 1, dtype=np.float64)
        for name in metrics:
            for (method, layer), values in getattr(sanity, name.removeprefix("sanity_")).items():
                curves[(method, layer, name)] = Curves(stage_x, values, values[:, -1], name)
                frames.append(score_frame(values[:, -1], method, layer, name))
    # Baselines ignore the model: their map after randomisation is the map itself.
    for method, layer, maps in sources:
        if method in BASELINES:
            same = maps[:n]
            similar = {"sanity_spearman": spearman(same, same), "sanity_ssim": ssim(same, same)}
            similar["sanity_spearman_abs"] = similar["sanity_spearman"]
            frames.extend(score_frame(similar[name], method, layer, name) for name in metrics)


def _perturbs(method: str) -> bool:
    return check_method(method).kind == "perturbation"


def _image_frame(
    data: EvalData, tgt: np.ndarray, predictions: np.ndarray, small_object: float
) -> pd.DataFrame:
    """One row per image: labels, prediction, object size and subset membership."""
    n = len(data)
    known = data.labels >= 0
    frame = pd.DataFrame(
        {
            "image": np.arange(n),
            "name": data.names,
            "label": data.labels,
            "target": tgt,
            "prediction": predictions,
            "correct": pd.array(
                [bool(p == y) if k else pd.NA for p, y, k in zip(predictions, data.labels, known,
                                                                  strict=True)],
                dtype="boolean",
            ),
        }
    )  # fmt: skip
    fraction = data.object_fraction
    if fraction is not None:
        boxes = data.object_boxes() or []
        frame["object_fraction"] = fraction
        frame["boxes"] = [len(b) for b in boxes]
        frame["small objects"] = fraction < small_object
    return frame


def _assemble(
    frames: list[pd.DataFrame], data: EvalData, tgt: np.ndarray, predictions: np.ndarray
) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=_TABLE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    idx = table["image"].to_numpy()
    table["name"] = np.asarray(data.names, dtype=object)[idx]
    table["label"] = data.labels[idx]
    table["target"] = tgt[idx]
    table["prediction"] = predictions[idx]
    table["category"] = table["metric"].map(lambda m: METRICS[m].category)
    table["direction"] = table["metric"].map(lambda m: METRICS[m].direction)
    return table[_TABLE_COLUMNS]
