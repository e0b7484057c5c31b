"""What :func:`~explain.evaluation.evaluate` returns: the tidy table, the summary with the
baselines beside each row, the verdicts of the paired tests, the per-image curves, and the
ways to look at them (per subset, leaderboard, sentences, curve tables, files on disk)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..metric_info import MetricInfo
from .base import METRICS
from .baselines import BASELINES
from .faithfulness import Curves
from .reporting import markdown_report
from .verdicts import VERDICT_COLUMNS, compare_with_baselines, verdict_sentence

#: ``(method, layer, metric)``: the key of a curve.
CurveKey = tuple[str, str, str]


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

    In Jupyter a result shows its leaderboard, verdicts and curves (:meth:`view`).
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    curves: dict[CurveKey, Curves] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    metrics: list[MetricInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=VERDICT_COLUMNS))
    images: pd.DataFrame = field(default_factory=pd.DataFrame)

    # -- in Jupyter: the leaderboard, the verdicts and the curves ------------------------------
    def view(self, subset: str = "all") -> Any:
        """Tables and curves of one subset as a :class:`~explain.display.View`
        (:func:`~explain.display.evaluation_view`)."""
        from ..display import evaluation_view

        return evaluation_view(self, subset)

    def _repr_html_(self) -> str:
        return self.view().html()

    def _ipython_display_(self) -> None:
        self.view()._ipython_display_()

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
