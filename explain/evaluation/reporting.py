"""An evaluation as Markdown: per subset of images, each method's mean next to the centre
(Gaussian) and random baselines, with the paired test's mean difference, interval, p-value
and verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .base import METRICS

if TYPE_CHECKING:
    from .runner import EvaluationResult

_BASELINE_TITLES = {"gaussian": "centre (Gaussian)", "random": "random"}


def _num(value: float, unit: str) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.1f}" if unit == "%" else f"{value:.3f}"


def _signed(value: float, unit: str) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:+.1f}" if unit == "%" else f"{value:+.3f}"


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return "<1e-4" if value < 1e-4 else f"{value:.2g}"


def verdict_table(result: EvaluationResult, subset: str = "all") -> pd.DataFrame:
    """One row per method x layer x metric of ``subset``: the mean and, per baseline, the
    baseline's mean, the difference with its interval, the adjusted p-value and the verdict
    (formatted strings, for reports)."""
    v = result.verdicts[result.verdicts["subset"] == subset]
    rows = []
    for (method, layer, metric), part in v.groupby(["method", "layer", "metric"], sort=False):
        meta = METRICS[metric]
        unit = meta.unit
        first = part.iloc[0]
        row = {
            "method": method + (f" @ {layer}" if layer else ""),
            "metric": f"{meta.title} ({'↑' if meta.higher_is_better else '↓'})",
            "n": int(first["n"]),
            "mean": _num(first["mean"], unit),
        }
        for b in part.itertuples():
            title = _BASELINE_TITLES.get(b.baseline, b.baseline)
            ci = f"[{_signed(b.ci_low, unit)}, {_signed(b.ci_high, unit)}]"
            row[title] = _num(b.baseline_mean, unit)
            row[f"diff vs {title} [CI]"] = f"{_signed(b.diff, unit)} {ci}"
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
