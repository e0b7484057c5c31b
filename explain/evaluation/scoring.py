"""Scoring maps: every chosen per-map metric (deletion, insertion, Average Drop and Increase in
Confidence, ROAD, the localisation metrics) for the maps of one method at one layer, collected
as table rows, per-image curves and timings."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..metric_info import MetricInfo
from ..models import ModelHandle
from ..progress import Progress, within
from .data import EvalData
from .faithfulness import (
    Curves,
    confidence_change,
    deletion,
    insertion,
    make_baseline,
    road,
    target_probabilities,
)
from .localisation import box_localisation, energy_pointing_game, localisation_error, pointing_game
from .result import CurveKey
from .settings import EvaluationSettings
from .tracker import StepTracker


def score_frame(values: np.ndarray, method: str, layer: str, metric: str) -> pd.DataFrame:
    """Table rows of one metric for the maps of one method at one layer: ``(N,)`` values, one
    row per image."""
    return pd.DataFrame(
        {
            "image": np.arange(len(values)),
            "method": method,
            "layer": layer,
            "metric": metric,
            "value": np.asarray(values, dtype=np.float64),
        }
    )


_GROUP_TITLES = {
    "deletion": "deletion",
    "insertion": "insertion",
    "confidence": "Average Drop",
    "road": "ROAD",
    "localisation": "pointing game",
}


class Scorer:
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
        metrics: list[MetricInfo],
        settings: EvaluationSettings,
        tracker: StepTracker,
        predictions: np.ndarray,
        ids: np.ndarray | None = None,
    ):
        self.handle, self.data, self.tgt, self.p = handle, data, targets, p_target
        self.ids = ids  # each image's index in its dataset (seeds ROAD's noise)
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
            self.frames.append(score_frame(values, method, layer, metric))

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
                progress=within(progress, k / len(orders), (k + 1) / len(orders)), ids=self.ids,
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
