"""Verdicts: every method, layer and metric of a result table against every baseline map, by a
paired test over the same images (see :mod:`explain.evaluation.statistics`), on all images and
on named subsets (for instance the images whose object covers less than half of the picture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .base import METRICS
from .baselines import BASELINES
from .statistics import N_RESAMPLES, holm, paired_test, verdict

#: Columns of a verdict table, in order.
VERDICT_COLUMNS = [
    "subset",
    "method",
    "layer",
    "metric",
    "direction",
    "baseline",
    "n",
    "mean",
    "baseline_mean",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "test",
    "verdict",
]


def compare_with_baselines(
    table: pd.DataFrame,
    subsets: Mapping[str, Sequence[int] | np.ndarray] | None = None,
    *,
    baselines: Sequence[str] = BASELINES,
    test: str = "wilcoxon",
    confidence: float = 0.95,
    alpha: float = 0.05,
    adjust: str | None = "holm",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired tests of every method row against every baseline, per subset of images.

    Args:
        table: a result table (``image``, ``method``, ``layer``, ``metric``, ``value``).
        subsets: subset name -> image indices (default ``{"all": every image}``).
        baselines: method names of the baseline maps present in ``table``.
        test: ``"wilcoxon"`` or ``"bootstrap"``.
        confidence: level of the interval of the mean difference.
        alpha: significance level of a verdict.
        adjust: ``"holm"`` adjusts the p-values for the number of comparisons in each subset
            (the verdict uses the adjusted value); None keeps them as they are.
        n_resamples, seed: the bootstrap.

    Returns:
        One row per subset x method x layer x metric x baseline, columns
        :data:`VERDICT_COLUMNS`; ``diff`` is method minus baseline, ``verdict`` is "better",
        "worse", "no significant difference" or "not tested".
    """
    if table.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    images = np.sort(table["image"].unique())
    subsets = {"all": images} if subsets is None else subsets
    rows = []
    for subset, chosen in subsets.items():
        part = table[table["image"].isin(np.asarray(chosen))]
        # One column per (method, layer, metric) that exists, one row per image.
        wide = part.pivot(index="image", columns=["method", "layer", "metric"], values="value")
        start = len(rows)
        keys = part[["method", "layer", "metric"]].drop_duplicates()
        for method, layer, metric in keys.itertuples(index=False):
            if method in baselines:
                continue
            meta = METRICS[metric]
            for base in baselines:
                key = (base, "", metric)
                if key not in wide.columns:
                    continue
                r = paired_test(
                    wide[(method, layer, metric)].to_numpy(), wide[key].to_numpy(), test=test,
                    confidence=confidence, n_resamples=n_resamples, seed=seed,
                )  # fmt: skip
                rows.append({
                    "subset": subset, "method": method, "layer": layer, "metric": metric,
                    "direction": meta.direction, "baseline": base, "n": r.n, "mean": r.mean_a,
                    "baseline_mean": r.mean_b, "diff": r.diff, "ci_low": r.ci_low,
                    "ci_high": r.ci_high, "p_value": r.p_value, "test": r.test,
                })  # fmt: skip
        family = rows[start:]
        raw = np.array([row["p_value"] for row in family], dtype=np.float64)
        adjusted = holm(raw) if adjust == "holm" else raw
        for row, p in zip(family, adjusted, strict=True):
            row["p_adjusted"] = float(p)
            row["verdict"] = verdict(row["diff"], p, METRICS[row["metric"]].higher_is_better, alpha)
    if not rows:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    return pd.DataFrame(rows)[VERDICT_COLUMNS]


def verdict_sentence(row: Mapping) -> str:
    """One line for a verdict row, e.g. ``gradcam @ layer4, pointing game: better than the
    gaussian map (0.81 vs 0.62, diff +0.19 [0.12, 0.26], p = 3e-06, Wilcoxon)``."""
    meta = METRICS[row["metric"]]
    where = f"{row['method']}" + (f" @ {row['layer']}" if row["layer"] else "")
    if row["verdict"] == "not tested":
        return f"{where}, {meta.title}: not tested against the {row['baseline']} map (no data)."
    adjusted = f", adjusted {row['p_adjusted']:.2g}" if row["p_adjusted"] != row["p_value"] else ""
    what = (
        f"{row['verdict']} than"
        if row["verdict"] in ("better", "worse")
        else "no significant difference from"
    )
    return (
        f"{where}, {meta.title} ({row['subset']}, n={row['n']}): {what} the {row['baseline']} "
        f"map ({row['mean']:.3g} vs {row['baseline_mean']:.3g}, diff {row['diff']:+.3g} "
        f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}], p = {row['p_value']:.2g}{adjusted}, "
        f"{row['test']})."
    )
