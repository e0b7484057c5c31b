"""An evaluation as Markdown: per subset of images, each method's mean next to the centre
(Gaussian) and random baselines, with the paired test's mean difference, interval, p-value
and verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..cams import METHOD_INFO
from .base import METRICS

if TYPE_CHECKING:
    from .result import EvaluationResult

#: Readable names of the baseline maps.
BASELINE_TITLES = {"random": "Random map (baseline)", "gaussian": "Centred blob (baseline)"}
_BASELINE_SHORT = {"gaussian": "centre (Gaussian)", "random": "random"}


def method_title(method: str, layer: str = "") -> str:
    """``"Grad-CAM at layer3"``; a baseline (no layer) is ``"Random map (baseline)"``."""
    if not layer:
        return BASELINE_TITLES.get(method, f"{method} (baseline)")
    title = METHOD_INFO[method].title if method in METHOD_INFO else method
    return f"{title} at {layer}"


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return "<1e-4" if value < 1e-4 else f"{value:.2g}"


def verdict_table(result: EvaluationResult, subset: str = "all") -> pd.DataFrame:
    """One row per method x layer x metric of ``subset``: the mean and, per baseline, the
    baseline's mean, the difference with its interval, the adjusted p-value and the verdict
    (formatted strings in each metric's display unit, for reports)."""
    v = result.verdicts[result.verdicts["subset"] == subset]
    rows = []
    for (method, layer, metric), part in v.groupby(["method", "layer", "metric"], sort=False):
        meta = METRICS[metric]
        first = part.iloc[0]
        row = {
            "method": method_title(method, layer),
            "metric": meta.column_title,
            "n": int(first["n"]),
            "mean": meta.format(first["mean"]),
        }
        for b in part.itertuples():
            title = _BASELINE_SHORT.get(b.baseline, b.baseline)
            low = meta.format(b.ci_low, signed=True, unit=False)
            high = meta.format(b.ci_high, signed=True, unit=False)
            row[title] = meta.format(b.baseline_mean)
            row[f"diff vs {title} [CI]"] = f"{meta.format(b.diff, signed=True)} [{low}, {high}]"
            row[f"p vs {title}"] = _p(b.p_adjusted)
            row[f"vs {title}"] = b.verdict
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(nothing measured)\n"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.to_numpy()]
    return "\n".join([header, rule, *lines]) + "\n"


def markdown_report(result: EvaluationResult) -> str:
    """The whole evaluation as Markdown: settings, one verdict table per subset, notes."""
    p = result.params
    lines = [
        f"# Evaluation of {p.get('model', 'a model')}",
        "",
        f"- data: {p.get('data', '')} ({p.get('images', '?')} items)",
        f"- methods: {', '.join(p.get('methods', []))}; layers: {', '.join(p.get('layers', []))}",
        f"- targets: {p.get('targets')}; paired test: {p.get('test')} over images, "
        f"{round(100 * p.get('confidence', 0.95))}% bootstrap interval of the mean difference, "
        f"p-values {p.get('p_adjustment', 'as they are')}, verdict at alpha = {p.get('alpha')}",
        f"- box localisation: threshold {p.get('loc_threshold')} of the map's maximum, "
        f"IoU >= {p.get('iou_threshold')}; pointing-game tolerance "
        f"{p.get('pointing_tolerance')} px",
        "",
    ]
    sizes = p.get("subsets", {})
    for subset in result.subsets:
        lines.append(f"## {subset} ({sizes.get(subset, '?')} items)")
        if subset == "small objects":
            lines.append(
                f"Items whose object covers less than {100 * p.get('small_object', 0.5):.0f}% "
                "of the model input."
            )
        lines.append("")
        lines.append(_markdown(verdict_table(result, subset)))
    if result.notes:
        lines.append("## Notes")
        lines.extend(f"- {note}" for note in result.notes)
    return "\n".join(lines) + "\n"
