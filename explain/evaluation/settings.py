"""How an evaluation measures: every knob of :func:`~explain.evaluation.evaluate` that is not
what it measures (the model, the data, the methods, layers, metrics and targets), in one
checked, immutable object.

``evaluate(..., settings=EvaluationSettings(steps=10, seed=1))`` and
``evaluate(..., steps=10, seed=1)`` are the same call; keywords override ``settings``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ExplainError
from .baselines import BASELINES
from .faithfulness import ROAD_FRACTIONS, Baseline
from .statistics import N_RESAMPLES, TESTS


@dataclass(frozen=True)
class EvaluationSettings:
    """The settings of one evaluation; checked on creation (a bad value raises
    :class:`~explain.ExplainError` before any work is done).

    Attributes:
        baselines: baseline maps scored beside the methods (``"random"``, ``"gaussian"``).
        steps: intervals of the deletion and insertion curves (``steps + 1`` points).
        deletion_baseline: what deleted pixels become (see ``make_baseline``; default zeros
            of the model input).
        insertion_baseline: what insertion starts from (default a blurred image).
        road_fractions: ROAD removal fractions, each in (0, 1).
        road_noise: ROAD imputation noise.
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
        sanity_depth: randomisation cascade depth (see ``cascade_stages``).
        sanity_stages: the cascade's stages by name (overrides ``sanity_depth``).
        sanity_images: run the randomisation check on the first this-many images only.
        max_channels: Score-CAM / Ablation-CAM only, approximate: perturb only this many
            channels (of highest activation variance); other methods ignore it.
        batch_size: images per forward pass for the metrics (1 turns batching off).
        cam_batch_size: images per CAM pass.
        seed: seeds everything random (subset, built-in images, random maps, ROAD noise,
            randomisation).
    """

    baselines: tuple[str, ...] = BASELINES
    steps: int = 20
    deletion_baseline: Baseline = "zero"
    insertion_baseline: Baseline = "blur"
    road_fractions: tuple[float, ...] = ROAD_FRACTIONS
    road_noise: float = 0.01
    pointing_tolerance: float = 0.0
    loc_threshold: float = 0.15
    iou_threshold: float = 0.5
    small_object: float = 0.5
    test: str = "wilcoxon"
    confidence: float = 0.95
    alpha: float = 0.05
    n_resamples: int = N_RESAMPLES
    sanity_depth: int = 2
    sanity_stages: tuple[str, ...] | None = None
    sanity_images: int | None = None
    max_channels: int | None = None
    batch_size: int = 64
    cam_batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        # Sequences given as lists are stored as tuples: the settings stay immutable.
        for name in ("baselines", "road_fractions", "sanity_stages"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                value = (value,) if isinstance(value, str) else tuple(value)
                object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ExplainError(
                f"Unknown baseline(s) {unknown}.", hint=f"use {', '.join(BASELINES)}."
            )
        if self.test not in TESTS:
            raise ExplainError(
                f"Unknown paired test {self.test!r}.", hint=f"use {' or '.join(TESTS)}."
            )
        for name, low, high, open_ in (
            ("confidence", 0.0, 1.0, True),
            ("alpha", 0.0, 1.0, True),
            ("loc_threshold", 0.0, 1.0, False),
            ("iou_threshold", 0.0, 1.0, False),
            ("small_object", 0.0, 1.0, False),
        ):
            value = getattr(self, name)
            inside = low < value < high if open_ else low <= value <= high
            if not inside:
                raise ExplainError(f"{name} must lie between {low} and {high}, got {value}.")
        for name in ("steps", "batch_size", "cam_batch_size", "n_resamples"):
            if int(getattr(self, name)) < 1:
                raise ExplainError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not self.road_fractions or not all(0 < f < 1 for f in self.road_fractions):
            raise ExplainError(
                f"road_fractions must lie strictly between 0 and 1, got {self.road_fractions}."
            )
        if self.seed < 0:
            raise ExplainError(f"seed must be 0 or more, got {self.seed}.")

    def replace(self, **changes: Any) -> EvaluationSettings:
        """A copy with ``changes`` (field names of this class); an unknown name is a
        ``TypeError`` that lists the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(
                f"evaluate() got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"settings are {', '.join(sorted(names))}."
            )
        return dataclasses.replace(self, **changes) if changes else self

    def as_params(self) -> dict[str, Any]:
        """Every setting as JSON-able values (tensors named, tuples as lists), for reports."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = "tensor"
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
