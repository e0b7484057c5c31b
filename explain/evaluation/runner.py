"""``evaluate``: every chosen metric for every method and layer, on a dataset, in one call.

The result is a tidy table (one row per image x method x layer x metric), a summary per
method, layer and metric with the two baseline maps beside it, verdicts from paired tests
against each baseline (on all images and on the images whose object covers less than half of
the picture), and the per-image curves. Maps of the baselines (a seeded random map and a
centred Gaussian, the "centre baseline") go through exactly the same metrics, under the method
names ``"random"`` and ``"gaussian"`` with an empty layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..cams import check_method, compute_cams
from ..cams.core import CamResult
from ..errors import ExplainError
from ..layers import resolve_layers
from ..models import ModelHandle
from ..progress import Progress, within
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
from .localisation import box_localisation, energy_pointing_game, localisation_error, pointing_game
from .randomisation import cascade_stages, cascading_randomisation, spearman, ssim
from .statistics import N_RESAMPLES, TESTS
from .verdicts import VERDICT_COLUMNS, compare_with_baselines, verdict_sentence

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
        summary: one row per method x layer x metric, on all images: ``mean``, ``std``,
            ``sem``, ``median``, ``n`` (images with a value), ``category``, ``direction``,
            ``unit``, the baselines' means (``random``, ``gaussian``), the paired test's
            p-value against each (``p_random``, ``p_gaussian``, Holm-adjusted) and whether the
            row is significantly better (``better_than_random``, ``better_than_gaussian``).
        curves: ``(method, layer, metric) -> Curves`` per image (deletion, insertion, ROAD,
            and the randomisation cascade with ``x`` = stage number 1..S).
        stages: names of the randomisation stages, head first (empty if not run).
        metrics: the metrics asked for, with their metadata.
        notes: what was skipped and why, and anything else worth knowing.
        params: every setting used (for reports and reproducibility).
        timings: seconds per step.
        verdicts: one row per subset x method x layer x metric x baseline from a paired test
            over images (see :func:`~explain.evaluation.verdicts.compare_with_baselines`):
            means, mean difference with its confidence interval, p-value (raw and
            Holm-adjusted within the subset) and ``verdict``.
        images: one row per image: ``image``, ``name``, ``label``, ``target``,
            ``prediction``, ``correct`` (top-1 is the label; NA when unknown),
            ``object_fraction`` (share of the input covered by the object mask), ``boxes``
            (ground-truth boxes kept), and a bool column per subset.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    curves: dict[CurveKey, Curves] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=VERDICT_COLUMNS))
    images: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def subsets(self) -> list[str]:
        """Names of the subsets of images the verdicts cover (``"all"`` first)."""
        return list(dict.fromkeys(self.verdicts["subset"])) if len(self.verdicts) else ["all"]

    def subset_summary(self) -> pd.DataFrame:
        """Means per subset x method x layer x metric (baselines included): ``subset``,
        ``method``, ``layer``, ``metric``, ``mean``, ``n``."""
        frames = []
        for name in self.subsets:
            chosen = (
                self.images["image"][self.images[name]]
                if name in self.images
                else self.table["image"].unique()
            )
            part = self.table[self.table["image"].isin(chosen)]
            grouped = part.groupby(["method", "layer", "metric"], sort=False)["value"]
            stats = grouped.agg(["mean", "count"]).rename(columns={"count": "n"}).reset_index()
            stats.insert(0, "subset", name)
            frames.append(stats)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def leaderboard(self, subset: str = "all") -> pd.DataFrame:
        """Methods x metrics for one subset: the mean, and for every baseline its mean, the
        mean difference with its interval, the adjusted p-value and the verdict (one row per
        method, layer, metric and baseline)."""
        v = self.verdicts[self.verdicts["subset"] == subset]
        return v.drop(columns=["subset"]).reset_index(drop=True)

    def sentences(self, subset: str | None = None) -> list[str]:
        """Every verdict as a sentence with its numbers (see ``verdict_sentence``)."""
        v = self.verdicts if subset is None else self.verdicts[self.verdicts["subset"] == subset]
        return [verdict_sentence(row) for row in v.to_dict("records")]

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
        """Write ``table.csv``, ``summary.csv``, ``verdicts.csv``, ``images.csv``,
        ``curves.csv`` (per image), ``mean_curves.csv``, ``report.md`` (the verdict tables)
        and ``meta.json`` (settings, notes, timings, metric metadata) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "table": out / "table.csv",
            "summary": out / "summary.csv",
            "curves": out / "curves.csv",
            "mean_curves": out / "mean_curves.csv",
            "verdicts": out / "verdicts.csv",
            "images": out / "images.csv",
            "report": out / "report.md",
            "meta": out / "meta.json",
        }
        self.table.to_csv(paths["table"], index=False)
        self.summary.to_csv(paths["summary"], index=False)
        self.verdicts.to_csv(paths["verdicts"], index=False)
        self.images.to_csv(paths["images"], index=False)
        from .reporting import markdown_report

        paths["report"].write_text(markdown_report(self), encoding="utf-8")
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


def summarise(
    table: pd.DataFrame,
    verdicts: pd.DataFrame | None = None,
    *,
    test: str = "wilcoxon",
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Per method x layer x metric statistics of a result table, with baseline comparisons.

    Whether a row beats a baseline comes from a paired test over images (see
    :func:`~explain.evaluation.verdicts.compare_with_baselines`), never from comparing means.

    Args:
        table: :attr:`EvaluationResult.table`.
        verdicts: the verdict table to take the tests from (its ``"all"`` subset); computed
            from ``table`` when None.
        test, alpha, seed: for the paired tests when they are computed here.

    Returns:
        See :attr:`EvaluationResult.summary`.
    """
    if table.empty:
        return pd.DataFrame()
    if verdicts is None:
        verdicts = compare_with_baselines(table, test=test, alpha=alpha, seed=seed)
    grouped = table.groupby(["method", "layer", "metric"], sort=False)["value"]
    summary = grouped.agg(["mean", "std", "median", "count"]).rename(columns={"count": "n"})
    summary["sem"] = summary["std"] / np.sqrt(summary["n"].clip(lower=1))
    summary = summary.reset_index()
    summary["category"] = summary["metric"].map(lambda m: METRICS[m].category)
    summary["direction"] = summary["metric"].map(lambda m: METRICS[m].direction)
    summary["unit"] = summary["metric"].map(lambda m: METRICS[m].unit)
    tested = verdicts[verdicts["subset"] == "all"].set_index(
        ["method", "layer", "metric", "baseline"]
    )
    for name in BASELINES:
        means = summary[summary["method"] == name].set_index("metric")["mean"]
        summary[name] = summary["metric"].map(means)
        p_values, better = [], []
        for row in summary.itertuples():
            key = (row.method, row.layer, row.metric, name)
            if row.method in BASELINES or key not in tested.index:
                p_values.append(np.nan)
                better.append(pd.NA)
                continue
            found = tested.loc[key]
            p_values.append(float(found["p_adjusted"]))
            better.append(
                found["verdict"] == "better" if found["verdict"] != "not tested" else pd.NA
            )
        summary[f"p_{name}"] = p_values
        summary[f"better_than_{name}"] = pd.array(better, dtype="boolean")
    columns = ["method", "layer", "metric", "category", "direction", "unit"]
    columns += ["mean", "std", "sem", "median", "n", *BASELINES]
    columns += [f"p_{b}" for b in BASELINES]
    columns += [f"better_than_{b}" for b in BASELINES]
    return summary[columns]


@dataclass(frozen=True)
class _Settings:
    """The knobs of one evaluation (see :func:`evaluate`)."""

    steps: int
    deletion_baseline: Baseline
    insertion_baseline: Baseline
    road_fractions: tuple[float, ...]
    road_noise: float
    pointing_tolerance: float
    loc_threshold: float
    iou_threshold: float
    batch_size: int
    seed: int


_GROUP_TITLES = {
    "deletion": "deletion",
    "insertion": "insertion",
    "confidence": "Average Drop",
    "road": "ROAD",
    "localisation": "pointing game",
}


class _Scorer:
    """Scores maps with the chosen per-map metrics, collecting table rows, curves and timings.

    The endpoints of the deletion and insertion curves do not depend on the map: they are
    computed once here and shared by every map.
    """

    def __init__(
        self,
        handle: ModelHandle,
        data: EvalData,
        targets: np.ndarray,
        p_target: np.ndarray,
        metrics: list[Metric],
        settings: _Settings,
        tracker: _Tracker,
        predictions: np.ndarray,
    ):
        self.handle, self.data, self.tgt, self.p = handle, data, targets, p_target
        labels = data.labels
        # Top-1 correct, per image; NaN where the true class is unknown.
        self.correct = np.where(labels >= 0, (predictions == labels).astype(np.float64), np.nan)
        self.boxes: list[np.ndarray] | None = None
        self.names = {m.name for m in metrics}
        self.groups = {m.group for m in metrics}
        self.s = settings
        self.tracker = tracker
        self.frames: list[pd.DataFrame] = []
        self.curves: dict[CurveKey, Curves] = {}
        self.timings: dict[str, float] = {}
        x, n, tgt, bs = data.x, len(data), targets, settings.batch_size
        if "deletion" in self.groups:
            self.del_end = make_baseline(x, settings.deletion_baseline)
            p_end = target_probabilities(
                handle, n, lambda lo, hi: (self.del_end[lo:hi], tgt[lo:hi]), bs
            )
            self.del_endpoints = (p_target, p_end)
        if "insertion" in self.groups:
            self.ins_start = make_baseline(x, settings.insertion_baseline)
            p_start = target_probabilities(
                handle, n, lambda lo, hi: (self.ins_start[lo:hi], tgt[lo:hi]), bs
            )
            self.ins_endpoints = (p_start, p_target)

    @property
    def road_orders(self) -> list[str]:
        both = "road_combined" in self.names
        return [o for o in ("morf", "lerf") if both or f"road_{o}" in self.names]

    def weights(self) -> dict[str, float]:
        """Rough work units per map for each group (one unit ~ one image through the model)."""
        n, inner = len(self.data), max(self.s.steps - 1, 0)
        return {
            "deletion": float(n * inner) if "deletion" in self.groups else 0.0,
            "insertion": float(n * inner) if "insertion" in self.groups else 0.0,
            "confidence": float(n) if "confidence" in self.groups else 0.0,
            # Each ROAD image also costs a sparse solve, about as long as a forward pass.
            "road": 2.0 * n * len(self.s.road_fractions) * len(self.road_orders),
            "localisation": 0.0,
        }

    def _add(self, values: np.ndarray, method: str, layer: str, metric: str) -> None:
        if metric in self.names:
            self.frames.append(_frame(values, method, layer, metric))

    def score(self, method: str, layer: str, maps: np.ndarray) -> None:
        """Every chosen per-map metric for the maps ``(N, H, W)`` of ``method`` at ``layer``."""
        label = method + (f" at {layer}" if layer else " map")
        weights = self.weights()
        for group, run in (
            ("deletion", self._deletion),
            ("insertion", self._insertion),
            ("confidence", self._confidence),
            ("road", self._road),
            ("localisation", self._localisation),
        ):
            if group not in self.groups:
                continue
            start = time.perf_counter()
            callback = self.tracker.step(weights[group], f"{_GROUP_TITLES[group]}: {label}")
            run(method, layer, maps, callback)
            self.tracker.finish()
            self.timings[group] = self.timings.get(group, 0.0) + time.perf_counter() - start

    def _deletion(self, method: str, layer: str, maps: np.ndarray, progress: Progress) -> None:
        c = deletion(
            self.handle, self.data.x, maps, self.tgt, steps=self.s.steps, baseline=self.del_end,
            batch_size=self.s.batch_size, endpoints=self.del_endpoints, progress=progress,
        )  # fmt: skip
        self.curves[(method, layer, "deletion")] = c
        self._add(c.scores, method, layer, "deletion")

    def _insertion(self, method: str, layer: str, maps: np.ndarray, progress: Progress) -> None:
        c = insertion(
            self.handle, self.data.x, maps, self.tgt, steps=self.s.steps,
            baseline=self.ins_start, batch_size=self.s.batch_size,
            endpoints=self.ins_endpoints, progress=progress,
        )  # fmt: skip
        self.curves[(method, layer, "insertion")] = c
        self._add(c.scores, method, layer, "insertion")

    def _confidence(self, method: str, layer: str, maps: np.ndarray, progress: Progress) -> None:
        cc = confidence_change(
            self.handle, self.data.x, maps, self.tgt, batch_size=self.s.batch_size, p=self.p
        )
        self._add(cc.average_drop, method, layer, "average_drop")
        self._add(cc.increase_in_confidence, method, layer, "increase_in_confidence")

    def _road(self, method: str, layer: str, maps: np.ndarray, progress: Progress) -> None:
        orders = self.road_orders
        scores = {}
        for k, order in enumerate(orders):
            c = road(
                self.handle, self.data.x, maps, self.tgt, order=order,
                fractions=self.s.road_fractions, noise=self.s.road_noise, seed=self.s.seed,
                batch_size=self.s.batch_size,
                progress=within(progress, k / len(orders), (k + 1) / len(orders)),
            )  # fmt: skip
            scores[order] = c.scores
            if f"road_{order}" in self.names:
                self.curves[(method, layer, f"road_{order}")] = c
                self._add(c.scores, method, layer, f"road_{order}")
        if "road_combined" in self.names:
            self._add((scores["lerf"] - scores["morf"]) / 2, method, layer, "road_combined")

    def _localisation(self, method: str, layer: str, maps: np.ndarray, progress: Progress) -> None:
        masks, s = self.data.masks, self.s
        self._add(pointing_game(maps, masks, s.pointing_tolerance), method, layer,
                  "pointing_game")  # fmt: skip
        self._add(energy_pointing_game(maps, masks), method, layer, "energy_pointing_game")
        if self.names & {"box_iou", "box_accuracy", "localisation_error"}:
            if self.boxes is None:  # boxes of mask regions are worked out once
                self.boxes = self.data.object_boxes()
            _, iou = box_localisation(maps, self.boxes, s.loc_threshold)
            self._add(iou, method, layer, "box_iou")
            hit = np.where(np.isfinite(iou), (iou >= s.iou_threshold).astype(np.float64), np.nan)
            self._add(hit, method, layer, "box_accuracy")
            error = localisation_error(iou, self.correct, s.iou_threshold)
            self._add(error, method, layer, "localisation_error")


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
    baselines: Sequence[str] = BASELINES,
    labels: Sequence[int] | None = None,
    masks: np.ndarray | None = None,
    annotations: Any = None,
    max_images: int | None = None,
    steps: int = 20,
    deletion_baseline: Baseline = "zero",
    insertion_baseline: Baseline = "blur",
    road_fractions: Sequence[float] = ROAD_FRACTIONS,
    road_noise: float = 0.01,
    pointing_tolerance: float = 0.0,
    loc_threshold: float = 0.15,
    iou_threshold: float = 0.5,
    small_object: float = 0.5,
    test: str = "wilcoxon",
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_resamples: int = N_RESAMPLES,
    sanity_depth: int = 2,
    sanity_stages: Sequence[str] | None = None,
    sanity_images: int | None = None,
    max_channels: int | None = None,
    batch_size: int = 64,
    cam_batch_size: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate CAM methods at some layers with the chosen metrics.

    Args:
        handle: the model.
        dataset: see :func:`explain.evaluation.data.load_eval_data` (``"builtin:shapes"``, a
            folder, arrays, a tensor, ``(images, labels[, masks])``, an
            :class:`~explain.evaluation.annotated.AnnotatedDataset`, ...).
        methods: CAM methods (see ``explain.METHODS``); a method that cannot run on this model
            (CAM without a GAP + linear head, say) is skipped with a note.
        layers: layers (default ``handle.default_layer``).
        metrics: names from ``METRICS``, a category (``"faithfulness"``, ...), or None for all;
            localisation is skipped (with a note) where there are no masks.
        targets: ``"predicted"`` (the top-1 class, default), ``"label"`` (the true class), or
            one class index per image. The same class is explained and scored.
        baselines: baseline maps to score as well (``"random"``, ``"gaussian"``).
        labels, masks: for arrays, tensors and file lists (see ``load_eval_data``).
        annotations: ground truth for a folder or list of images: a boxes CSV, a COCO JSON, a
            Pascal VOC folder, a folder of PNG masks, or uploaded CSV/JSON bytes (boxes and
            masks follow the images through the model's resize and crop).
        max_images: evaluate a seeded random subset of this size.
        steps: intervals of the deletion and insertion curves (``steps + 1`` points).
        deletion_baseline: what deleted pixels become (see ``make_baseline``; default zeros of
            the model input).
        insertion_baseline: what insertion starts from (default a blurred image).
        road_fractions, road_noise: ROAD removal fractions and imputation noise.
        pointing_tolerance: pixels of tolerance in the pointing game.
        loc_threshold: box localisation keeps the pixels at or above this fraction of each
            map's maximum (0.15 as in Grad-CAM).
        iou_threshold: IoU a box needs to count as localised (0.5).
        small_object: images whose object mask covers less than this share of the input form
            the subset ``"small objects"`` (verdicts on it too).
        test: the paired test behind every verdict: ``"wilcoxon"`` or ``"bootstrap"``.
        confidence: level of the intervals of mean differences.
        alpha: significance level of the verdicts (Holm-adjusted within a subset).
        n_resamples: bootstrap resamples for the intervals (and the bootstrap test).
        sanity_depth, sanity_stages: randomisation cascade (see ``cascade_stages``).
        sanity_images: run the randomisation check on the first this-many images only.
        max_channels: Score-CAM / Ablation-CAM only, approximate: perturb only this many
            channels (of highest activation variance); other methods ignore it.
        batch_size: images per forward pass for the metrics (1 turns batching off).
        cam_batch_size: images per CAM pass.
        seed: seeds everything random (subset, random maps, ROAD noise, randomisation).
        progress: ``progress(done, total, message)``.

    Returns:
        :class:`EvaluationResult`.
    """
    t0 = time.perf_counter()
    methods = [methods] if isinstance(methods, str) else list(methods)
    # Canonical names; an unknown method is a usage error, not something to skip.
    methods = list(dict.fromkeys(check_method(m).name for m in methods))
    layers = [info.name for info in resolve_layers(handle, layers)]
    chosen = resolve_metrics(metrics)
    _check_settings(test, confidence, alpha, loc_threshold, iou_threshold, small_object)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ExplainError(f"Unknown baseline(s) {unknown}.", hint=f"use {', '.join(BASELINES)}.")
    if not methods and not baselines:
        raise ExplainError("Nothing to evaluate: no method and no baseline.")
    data = load_eval_data(
        handle, dataset, labels=labels, masks=masks, annotations=annotations,
        max_images=max_images, seed=seed,
    )  # fmt: skip
    notes = list(data.notes)
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
    timings = {"data": time.perf_counter() - t0}
    x, n = data.x, len(data)
    size = (int(x.shape[-2]), int(x.shape[-1]))

    probs = handle.predict(x, batch_size=batch_size)
    predictions = probs.argmax(axis=1)
    tgt = _resolve_targets(handle, data, targets, predictions)
    p_target = probs[np.arange(n), tgt].astype(np.float64)

    settings = _Settings(
        steps, deletion_baseline, insertion_baseline, tuple(road_fractions), road_noise,
        pointing_tolerance, loc_threshold, iou_threshold, batch_size, seed,
    )  # fmt: skip
    sanity_metrics = [m.name for m in chosen if m.group == "randomisation"]
    sanity_n = n if sanity_images is None else max(1, min(n, int(sanity_images)))
    stages = cascade_stages(handle, sanity_depth, sanity_stages) if sanity_metrics else []
    tracker = _Tracker(progress, 1.0)
    scorer = _Scorer(handle, data, tgt, p_target, chosen, settings, tracker, predictions)
    n_maps = len(methods) * len(layers) + len(baselines)
    cam_units = 3.0 * n  # a forward and a backward pass per image, about
    sanity_units = 3.0 * sanity_n * len(methods) * len(stages)
    tracker.total = max(
        1.0, cam_units * len(methods) + n_maps * sum(scorer.weights().values()) + sanity_units
    )

    # Maps: every method at every layer, then the baselines.
    start = time.perf_counter()
    sources: list[tuple[str, str, np.ndarray]] = []
    cam_results: dict[str, CamResult] = {}
    for method in methods:
        callback = tracker.step(cam_units, f"{method}: maps")
        try:
            extra = {"max_channels": max_channels} if max_channels and _perturbs(method) else {}
            res = compute_cams(
                handle, x, layers, method, tgt.tolist(), batch_size=cam_batch_size,
                progress=callback, **extra,
            )  # fmt: skip
        except ExplainError as exc:
            notes.append(f"{method} skipped: {exc}")
            continue
        finally:
            tracker.finish()
        cam_results[method] = res
        notes.extend(n for n in (f"{method}: {note}" for note in res.notes) if n not in notes)
        sources.extend((method, layer, res.maps[layer]) for layer in layers)
    sources.extend((name, "", baseline_maps(name, n, size, seed)) for name in baselines)
    timings["maps"] = time.perf_counter() - start

    for method, layer, maps in sources:
        scorer.score(method, layer, maps)
    timings.update(scorer.timings)

    frames, curves = scorer.frames, scorer.curves
    if sanity_metrics:
        start = time.perf_counter()
        if cam_results:
            callback = tracker.step(sanity_units, "randomisation sanity check")
            sanity = cascading_randomisation(
                handle, x[:sanity_n], list(cam_results), layers, tgt[:sanity_n],
                depth=sanity_depth, stages=sanity_stages, seed=seed, batch_size=cam_batch_size,
                original={m: _head(r, layers, sanity_n) for m, r in cam_results.items()},
                progress=callback,
            )  # fmt: skip
            tracker.finish()
            stage_x = np.arange(1, len(stages) + 1, dtype=np.float64)
            for name in sanity_metrics:
                for (method, layer), values in getattr(
                    sanity, name.removeprefix("sanity_")
                ).items():
                    curves[(method, layer, name)] = Curves(stage_x, values, values[:, -1], name)
                    frames.append(_frame(values[:, -1], method, layer, name))
        # Baselines ignore the model: their map after randomisation is the map itself.
        for method, layer, maps in sources:
            if method in BASELINES:
                same = maps[:sanity_n]
                similar = {"sanity_spearman": spearman(same, same), "sanity_ssim": ssim(same, same)}
                similar["sanity_spearman_abs"] = similar["sanity_spearman"]
                frames.extend(_frame(similar[name], method, layer, name) for name in sanity_metrics)
        timings["randomisation"] = time.perf_counter() - start

    table = _assemble(frames, data, tgt, predictions)
    start = time.perf_counter()
    images = _image_frame(data, tgt, predictions, small_object)
    subsets = {"all": images["image"].to_numpy()}
    if "small objects" in images:
        subsets["small objects"] = images.loc[images["small objects"], "image"].to_numpy()
    verdicts = compare_with_baselines(
        table, subsets, baselines=[b for b in baselines if b in BASELINES], test=test,
        confidence=confidence, alpha=alpha, n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    timings["statistics"] = time.perf_counter() - start
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
        "deletion_baseline": _describe(deletion_baseline),
        "insertion_baseline": _describe(insertion_baseline),
        "road_fractions": list(road_fractions),
        "road_noise": road_noise,
        "pointing_tolerance": pointing_tolerance,
        "loc_threshold": loc_threshold,
        "iou_threshold": iou_threshold,
        "small_object": small_object,
        "subsets": {name: len(idx) for name, idx in subsets.items()},
        "test": test,
        "confidence": confidence,
        "alpha": alpha,
        "p_adjustment": "holm (within each subset)",
        "n_resamples": n_resamples,
        "max_channels": max_channels,
        "sanity_stages": [s.name for s in stages],
        "sanity_images": sanity_n if sanity_metrics else 0,
        "batch_size": batch_size,
        "seed": seed,
    }
    return EvaluationResult(
        table, summarise(table, verdicts), curves, [s.name for s in stages], chosen, notes,
        params, timings, verdicts, images,
    )  # fmt: skip


def _check_settings(
    test: str, confidence: float, alpha: float, threshold: float, iou: float, small: float
) -> None:
    """Refuse bad settings before any work is done."""
    if test not in TESTS:
        raise ExplainError(f"Unknown paired test {test!r}.", hint=f"use {' or '.join(TESTS)}.")
    for name, value, low, high in (
        ("confidence", confidence, 0.0, 1.0),
        ("alpha", alpha, 0.0, 1.0),
        ("loc_threshold", threshold, 0.0, 1.0),
        ("iou_threshold", iou, 0.0, 1.0),
        ("small_object", small, 0.0, 1.0),
    ):
        inside = low < value < high if name in ("confidence", "alpha") else low <= value <= high
        if not inside:
            raise ExplainError(f"{name} must lie between {low} and {high}, got {value}.")


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


def _describe(baseline: Baseline) -> str:
    return "tensor" if isinstance(baseline, torch.Tensor) else str(baseline)


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
