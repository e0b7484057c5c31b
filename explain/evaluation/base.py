"""The registry of evaluation metrics, each described by a
:class:`~explain.metric_info.MetricInfo`.

Each metric names its category (faithfulness, localisation, randomisation), its direction
("higher" or "lower" is better), its unit, range and decimals, and says in plain words what it
measures, so that a table or a dashboard can show any metric without special cases (as in
Quantus).
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from ..errors import ExplainError
from ..metric_info import DIRECTIONS, MetricInfo

CATEGORIES: tuple[str, ...] = ("faithfulness", "localisation", "randomisation")

#: An evaluation metric's description (the project's one metric-description type).
Metric = MetricInfo

__all__ = [
    "CATEGORIES",
    "DIRECTIONS",
    "METRICS",
    "Metric",
    "MetricInfo",
    "get_metric",
    "metrics_table",
    "resolve_metrics",
]


_PETSIUK = "Petsiuk, Das & Saenko 2018, RISE (BMVC)"
_CHATTOPADHAY = "Chattopadhay et al. 2018, Grad-CAM++ (WACV)"
_RONG = "Rong et al. 2022, A Consistent and Efficient Evaluation Strategy for Attribution (ICML)"
_ZHANG = "Zhang et al. 2018, Top-down Neural Attention by Excitation Backprop (IJCV)"
_WANG = "Wang et al. 2020, Score-CAM (CVPR workshops)"
_ADEBAYO = "Adebayo et al. 2018, Sanity Checks for Saliency Maps (NeurIPS)"
_SELVARAJU = "Selvaraju et al. 2017, Grad-CAM (ICCV), section 4.1; Zhou et al. 2016, CAM (CVPR)"
_CHOE = "Choe et al. 2020, Evaluating Weakly Supervised Object Localization Methods Right (CVPR)"

_ALL = (
    Metric(
        "deletion",
        "Deletion AUC",
        "faithfulness",
        "lower",
        "Remove pixels from the most to the least important (replaced by a baseline) and watch "
        "the target class's probability; the area under that curve. A faithful map makes the "
        "probability collapse early.",
        group="deletion",
        has_curve=True,
        unit_label="0–1",
        reference=_PETSIUK,
    ),
    Metric(
        "insertion",
        "Insertion AUC",
        "faithfulness",
        "higher",
        "Start from a blurred image and put back the original pixels from the most to the least "
        "important; the area under the target probability curve. A faithful map makes the "
        "probability rise early.",
        group="insertion",
        has_curve=True,
        unit_label="0–1",
        reference=_PETSIUK,
    ),
    Metric(
        "average_drop",
        "Average Drop",
        "faithfulness",
        "lower",
        "How much of the target probability is lost when the model sees only what the map "
        "highlights (the input multiplied by the map): 100 * max(0, p - p_map) / p.",
        unit="%",
        value_range=(0.0, 100.0),
        group="confidence",
        decimals=1,
        reference=_CHATTOPADHAY,
    ),
    Metric(
        "increase_in_confidence",
        "Increase in Confidence",
        "faithfulness",
        "higher",
        "How often the target probability goes up when the model sees only what the map "
        "highlights: 100 per image where p_map > p, else 0; averaged, a percentage of images.",
        unit="%",
        value_range=(0.0, 100.0),
        group="confidence",
        decimals=1,
        reference=_CHATTOPADHAY,
    ),
    Metric(
        "road_morf",
        "ROAD, most relevant first",
        "faithfulness",
        "lower",
        "Remove the most important pixels (10% to 90%) and fill them from their neighbours by "
        "noisy linear imputation, which leaks no hint of the removed shape; the mean target "
        "probability over those fractions.",
        has_curve=True,
        group="road",
        unit_label="probability",
        reference=_RONG,
    ),
    Metric(
        "road_lerf",
        "ROAD, least relevant first",
        "faithfulness",
        "higher",
        "Remove the least important pixels (10% to 90%), imputed from their neighbours; the mean "
        "target probability over those fractions. A faithful map keeps the probability up.",
        has_curve=True,
        group="road",
        unit_label="probability",
        reference=_RONG,
    ),
    Metric(
        "road_combined",
        "ROAD combined",
        "faithfulness",
        "higher",
        "(ROAD least-relevant-first - ROAD most-relevant-first) / 2: the gap between removing "
        "the unimportant and the important pixels.",
        value_range=(-0.5, 0.5),
        group="road",
        unit_label="probability gap",
        reference=_RONG,
    ),
    Metric(
        "pointing_game",
        "Pointing game",
        "localisation",
        "higher",
        "Whether the map's maximum falls on the object (within a tolerance in pixels): 1 for a "
        "hit, 0 for a miss; tied maxima count by the share of them that hit.",
        group="localisation",
        needs_masks=True,
        unit="fraction",
        decimals=1,
        unit_label="% of images",
        reference=_ZHANG,
    ),
    Metric(
        "energy_pointing_game",
        "Energy pointing game",
        "localisation",
        "higher",
        "The share of the map's total mass that lies on the object.",
        group="localisation",
        needs_masks=True,
        unit="fraction",
        decimals=1,
        unit_label="% of the map",
        reference=_WANG,
    ),
    Metric(
        "box_iou",
        "Box IoU",
        "localisation",
        "higher",
        "Keep the pixels at or above a fraction (15%) of the map's maximum, draw a box around "
        "the largest connected region, and take its best intersection-over-union with the "
        "image's ground-truth boxes.",
        group="localisation",
        needs_masks=True,
        reference=_SELVARAJU,
    ),
    Metric(
        "box_accuracy",
        "Localisation accuracy (GT-known)",
        "localisation",
        "higher",
        "1 when the box of the map's largest region overlaps a ground-truth box with IoU >= "
        "0.5, else 0, whatever the class predicted.",
        group="localisation",
        needs_masks=True,
        unit="fraction",
        decimals=1,
        unit_label="% of images",
        reference=_CHOE,
    ),
    Metric(
        "localisation_error",
        "Top-1 localisation error",
        "localisation",
        "lower",
        "100 for an image whose top-1 class is wrong or whose map box overlaps no ground-truth "
        "box with IoU >= 0.5, else 0; averaged, the percentage of images not both classified "
        "and localised (ILSVRC protocol; needs the true class).",
        unit="%",
        value_range=(0.0, 100.0),
        group="localisation",
        needs_masks=True,
        decimals=1,
        unit_label="% of images",
        reference=_SELVARAJU,
    ),
    Metric(
        "sanity_spearman",
        "Randomisation: Spearman",
        "randomisation",
        "lower",
        "Rank correlation between the map of the trained model and the map once every layer has "
        "been re-initialised at random. An explanation that still looks the same does not "
        "depend on what the model learnt.",
        value_range=(-1.0, 1.0),
        group="randomisation",
        has_curve=True,
        decimals=2,
        unit_label="correlation",
        reference=_ADEBAYO,
    ),
    Metric(
        "sanity_spearman_abs",
        "Randomisation: Spearman of |map|",
        "randomisation",
        "lower",
        "As the Spearman check, on the absolute values of the maps (signs ignored).",
        value_range=(-1.0, 1.0),
        group="randomisation",
        has_curve=True,
        decimals=2,
        unit_label="correlation",
        reference=_ADEBAYO,
    ),
    Metric(
        "sanity_ssim",
        "Randomisation: SSIM",
        "randomisation",
        "lower",
        "Structural similarity between the map of the trained model and the map of the fully "
        "randomised model.",
        value_range=(-1.0, 1.0),
        group="randomisation",
        has_curve=True,
        decimals=2,
        unit_label="similarity",
        reference=_ADEBAYO,
    ),
)

#: Every metric, by name, in display order.
METRICS: dict[str, MetricInfo] = {m.name: m for m in _ALL}
for _m in _ALL:  # the registry's own rule, beyond what MetricInfo checks
    if _m.category not in CATEGORIES:
        raise ValueError(f"{_m.name}: category must be one of {CATEGORIES}, got {_m.category!r}")


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``; a clear error listing the others otherwise."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in METRICS:
        raise ExplainError(f"Unknown metric {name!r}.", hint=f"choose from {', '.join(METRICS)}.")
    return METRICS[key]


def resolve_metrics(
    metrics: str | list[str] | tuple[str, ...] | None, categories: tuple[str, ...] | None = None
) -> list[Metric]:
    """Metric names (or a category name, or None for all) -> :class:`Metric` list, in registry
    order, without duplicates."""
    if metrics is None:
        chosen = list(METRICS.values())
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        picked: set[str] = set()
        for name in names:
            if name in CATEGORIES:
                picked |= {m.name for m in METRICS.values() if m.category == name}
            else:
                picked.add(get_metric(name).name)
        chosen = [m for m in METRICS.values() if m.name in picked]
    if categories is not None:
        chosen = [m for m in chosen if m.category in categories]
    return chosen


def metrics_table() -> pd.DataFrame:
    """One row per metric with every declared field (for a dashboard legend or a report)."""
    rows = []
    for m in METRICS.values():
        row = asdict(m)
        row["value_min"], row["value_max"] = row.pop("value_range")
        rows.append(row)
    return pd.DataFrame(rows)
