"""Evaluation of explanations: how far to trust a class-activation map, and whether a model
relies on something it should not.

- :func:`evaluate` runs faithfulness, localisation and randomisation metrics for several
  methods and layers over a dataset, and returns tidy tables and per-image curves
  (:class:`EvaluationResult`); how it measures is one :class:`EvaluationSettings`.
- :mod:`explain.evaluation.figures` draws the results: leaderboard, curves, verdicts, ground
  truth on images (Plotly and pandas; imported on its own).
- Each metric declares its category, direction, unit and decimals in :data:`METRICS`
  (a :class:`~explain.metric_info.MetricInfo`, the project's one metric-description type).
- What it runs on: any dataset of :mod:`explain.datasets` (folders, zips, file lists,
  ``"builtin:shapes"``, annotated images) or images in memory (:func:`load_eval_data`).
- :func:`find_bias` measures how much of the explanation falls on a given region (a marker, a
  watermark); :func:`shapes_bias_study` runs the built-in biased-model demonstration.
- The metric functions work on their own too: :func:`deletion`, :func:`insertion`,
  :func:`confidence_change`, :func:`road`, :func:`pointing_game`, :func:`energy_pointing_game`,
  :func:`box_localisation`, :func:`localisation_error`, :func:`cascading_randomisation`.
- Ground truth as users have it (:func:`read_annotations`: a boxes CSV, Pascal VOC XML, COCO
  JSON, PNG masks) follows the images through the model's resize and crop
  (:func:`input_geometry`); ``evaluate(handle, AnnotatedDataset(images, annotations))`` is the
  one call that returns tables, verdicts and curves.
- Every verdict against a baseline is a paired test over images (:func:`paired_test`,
  :func:`compare_with_baselines`), with its p-value and confidence interval.
"""

from ..datasets import (
    AnnotatedDataset,
    Annotations,
    ImageAnnotation,
    LabelMap,
    ObjectAnnotation,
    load_mask,
    read_annotations,
    read_boxes_csv,
    read_coco,
    read_mask_folder,
    read_voc,
)
from ..metric_info import MetricInfo
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
from .data import EvalData, load_annotated, load_eval_data, read_dataset
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
from .geometry import InputGeometry, boxes_to_mask, input_geometry, replay_masks
from .localisation import (
    box_iou,
    box_localisation,
    boxes_to_masks,
    component_boxes,
    energy_pointing_game,
    largest_component_box,
    localisation_error,
    pointing_game,
)
from .randomisation import (
    SanityResult,
    Stage,
    cascade_stages,
    cascading_randomisation,
    randomised_copy,
    spearman,
    ssim,
)
from .reporting import markdown_report, verdict_table
from .result import EvaluationResult, summarise
from .runner import evaluate
from .settings import EvaluationSettings
from .statistics import PairedTest, holm, paired_test
from .verdicts import compare_with_baselines, verdict_sentence

__all__ = [
    "BASELINES",
    "CATEGORIES",
    "DIRECTIONS",
    "METRICS",
    "ROAD_FRACTIONS",
    "AnnotatedDataset",
    "Annotations",
    "BiasReport",
    "BiasStudy",
    "ConfidenceChange",
    "Curves",
    "EvalData",
    "EvaluationResult",
    "EvaluationSettings",
    "ImageAnnotation",
    "InputGeometry",
    "LabelMap",
    "Metric",
    "MetricInfo",
    "ObjectAnnotation",
    "PairedTest",
    "SanityResult",
    "Stage",
    "as_region_masks",
    "auc",
    "baseline_maps",
    "box_iou",
    "box_localisation",
    "boxes_to_mask",
    "boxes_to_masks",
    "cascade_stages",
    "cascading_randomisation",
    "compare_with_baselines",
    "component_boxes",
    "confidence_change",
    "deletion",
    "energy_pointing_game",
    "evaluate",
    "fill_region",
    "find_bias",
    "gaussian_maps",
    "get_metric",
    "holm",
    "input_geometry",
    "insertion",
    "largest_component_box",
    "load_annotated",
    "load_eval_data",
    "load_mask",
    "localisation_error",
    "make_baseline",
    "markdown_report",
    "metrics_table",
    "noisy_linear_impute",
    "paired_test",
    "pointing_game",
    "random_maps",
    "randomised_copy",
    "read_annotations",
    "read_boxes_csv",
    "read_coco",
    "read_dataset",
    "read_mask_folder",
    "read_voc",
    "replay_masks",
    "road",
    "shapes_bias_study",
    "spearman",
    "ssim",
    "summarise",
    "verdict_sentence",
    "verdict_table",
]
