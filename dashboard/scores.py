"""Evaluation scores as tables people can read: names in words, a unit on every number
(Average Drop is a percentage), the best value of each column marked, and the bias study with
its shares in percent. No widgets here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explain import METHOD_INFO
from explain.evaluation import METRICS

ARROW = {"higher": "↑", "lower": "↓"}
BASELINE_NAMES = {"random": "Random map (baseline)", "gaussian": "Centred blob (baseline)"}
#: How each metric's numbers are shown: (factor, unit written after the name, decimals).
#: Shares and hit rates read best as percentages; areas under probability curves as 0-1.
DISPLAY = {
    "deletion": (1.0, "0–1", 3),
    "insertion": (1.0, "0–1", 3),
    "road_morf": (1.0, "probability", 3),
    "road_lerf": (1.0, "probability", 3),
    "road_combined": (1.0, "probability gap", 3),
    "pointing_game": (100.0, "% of images", 1),
    "energy_pointing_game": (100.0, "% of the map", 1),
    "sanity_spearman": (1.0, "correlation", 2),
    "sanity_spearman_abs": (1.0, "correlation", 2),
    "sanity_ssim": (1.0, "similarity", 2),
}
BEST = "background-color: #d3f9d8; font-weight: 700"


def display(metric: str) -> tuple[float, str, int]:
    """(factor, unit, decimals) of a metric's numbers; any metric not listed uses its own unit."""
    if metric in DISPLAY:
        return DISPLAY[metric]
    info = METRICS[metric]
    return (1.0, "%", 1) if info.unit == "%" else (1.0, info.unit or "0–1", 3)


def column(metric: str) -> str:
    """``"Average Drop (%) ↓"``: the name in words, its unit and which way is better."""
    info = METRICS[metric]
    return f"{info.title} ({display(metric)[1]}) {ARROW[info.direction]}"


def who(method: str, layer: str) -> str:
    """``"Grad-CAM at layer3"`` or ``"Random map (baseline)"``."""
    if not layer:
        return BASELINE_NAMES.get(method, f"{method} (baseline)")
    return f"{METHOD_INFO[method].title if method in METHOD_INFO else method} at {layer}"


def scaled(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Rows (method, layer, metric) -> a table of who x metric in display units."""
    rows = frame.copy()
    rows["who"] = [who(m, str(la)) for m, la in zip(rows["method"], rows["layer"], strict=True)]
    rows[value] = [v * display(m)[0] for v, m in zip(rows[value], rows["metric"], strict=True)]
    table = rows.pivot_table(index="who", columns="metric", values=value, sort=False)
    table.index.name = None
    table.columns.name = None
    return table


def best_rows(table: pd.DataFrame) -> dict[str, list]:
    """Per metric column, the rows holding its best value (lowest for ↓, highest for ↑);
    none for a column with fewer than two values."""
    found: dict[str, list] = {}
    for metric in table.columns:
        values = table[metric].astype(float)
        if values.notna().sum() < 2:
            found[metric] = []
            continue
        top = values.min() if METRICS[metric].direction == "lower" else values.max()
        found[metric] = [row for row, v in values.items() if np.isclose(v, top)]
    return found


def styled(table: pd.DataFrame, mark_best: bool = True):
    """Numbers with their decimals; the best value of each column in bold on green with a
    star (the numbers themselves stay numbers, for sorting)."""
    styler = table.style.format({m: f"{{:.{display(m)[2]}f}}" for m in table.columns}, na_rep="–")
    if mark_best:
        for metric, rows in best_rows(table).items():
            for row in rows:
                cell = pd.IndexSlice[[row], [metric]]
                styler = styler.format(f"{{:.{display(metric)[2]}f}} ★", subset=cell)
                styler = styler.map(lambda _: BEST, subset=cell)
    return styler


BIAS_MODELS = {"builtin:shapes-biased": "Biased model", "builtin:shapes": "Clean model"}
#: Number format and tooltip of the bias study's numeric columns.
BIAS_FORMATS: dict[str, tuple[str, str | None]] = {
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


def bias_table(table: pd.DataFrame) -> pd.DataFrame:
    """The study's table with names in words and shares in percent."""
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
