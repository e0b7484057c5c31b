"""Evaluation of explanations: how far to trust a class-activation map, and whether a model
relies on something it should not.

- :func:`evaluate` runs faithfulness, localisation and randomisation metrics for several
  methods and layers over a dataset, and returns tidy tables and per-image curves.
- Each metric declares its category and direction in :data:`METRICS`.
- :func:`find_bias` measures how much of the explanation falls on a given region (a marker, a
  watermark); :func:`shapes_bias_study` runs the built-in biased-model demonstration.
- The metric functions work on their own too: :func:`deletion`, :func:`insertion`,
  :func:`confidence_change`, :func:`road`, :func:`pointing_game`, :func:`energy_pointing_game`,
  :func:`cascading_randomisation`.
"""

from .base import CATEGORIES, DIRECTIONS, METRICS, Metric, get_metric, metrics_table
from .baselines import BASELINES, baseline_maps, gaussian_maps, random_maps
from .bias import (
    BiasReport,
    BiasStudy,
    as_region_masks,
    fill_region,
    find_bias,
    shapes_bias_study,
)
from .data import EvalData, load_eval_data
from .faithfulness import (
    ROAD_FRACTIONS,
    ConfidenceChange,
    Curves,
    auc,
    confidence_change,
    deletion,
    insertion,
    make_baseline,
    noisy_linear_impute,
    road,
)
from .localisation import boxes_to_masks, energy_pointing_game, pointing_game
from .randomisation import (
    SanityResult,
    Stage,
    cascade_stages,
    cascading_randomisation,
    randomised_copy,
    spearman,
    ssim,
)
from .runner import EvaluationResult, evaluate, summarise

__all__ = [
    "BASELINES",
    "CATEGORIES",
    "DIRECTIONS",
    "METRICS",
    "ROAD_FRACTIONS",
    "BiasReport",
    "BiasStudy",
    "ConfidenceChange",
    "Curves",
    "EvalData",
    "EvaluationResult",
    "Metric",
    "SanityResult",
    "Stage",
    "as_region_masks",
    "auc",
    "baseline_maps",
    "boxes_to_masks",
    "cascade_stages",
    "cascading_randomisation",
    "confidence_change",
    "deletion",
    "energy_pointing_game",
    "evaluate",
    "fill_region",
    "find_bias",
    "gaussian_maps",
    "get_metric",
    "insertion",
    "load_eval_data",
    "make_baseline",
    "metrics_table",
    "noisy_linear_impute",
    "pointing_game",
    "random_maps",
    "randomised_copy",
    "road",
    "shapes_bias_study",
    "spearman",
    "ssim",
    "summarise",
]
