"""Evaluation results as tables and figures people can read: the leaderboard (methods x
metrics, readable names, each metric's unit and direction, the best value of each column
marked), the deletion / insertion / ROAD / sanity curves, the paired-test verdicts, the bias
study, and ground-truth boxes and masks drawn onto images. No widgets here: a dashboard only
shows what these return (a pandas ``Styler``, a Plotly figure, an RGB array).

Numbers are shown in each metric's display unit (:class:`~explain.metric_info.MetricInfo`):
shares such as the pointing game as percentages, Average Drop as the percentage it is, areas
under curves as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .base import METRICS
from .reporting import BASELINE_TITLES, method_title, verdict_table

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from .bias import BiasStudy
    from .result import EvaluationResult

#: Style of the best value of each leaderboard column (and its star).
BEST_STYLE = "background-color: #d3f9d8; font-weight: 700"
BEST_MARK = "★"
#: Background of a verdict cell.
VERDICT_STYLES = {
    "better": "background-color: #d3f9d8",
    "worse": "background-color: #ffe3e3",
    "no significant difference": "color: #57606a",
    "not tested": "color: #8c959f",
}

__all__ = [
    "BASELINE_TITLES",
    "BEST_MARK",
    "BEST_STYLE",
    "BIAS_COLUMNS",
    "BIAS_MODELS",
    "best_rows",
    "bias_table",
    "column_titles",
    "curves_figure",
    "draw_boxes",
    "draw_mask",
    "leaderboard_figure",
    "leaderboard_table",
    "method_title",
    "styled_leaderboard",
    "styled_verdicts",
    "verdict_table",
]


# -- the leaderboard ----------------------------------------------------------------------------
def leaderboard_table(
    source: EvaluationResult | pd.DataFrame, subset: str = "all", value: str = "mean"
) -> pd.DataFrame:
    """Methods (and baselines) x metrics in display units.

    Args:
        source: an :class:`~explain.evaluation.result.EvaluationResult` (its means over the
            images of ``subset``), or rows with ``method``, ``layer``, ``metric`` and a
            ``value`` column (``result.summary``, or ``result.table`` of one image with
            ``value="value"``).
        subset: the subset of images, for a result (``"all"``, ``"small objects"``).
        value: the column of ``source`` rows to show.

    Returns:
        Index: readable names (``"Grad-CAM at layer3"``, ``"Random map (baseline)"``) in the
        order they come; columns: metric names in registry order; values scaled to display
        units (a pointing game of 0.9 is 90.0).
    """
    if not isinstance(source, pd.DataFrame):
        frame = source.subset_summary()
        frame = frame[frame["subset"] == subset]
        value = "mean"
    else:
        frame = source
    if frame.empty:
        return pd.DataFrame()
    rows = frame[["method", "layer", "metric", value]].copy()
    rows["who"] = [
        method_title(m, str(la)) for m, la in zip(rows["method"], rows["layer"], strict=True)
    ]
    rows[value] = [
        float(v) * METRICS[m].scale for v, m in zip(rows[value], rows["metric"], strict=True)
    ]
    table = rows.pivot_table(index="who", columns="metric", values=value, sort=False)
    table = table[[m for m in METRICS if m in table.columns]]
    table.index.name = None
    table.columns.name = None
    return table


def column_titles(columns: Sequence[str]) -> dict[str, str]:
    """Metric name -> ``"Average Drop (%) ↓"`` (its title, display unit and direction)."""
    return {m: METRICS[m].column_title for m in columns}


def best_rows(table: pd.DataFrame) -> dict[str, list[str]]:
    """Per metric column of a :func:`leaderboard_table`, the rows holding its best value (the
    lowest where lower is better, the highest where higher is); none for a column with fewer
    than two values."""
    found: dict[str, list[str]] = {}
    for metric in table.columns:
        values = table[metric].astype(float)
        best = METRICS[metric].best(values)
        if values.notna().sum() < 2 or math.isnan(best):
            found[metric] = []
            continue
        found[metric] = [row for row, v in values.items() if np.isclose(v, best)]
    return found


def styled_leaderboard(
    table: pd.DataFrame, *, mark_best: bool = True, titles: bool = False
) -> Styler:
    """A :func:`leaderboard_table` for display: each metric's decimals, ``–`` where there is
    no value, the best value of each column starred on green (the cells stay numbers, so the
    table still sorts).

    Args:
        table: from :func:`leaderboard_table`.
        mark_best: star the best value of each column.
        titles: the column labels are the titles (``"Average Drop (%) ↓"``) instead of metric
            names, in the styled frame itself, so that every renderer shows them (a dashboard
            that sets its own column labels keeps the names).
    """
    shown = table.rename(columns=column_titles(table.columns)) if titles else table
    label = dict(zip(table.columns, shown.columns, strict=True))
    styler = shown.style.format(
        {label[m]: f"{{:.{METRICS[m].decimals}f}}" for m in table.columns}, na_rep="–"
    )
    if mark_best:
        for metric, rows in best_rows(table).items():
            for row in rows:
                cell = pd.IndexSlice[[row], [label[metric]]]
                styler = styler.format(
                    f"{{:.{METRICS[metric].decimals}f}} {BEST_MARK}", subset=cell
                )
                styler = styler.map(lambda _: BEST_STYLE, subset=cell)
    return styler


def leaderboard_figure(table: pd.DataFrame, *, title: str = "Leaderboard") -> go.Figure:
    """A :func:`leaderboard_table` as a Plotly table (for HTML reports and notebooks): column
    titles with units and arrows, the best value of each column starred in bold."""
    best = best_rows(table)
    cells = []
    for metric in table.columns:
        meta = METRICS[metric]
        shown = []
        for row, v in table[metric].items():
            text = "–" if pd.isna(v) else f"{v:.{meta.decimals}f}"
            shown.append(f"<b>{text} {BEST_MARK}</b>" if row in best[metric] else text)
        cells.append(shown)
    header = ["", *(METRICS[m].column_title for m in table.columns)]
    fig = go.Figure(
        go.Table(
            header={"values": header, "align": "left", "fill_color": "#f6f7f9"},
            cells={"values": [list(table.index), *cells], "align": ["left", "right"]},
        )
    )
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


# -- curves -------------------------------------------------------------------------------------
def curves_figure(result: EvaluationResult, metric: str, *, height: int = 340) -> go.Figure:
    """Mean curves of one metric (``"deletion"``, ``"insertion"``, ``"road_morf"``,
    ``"road_lerf"`` or a ``"sanity_*"`` check), one line per method and layer, the baselines
    dotted; the randomisation check's x axis names its stages, head first.

    Raises:
        KeyError: ``metric`` has no curves in ``result``.
    """
    frame = result.mean_curves(metric)
    if frame.empty:
        raise KeyError(f"{metric!r} has no curves in this result.")
    sanity = metric.startswith("sanity_")
    fig = go.Figure()
    for (method, layer), part in frame.groupby(["method", "layer"], sort=False):
        x = part["x"].tolist()
        if sanity and result.stages:
            x = [result.stages[int(i) - 1] if 0 < int(i) <= len(result.stages) else i for i in x]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part["mean"],
                mode="lines+markers",
                name=method_title(method, layer),
                line={"dash": "dot" if layer == "" else "solid"},
            )
        )
    meta = METRICS[metric]
    fig.update_layout(
        height=height,
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title=f"{meta.title} ({meta.arrow} is better)",
        legend={"orientation": "h", "y": -0.3},
        yaxis_title="similarity to the original map" if sanity else "target probability",
        xaxis_title="randomised from the head down to" if sanity else "fraction of pixels",
    )
    return fig


# -- verdicts -----------------------------------------------------------------------------------
def styled_verdicts(table: pd.DataFrame) -> Styler:
    """A :func:`verdict_table` with its verdict cells coloured (better green, worse red)."""
    columns = [c for c in table.columns if c.startswith("vs ")]
    return table.style.map(lambda v: VERDICT_STYLES.get(str(v), ""), subset=columns)


# -- the bias study -----------------------------------------------------------------------------
#: Model specs of the bias study, in words.
BIAS_MODELS = {"builtin:shapes-biased": "Biased model", "builtin:shapes": "Clean model"}
#: Number format (printf style) and help text of the numeric columns of :func:`bias_table`.
BIAS_COLUMNS: dict[str, tuple[str, str | None]] = {
    "Images": ("%d", None),
    "Accuracy (%)": ("%.0f", None),
    "Map on the marker (%)": ("%.1f", "Share of the map's mass inside the marker's corner box"),
    "Map on the shape (%)": ("%.1f", "Share of the map's mass on the shape itself"),
    "Marker density (× area)": (
        "%.1f",
        "Share on the marker / the marker's share of the image; 1 = no pull either way",
    ),
    "Shape density (× area)": ("%.1f", "Share on the shape / the shape's share of the image"),
    "Answer changes without the marker (%)": (
        "%.0f",
        "Images whose top class changes when the marker is painted over",
    ),
}


def bias_table(study: BiasStudy | pd.DataFrame) -> pd.DataFrame:
    """The bias study's table (:func:`~explain.evaluation.shapes_bias_study`) with names in
    words and shares in percent (columns :data:`BIAS_COLUMNS` plus the model, the marker and
    the verdict)."""
    table = study if isinstance(study, pd.DataFrame) else study.table
    return pd.DataFrame(
        {
            "Model": [f"{BIAS_MODELS.get(m, m)} ({m})" for m in table["model"]],
            "Marker in the images": [
                "yes, in the true class's colour" if m == "class" else "no" if m == "none" else m
                for m in table["marker"]
            ],
            "Images": table["n"],
            "Accuracy (%)": table["accuracy"] * 100,
            "Map on the marker (%)": table["share_marker"] * 100,
            "Map on the shape (%)": table["share_shape"] * 100,
            "Marker density (× area)": table["density_marker"],
            "Shape density (× area)": table["density_shape"],
            "Answer changes without the marker (%)": table["flip_rate"] * 100,
            "Relies on the marker": table["relies"],
        }
    )


# -- ground truth on images ---------------------------------------------------------------------
def _pixel_span(low: float, high: float, size: int) -> tuple[int, int]:
    """Pixels ``[a, b)`` whose centre lies in ``[low, high)`` (the rule of
    :func:`~explain.evaluation.geometry.boxes_to_mask`), clipped to ``[0, size)``."""
    return max(0, math.ceil(low - 0.5)), min(size, math.ceil(high - 0.5))


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray | Sequence[Sequence[float]],
    color: tuple[int, int, int] = (255, 255, 255),
    width: int = 1,
) -> np.ndarray:
    """Box outlines drawn onto a copy of an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (e.g. an overlay in the model-input geometry).
        boxes: ``(K, 4)`` ``x0, y0, x1, y1`` in pixel edges (``x1``/``y1`` exclusive, floats
            allowed), as ground truth and :class:`~explain.evaluation.EvalData` give them.
        color: RGB of the outline.
        width: outline thickness in pixels, drawn inwards.

    Returns:
        ``(H, W, 3)`` uint8: the outline covers the border pixels of exactly the pixels
        :func:`~explain.evaluation.boxes_to_mask` puts on the box.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c0, c1 = _pixel_span(x0, x1, w)
        r0, r1 = _pixel_span(y0, y1, h)
        if c1 <= c0 or r1 <= r0:
            continue
        t = max(1, int(width))
        out[r0 : min(r1, r0 + t), c0:c1] = color
        out[max(r0, r1 - t) : r1, c0:c1] = color
        out[r0:r1, c0 : min(c1, c0 + t)] = color
        out[r0:r1, max(c0, c1 - t) : c1] = color
    return out


def draw_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    alpha: float = 0.35,
    outline: bool = True,
) -> np.ndarray:
    """An object mask tinted (and outlined) onto a copy of an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, same size.
        color: RGB of the tint and the outline.
        alpha: tint strength in [0, 1] on the mask's pixels (0: outline only).
        outline: draw the mask's border pixels (on the mask, next to a pixel off it, 4-way)
            in full colour.

    Returns:
        ``(H, W, 3)`` uint8; pixels off the mask are unchanged.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {out.shape[:2]}")
    tint = np.asarray(color, dtype=np.float64)
    out[mask] = np.clip(np.rint((1 - alpha) * out[mask] + alpha * tint), 0, 255).astype(np.uint8)
    if outline:
        padded = np.pad(mask, 1, constant_values=False)
        inner = (
            padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )  # all four neighbours on the mask
        out[mask & ~inner] = color
    return out
