"""``evaluate``: every chosen metric for every method and layer, on a dataset, in one call.

The result is a tidy table (one row per image x method x layer x metric), a summary per
method, layer and metric with the two baseline maps beside it, and the per-image curves. Maps
of the baselines (a seeded random map and a centred Gaussian) go through exactly the same
metrics, under the method names ``"random"`` and ``"gaussian"`` with an empty layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..cams import compute_cams
from ..cams.core import CamResult
from ..errors import ExplainError
from ..models import ModelHandle
from .base import METRICS, Metric, resolve_metrics
from .baselines import BASELINES, baseline_maps
from .data import EvalData, load_eval_data
from .faithfulness import (
    ROAD_FRACTIONS,
    Baseline,
    Curves,
    confidence_change,
    deletion,
    insertion,
    make_baseline,
    road,
    target_probabilities,
)
from .localisation import energy_pointing_game, pointing_game
from .randomisation import cascading_randomisation, spearman, ssim

Progress = Callable[[int, int, str], None]
CurveKey = tuple[str, str, str]

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


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured.

    Attributes:
        table: one row per image x method x layer x metric; columns ``image`` (index),
            ``name``, ``label`` (-1 unknown), ``target`` (class explained and scored),
            ``prediction`` (top-1), ``method`` (``"random"``/``"gaussian"`` for the baselines),
            ``layer`` (empty for the baselines), ``metric``, ``category``, ``direction``,
            ``value``.
        summary: one row per method x layer x metric: ``mean``, ``std``, ``sem``, ``median``,
            ``n`` (images with a value), ``category``, ``direction``, ``unit``, the baselines'
            means (``random``, ``gaussian``) and whether the row beats them
            (``better_than_random``, ``better_than_gaussian``).
        curves: ``(method, layer, metric) -> Curves`` per image (deletion, insertion, ROAD,
            and the randomisation cascade with ``x`` = stage number 1..S).
        stages: names of the randomisation stages, head first (empty if not run).
        metrics: the metrics asked for, with their metadata.
        notes: what was skipped and why, and anything else worth knowing.
        params: every setting used (for reports and reproducibility).
        timings: seconds per step.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    curves: dict[CurveKey, Curves] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def curve_frame(self, metric: str | None = None) -> pd.DataFrame:
        """Per-image curves as a tidy table: method, layer, metric, image, step, x, value
        (``stage_name`` too for the randomisation cascade)."""
        frames = []
        for (method, layer, name), c in self.curves.items():
            if metric is not None and name != metric:
                continue
            n, s = c.values.shape
            frame = pd.DataFrame(
                {
                    "method": method,
                    "layer": layer,
                    "metric": name,
                    "image": np.repeat(np.arange(n), s),
                    "step": np.tile(np.arange(s), n),
                    "x": np.tile(c.x, n),
                    "value": c.values.ravel(),
                }
            )
            if name.startswith("sanity_") and len(self.stages) == s:
                frame["stage_name"] = np.tile(self.stages, n)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def mean_curves(self, metric: str | None = None) -> pd.DataFrame:
        """Curves averaged over images: method, layer, metric, step, x, mean, std, n."""
        frame = self.curve_frame(metric)
        if frame.empty:
            return frame
        keys = ["method", "layer", "metric", "step", "x"]
        out = frame.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"])
        return out.rename(columns={"count": "n"}).reset_index()

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``table.csv``, ``summary.csv``, ``curves.csv`` (per image), ``mean_curves.csv``
        and ``meta.json`` (settings, notes, timings, metric metadata) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "table": out / "table.csv",
            "summary": out / "summary.csv",
            "curves": out / "curves.csv",
            "mean_curves": out / "mean_curves.csv",
            "meta": out / "meta.json",
        }
        self.table.to_csv(paths["table"], index=False)
        self.summary.to_csv(paths["summary"], index=False)
        self.curve_frame().to_csv(paths["curves"], index=False)
        self.mean_curves().to_csv(paths["mean_curves"], index=False)
        meta = {
            "params": self.params,
            "notes": self.notes,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "stages": self.stages,
            "metrics": {
                m.name: {
                    "title": m.title,
                    "category": m.category,
                    "direction": m.direction,
                    "unit": m.unit,
                    "description": m.description,
                    "reference": m.reference,
                }
                for m in self.metrics
            },
        }
        paths["meta"].write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        return paths


class _Tracker:
    """Maps the progress of each step onto one overall count of work units."""

    def __init__(self, progress: Progress | None, total: float):
        self.progress = progress
        self.total = max(1.0, float(total))
        self.done = 0.0

    def _emit(self, done: float, message: str) -> None:
        if self.progress is not None:
            self.progress(int(min(done, self.total)), int(self.total), message)

    def step(self, weight: float, message: str) -> Progress:
        """A callback for one step of ``weight`` units; call :meth:`finish` after it."""
        base = self.done

        def inner(done: int, todo: int, _msg: str = "") -> None:
            self._emit(base + weight * done / max(todo, 1), message)

        self._pending = (base + weight, message)
        self._emit(base, message)
        return inner

    def finish(self) -> None:
        self.done, message = self._pending
        self._emit(self.done, message)


def _resolve_targets(
    handle: ModelHandle, data: EvalData, targets: Any, predictions: np.ndarray
) -> np.ndarray:
    if targets is None or (isinstance(targets, str) and targets in ("predicted", "top1", "auto")):
        return predictions.copy()
    if isinstance(targets, str) and targets in ("label", "labels", "true"):
        if (data.labels < 0).any():
            raise ExplainError(
                f"targets='label' needs a known label for every image; {int((data.labels < 0).sum())} "
                "have none.",
                hint="use targets='predicted', or a dataset whose class names match the model's.",
            )
        return data.labels.copy()
    arr = np.asarray(targets).ravel()
    if len(arr) == 1:
        arr = np.repeat(arr, len(data))
    if len(arr) != len(data):
        raise ExplainError(f"{len(arr)} targets were given for {len(data)} images.")
    return np.array([handle.class_index(int(t)) for t in arr], dtype=np.int64)


def _frame(values: np.ndarray, method: str, layer: str, metric: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": np.arange(len(values)),
            "method": method,
            "layer": layer,
            "metric": metric,
            "value": np.asarray(values, dtype=np.float64),
        }
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per method x layer x metric statistics of a result table, with baseline comparisons.

    Args:
        table: :attr:`EvaluationResult.table`.

    Returns:
        See :attr:`EvaluationResult.summary`.
    """
    if table.empty:
        return pd.DataFrame()
    grouped = table.groupby(["method", "layer", "metric"], sort=False)["value"]
    summary = grouped.agg(["mean", "std", "median", "count"]).rename(columns={"count": "n"})
    summary["sem"] = summary["std"] / np.sqrt(summary["n"].clip(lower=1))
    summary = summary.reset_index()
    summary["category"] = summary["metric"].map(lambda m: METRICS[m].category)
    summary["direction"] = summary["metric"].map(lambda m: METRICS[m].direction)
    summary["unit"] = summary["metric"].map(lambda m: METRICS[m].unit)
    for name in BASELINES:
        means = summary[summary["method"] == name].set_index("metric")["mean"]
        summary[name] = summary["metric"].map(means)
        better = []
        for row in summary.itertuples():
            base = getattr(row, name)
            if row.method in BASELINES or pd.isna(base) or pd.isna(row.mean):
                better.append(pd.NA)
            else:
                better.append(METRICS[row.metric].better(row.mean, base))
        summary[f"better_than_{name}"] = pd.array(better, dtype="boolean")
    columns = ["method", "layer", "metric", "category", "direction", "unit"]
    columns += ["mean", "std", "sem", "median", "n", *BASELINES]
    columns += [f"better_than_{b}" for b in BASELINES]
    return summary[columns]


def _weights(
    metrics: list[Metric], n: int, n_methods: int, steps: int, fractions: int
) -> dict[str, float]:
    """Rough work units per step and map (one unit ~ one image through the model)."""
    groups = {m.group for m in metrics}
    names = {m.name for m in metrics}
    orders = 2 if "road_combined" in names else len(names & {"road_morf", "road_lerf"})
    return {
        "cams": 3.0 * n * n_methods,
        "deletion": float(n * max(steps - 1, 0)) if "deletion" in groups else 0.0,
        "insertion": float(n * max(steps - 1, 0)) if "insertion" in groups else 0.0,
        "confidence": float(n) if "confidence" in groups else 0.0,
        # Each ROAD image also costs a sparse solve, about as long as a forward pass.
        "road": 2.0 * n * fractions * orders,
    }


def evaluate(
    handle: ModelHandle,
    dataset: Any,
    methods: str | Sequence[str] = ("gradcam",),
    layers: str | Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    *,
    targets: Any = "predicted",
    baselines: Sequence[str] = BASELINES,
    labels: Sequence[int] | None = None,
    masks: np.ndarray | None = None,
    max_images: int | None = None,
    steps: int = 20,
    deletion_baseline: Baseline = "zero",
    insertion_baseline: Baseline = "blur",
    road_fractions: Sequence[float] = ROAD_FRACTIONS,
    road_noise: float = 0.01,
    pointing_tolerance: float = 0.0,
    sanity_depth: int = 2,
    sanity_stages: Sequence[str] | None = None,
    sanity_images: int | None = None,
    batch_size: int = 64,
    cam_batch_size: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate CAM methods at some layers with the chosen metrics.

    Args:
        handle: the model.
        dataset: see :func:`explain.evaluation.data.load_eval_data` (``"builtin:shapes"``, a
            folder, arrays, a tensor, ``(images, labels[, masks])``, ...).
        methods: CAM methods (see ``explain.METHODS``).
        layers: layers (default ``handle.default_layer``).
        metrics: names from ``METRICS``, a category (``"faithfulness"``, ...), or None for all;
            localisation is skipped (with a note) where there are no masks.
        targets: ``"predicted"`` (the top-1 class, default), ``"label"`` (the true class), or
            one class index per image. The same class is explained and scored.
        baselines: baseline maps to score as well (``"random"``, ``"gaussian"``).
        labels, masks: for arrays, tensors and file lists (see ``load_eval_data``).
        max_images: evaluate a seeded random subset of this size.
        steps: points of the deletion and insertion curves (``steps + 1`` with the ends).
        deletion_baseline: what deleted pixels become (see ``make_baseline``; default zeros of
            the model input).
        insertion_baseline: what insertion starts from (default a blurred image).
        road_fractions, road_noise: ROAD removal fractions and imputation noise.
        pointing_tolerance: pixels of tolerance in the pointing game.
        sanity_depth, sanity_stages: randomisation cascade (see ``cascade_stages``).
        sanity_images: run the randomisation check on the first this-many images only.
        batch_size: images per forward pass for the metrics (1 turns batching off).
        cam_batch_size: images per CAM pass.
        seed: seeds everything random (subset, random maps, ROAD noise, randomisation).
        progress: ``progress(done, total, message)``.

    Returns:
        :class:`EvaluationResult`.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    methods = [methods] if isinstance(methods, str) else list(methods)
    if not methods and not baselines:
        raise ExplainError("Nothing to evaluate: no method and no baseline.")
    layers = (
        [handle.default_layer]
        if layers is None
        else ([layers] if isinstance(layers, str) else list(layers))
    )
    for layer in layers:
        handle.map_layer(layer)
    chosen = resolve_metrics(metrics)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ExplainError(f"Unknown baseline(s) {unknown}.", hint=f"use {', '.join(BASELINES)}.")
    data = load_eval_data(
        handle, dataset, labels=labels, masks=masks, max_images=max_images, seed=seed
    )
    notes = list(data.notes)
    if data.skipped:
        notes.append(f"{len(data.skipped)} file(s) skipped while reading the data.")
    if data.masks is None and any(m.needs_masks for m in chosen):
        skipped = [m.name for m in chosen if m.needs_masks]
        notes.append(f"no object masks in this dataset: {', '.join(skipped)} skipped.")
        chosen = [m for m in chosen if not m.needs_masks]
    timings["data"] = time.perf_counter() - t0

    x, n = data.x, len(data)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    groups = {m.group for m in chosen}
    names = {m.name for m in chosen}
    n_maps = len(methods) * len(layers) + len(baselines)
    weights = _weights(chosen, n, len(methods), steps, len(road_fractions))
    sanity_n = n if sanity_images is None else min(n, int(sanity_images))
    n_stages = 0
    if "randomisation" in groups and methods:
        from .randomisation import cascade_stages

        n_stages = len(cascade_stages(handle, sanity_depth, sanity_stages))
    total = weights["cams"] + n_maps * (
        weights["deletion"] + weights["insertion"] + weights["confidence"] + weights["road"] + 1
    )
    total += 3.0 * sanity_n * len(methods) * n_stages
    tracker = _Tracker(progress, total)

    # Predictions and targets.
    probs = handle.predict(x, batch_size=batch_size)
    predictions = probs.argmax(axis=1)
    tgt = _resolve_targets(handle, data, targets, predictions)
    p_target = probs[np.arange(n), tgt].astype(np.float64)

    # Maps: every method at every layer, then the baselines.
    sources: list[tuple[str, str, np.ndarray]] = []
    cam_results: dict[str, CamResult] = {}
    t = time.perf_counter()
    for method in methods:
        cb = tracker.step(weights["cams"] / max(len(methods), 1), f"{method}: maps")
        try:
            res = compute_cams(
                handle, x, layers, method, tgt.tolist(), batch_size=cam_batch_size, progress=cb
            )
        except ExplainError as exc:
            notes.append(f"{method} skipped: {exc}")
            tracker.finish()
            continue
        cam_results[method] = res
        notes.extend(f"{method}: {note}" for note in res.notes if note not in notes)
        sources.extend((method, layer, res.maps[layer]) for layer in layers)
        tracker.finish()
    for name in baselines:
        sources.append((name, "", baseline_maps(name, n, size, seed)))
    timings["maps"] = time.perf_counter() - t

    frames: list[pd.DataFrame] = []
    curves: dict[CurveKey, Curves] = {}
    metric_time = dict.fromkeys(
        ("deletion", "insertion", "confidence", "road", "localisation"), 0.0
    )

    # Map-independent endpoints of the deletion and insertion curves, computed once.
    del_end = ins_start = None
    del_ends = ins_ends = None
    if "deletion" in groups:
        del_end = make_baseline(x, deletion_baseline)
        del_ends = (
            p_target,
            target_probabilities(
                handle, n, lambda lo, hi: (del_end[lo:hi], tgt[lo:hi]), batch_size
            ),
        )
    if "insertion" in groups:
        ins_start = make_baseline(x, insertion_baseline)
        ins_ends = (
            target_probabilities(
                handle, n, lambda lo, hi: (ins_start[lo:hi], tgt[lo:hi]), batch_size
            ),
            p_target,
        )

    for method, layer, maps in sources:
        label = f"{method}" + (f" at {layer}" if layer else " map")
        if "deletion" in groups:
            t = time.perf_counter()
            cb = tracker.step(weights["deletion"], f"deletion: {label}")
            c = deletion(
                handle, x, maps, tgt, steps=steps, baseline=del_end, batch_size=batch_size,
                endpoints=del_ends, progress=cb,
            )  # fmt: skip
            tracker.finish()
            curves[(method, layer, "deletion")] = c
            frames.append(_frame(c.scores, method, layer, "deletion"))
            metric_time["deletion"] += time.perf_counter() - t
        if "insertion" in groups:
            t = time.perf_counter()
            cb = tracker.step(weights["insertion"], f"insertion: {label}")
            c = insertion(
                handle, x, maps, tgt, steps=steps, baseline=ins_start, batch_size=batch_size,
                endpoints=ins_ends, progress=cb,
            )  # fmt: skip
            tracker.finish()
            curves[(method, layer, "insertion")] = c
            frames.append(_frame(c.scores, method, layer, "insertion"))
            metric_time["insertion"] += time.perf_counter() - t
        if "confidence" in groups:
            t = time.perf_counter()
            tracker.step(weights["confidence"], f"average drop: {label}")
            cc = confidence_change(handle, x, maps, tgt, batch_size=batch_size, p=p_target)
            tracker.finish()
            for name in ("average_drop", "increase_in_confidence"):
                if name in names:
                    frames.append(_frame(getattr(cc, name), method, layer, name))
            metric_time["confidence"] += time.perf_counter() - t
        if "road" in groups:
            t = time.perf_counter()
            cb = tracker.step(weights["road"], f"ROAD: {label}")
            wanted = {"morf", "lerf"} if "road_combined" in names else set()
            wanted |= {o for o in ("morf", "lerf") if f"road_{o}" in names}
            road_curves = {}
            for k, order in enumerate(sorted(wanted, reverse=True)):

                def sub(
                    d: int, todo: int, _m: str = "", _k: int = k, _cb=cb, _of: int = len(wanted)
                ) -> None:
                    _cb(_k * todo + d, _of * todo)

                road_curves[order] = road(
                    handle, x, maps, tgt, order=order, fractions=road_fractions,
                    noise=road_noise, seed=seed, batch_size=batch_size, progress=sub,
                )  # fmt: skip
            tracker.finish()
            for order, c in road_curves.items():
                if f"road_{order}" in names:
                    curves[(method, layer, f"road_{order}")] = c
                    frames.append(_frame(c.scores, method, layer, f"road_{order}"))
            if "road_combined" in names:
                combined = (road_curves["lerf"].scores - road_curves["morf"].scores) / 2
                frames.append(_frame(combined, method, layer, "road_combined"))
            metric_time["road"] += time.perf_counter() - t
        if "localisation" in groups:
            t = time.perf_counter()
            if "pointing_game" in names:
                hits = pointing_game(maps, data.masks, pointing_tolerance)
                frames.append(_frame(hits, method, layer, "pointing_game"))
            if "energy_pointing_game" in names:
                energy = energy_pointing_game(maps, data.masks)
                frames.append(_frame(energy, method, layer, "energy_pointing_game"))
            metric_time["localisation"] += time.perf_counter() - t
        tracker.step(1.0, f"done: {label}")
        tracker.finish()
    timings.update({k: v for k, v in metric_time.items() if v > 0})

    stage_names: list[str] = []
    if "randomisation" in groups:
        t = time.perf_counter()
        sanity_metrics = [m.name for m in chosen if m.group == "randomisation"]
        if cam_results:
            cb = tracker.step(3.0 * sanity_n * len(methods) * n_stages, "randomisation")
            original = {
                method: CamResult(
                    {layer: r.maps[layer][:sanity_n] for layer in layers},
                    {layer: r.raw[layer][:sanity_n] for layer in layers},
                    r.targets[:sanity_n],
                    r.probs[:sanity_n],
                    r.method,
                )
                for method, r in cam_results.items()
            }
            sanity = cascading_randomisation(
                handle, x[:sanity_n], list(cam_results), layers, tgt[:sanity_n],
                depth=sanity_depth, stages=sanity_stages, seed=seed,
                batch_size=cam_batch_size, original=original, progress=cb,
            )  # fmt: skip
            tracker.finish()
            stage_names = sanity.stage_names
            steps_x = np.arange(1, len(stage_names) + 1, dtype=np.float64)
            for name in sanity_metrics:
                which = name.removeprefix("sanity_")
                for (method, layer), values in getattr(sanity, which).items():
                    curves[(method, layer, name)] = Curves(steps_x, values, values[:, -1], name)
                    frames.append(_frame(values[:, -1], method, layer, name))
        # Baselines ignore the model: their randomised map is the map itself.
        for method, layer, maps in sources:
            if method not in BASELINES:
                continue
            same = {
                "sanity_spearman": spearman(maps[:sanity_n], maps[:sanity_n]),
                "sanity_spearman_abs": spearman(maps[:sanity_n], maps[:sanity_n]),
                "sanity_ssim": ssim(maps[:sanity_n], maps[:sanity_n]),
            }
            for name in sanity_metrics:
                frames.append(_frame(same[name], method, layer, name))
        timings["randomisation"] = time.perf_counter() - t

    table = _assemble(frames, data, tgt, predictions)
    timings["total"] = time.perf_counter() - t0
    params = {
        "model": handle.spec,
        "data": data.description,
        "images": n,
        "methods": methods,
        "layers": layers,
        "metrics": [m.name for m in chosen],
        "targets": targets if isinstance(targets, str) else "given",
        "baselines": list(baselines),
        "steps": steps,
        "deletion_baseline": str(deletion_baseline)
        if not isinstance(deletion_baseline, torch.Tensor)
        else "tensor",
        "insertion_baseline": str(insertion_baseline)
        if not isinstance(insertion_baseline, torch.Tensor)
        else "tensor",
        "road_fractions": list(road_fractions),
        "road_noise": road_noise,
        "pointing_tolerance": pointing_tolerance,
        "sanity_depth": sanity_depth,
        "sanity_images": sanity_n,
        "batch_size": batch_size,
        "seed": seed,
    }
    return EvaluationResult(
        table, summarise(table), curves, stage_names, chosen, notes, params, timings
    )


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
