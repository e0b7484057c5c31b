"""Interactive Plotly figures of embeddings: scatter plots (2-D and 3-D), one panel per layer,
the CKA heatmap and metrics by depth, and a standalone HTML page of them.

Every point carries its row of :class:`~embeddings.collect.Activations` as ``customdata[0]``,
so a selection (``event.selection.points[i].customdata[0]``, or ``point_index`` within its
trace) maps back to ``acts.paths[row]``. Hover shows the file name, the true label, the
prediction and its confidence.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .collect import Activations
from .metrics import METRICS

#: What points can be coloured by.
COLOR_BY = ("label", "prediction", "correct", "confidence")
#: Colours of the correct / incorrect / unknown categories.
CORRECT_COLORS = {"correct": "#2ca02c", "wrong": "#d62728", "no label": "#9e9e9e"}
#: Above this many points, 2-D scatter plots use WebGL.
WEBGL_POINTS = 2000

HOVER = (
    "<b>%{customdata[1]}</b><br>label: %{customdata[2]}<br>prediction: %{customdata[3]}"
    " (%{customdata[4]:.1%})<extra>%{customdata[5]}</extra>"
)


def category_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per category name, in order (Plotly's palette, then longer ones)."""
    palette = (
        pcolors.qualitative.Plotly
        if len(names) <= 10
        else pcolors.qualitative.Dark24
        if len(names) <= 24
        else pcolors.qualitative.Alphabet
    )
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def _categories(acts: Activations, color_by: str) -> tuple[list[str], list[str], dict[str, str]]:
    """(category per row, categories in legend order, colour per category)."""
    names = list(dict.fromkeys([*acts.label_names, *acts.class_names]))
    colors = category_colors(names)
    if color_by == "label":
        per_row = [text or "no label" for text in acts.label_text]
        order = [*acts.label_names, "no label"]
        colors["no label"] = CORRECT_COLORS["no label"]
    elif color_by == "prediction":
        per_row = acts.prediction_text
        order = list(acts.class_names)
    elif color_by == "correct":
        per_row = [
            "no label" if t < 0 else "correct" if ok else "wrong"
            for t, ok in zip(acts.targets, acts.correct, strict=True)
        ]
        order, colors = list(CORRECT_COLORS), dict(CORRECT_COLORS)
    else:
        raise ValueError(f"color_by={color_by!r} is not a category; use one of {COLOR_BY}.")
    present = set(per_row)
    return per_row, [c for c in order if c in present], colors


def hover_data(acts: Activations, layer: str = "") -> np.ndarray:
    """``(N, 6)`` object array: row, file name, label, prediction, confidence, layer."""
    data = np.empty((len(acts), 6), dtype=object)
    data[:, 0] = np.arange(len(acts))
    data[:, 1] = acts.names
    data[:, 2] = [text or "-" for text in acts.label_text]
    data[:, 3] = acts.prediction_text
    data[:, 4] = acts.confidence.astype(float)
    data[:, 5] = layer
    return data


def _trace(
    xy: np.ndarray, rows: np.ndarray, custom: np.ndarray, marker: dict[str, Any], **kwargs: Any
) -> go.BaseTraceType:
    common = {
        "mode": "markers",
        "marker": marker,
        "customdata": custom[rows],
        "hovertemplate": HOVER,
        **kwargs,
    }
    if xy.shape[1] == 3:
        return go.Scatter3d(x=xy[rows, 0], y=xy[rows, 1], z=xy[rows, 2], **common)
    cls = go.Scattergl if len(xy) > WEBGL_POINTS else go.Scatter
    return cls(x=xy[rows, 0], y=xy[rows, 1], **common)


def scatter_traces(
    acts: Activations,
    layout: np.ndarray,
    color_by: str = "label",
    *,
    layer: str = "",
    show_legend: bool = True,
    marker_size: float | None = None,
) -> list[go.BaseTraceType]:
    """The traces of one scatter plot: one per category (legend groups shared across panels),
    or one with a colour bar for ``color_by="confidence"``.

    Args:
        acts: the activations (labels, predictions, names).
        layout: ``(N, 2)`` or ``(N, 3)`` coordinates, rows as in ``acts``.
        color_by: one of :data:`COLOR_BY`.
        layer: shown in the hover box.
        show_legend: whether these traces add legend entries (only the first panel should).
        marker_size: point size (default: smaller for more points).
    """
    layout = np.asarray(layout)
    if layout.ndim != 2 or layout.shape[1] not in (2, 3) or len(layout) != len(acts):
        raise ValueError(f"layout must be (N, 2|3) with N = {len(acts)}, got {layout.shape}.")
    size = marker_size or (7 if len(acts) <= 500 else 5 if len(acts) <= 3000 else 3)
    if layout.shape[1] == 3:
        size = max(2, size - 3)
    custom = hover_data(acts, layer)
    if color_by == "confidence":
        marker = {
            "size": size,
            "color": acts.confidence,
            "colorscale": "Viridis",
            "cmin": 0.0,
            "cmax": 1.0,
            "colorbar": {"title": {"text": "confidence"}, "len": 0.6},
            "showscale": show_legend,
        }
        return [
            _trace(
                layout, np.arange(len(acts)), custom, marker, name="confidence", showlegend=False
            )
        ]
    per_row, order, colors = _categories(acts, color_by)
    per_row_arr = np.array(per_row, dtype=object)
    traces = []
    for category in order:
        rows = np.flatnonzero(per_row_arr == category)
        marker = {"size": size, "color": colors[category], "opacity": 0.85}
        traces.append(
            _trace(
                layout,
                rows,
                custom,
                marker,
                name=category,
                legendgroup=category,
                showlegend=show_legend,
            )
        )
    return traces


def scatter(
    acts: Activations,
    layout: np.ndarray,
    color_by: str = "label",
    *,
    title: str | None = None,
    layer: str = "",
    height: int = 600,
) -> go.Figure:
    """One scatter plot (2-D or 3-D) of a layer's layout.

    Args:
        acts: the activations; layout: ``(N, 2|3)`` (e.g. from :func:`~embeddings.project`).
        color_by: ``"label"``, ``"prediction"``, ``"correct"`` or ``"confidence"``.
        title: figure title; layer: shown on hover.

    Returns:
        A ``go.Figure``; ``customdata[0]`` of each point is its row in ``acts``.
    """
    fig = go.Figure(scatter_traces(acts, layout, color_by, layer=layer))
    fig.update_layout(
        title=title,
        height=height,
        legend={"itemsizing": "constant", "title": {"text": color_by}},
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        template="plotly_white",
        dragmode="lasso" if np.shape(layout)[1] == 2 else "orbit",
    )
    if np.shape(layout)[1] == 2:
        fig.update_xaxes(showticklabels=False, title=None)
        fig.update_yaxes(showticklabels=False, title=None, scaleanchor="x", scaleratio=1)
    return fig


def _depth_order(acts: Activations, names: Sequence[str]) -> list[str]:
    infos = acts.layer_infos
    return sorted(
        names, key=lambda n: (infos[n].order if n in infos else math.inf, list(names).index(n))
    )


def small_multiples(
    acts: Activations,
    layouts: Mapping[str, np.ndarray],
    color_by: str = "label",
    *,
    cols: int | None = None,
    title: str | None = None,
    panel_height: int = 360,
) -> go.Figure:
    """One panel per layer, in depth order, sharing colours and one legend.

    Args:
        acts: the activations.
        layouts: layer -> ``(N, 2|3)`` (e.g. from :func:`~embeddings.project_layers`, aligned).
        color_by: as for :func:`scatter`.
        cols: panels per row (default: all in one row up to 4).

    Returns:
        A ``go.Figure``; clicking a legend entry hides that class in every panel.
    """
    names = _depth_order(acts, list(layouts))
    if not names:
        raise ValueError("No layouts to draw.")
    dim = np.shape(layouts[names[0]])[1]
    cols = cols or min(4, len(names))
    rows = math.ceil(len(names) / cols)
    spec = {"type": "scene"} if dim == 3 else {"type": "xy"}
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=names,
        specs=[[spec] * cols for _ in range(rows)],
        horizontal_spacing=0.03,
        vertical_spacing=0.08 if rows > 1 else 0.0,
    )
    for i, name in enumerate(names):
        for trace in scatter_traces(acts, layouts[name], color_by, layer=name, show_legend=i == 0):
            fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(
        title=title,
        height=panel_height * rows + (60 if title else 30),
        legend={"itemsizing": "constant", "title": {"text": color_by}},
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 70 if title else 40, "b": 10},
    )
    if dim == 2:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        for i in range(len(names)):
            suffix = "" if i == 0 else str(i + 1)
            fig.update_layout({f"yaxis{suffix}": {"scaleanchor": f"x{suffix}", "scaleratio": 1}})
    return fig


def focus(
    fig: go.Figure,
    keep: Sequence[int] | np.ndarray | None = None,
    highlight: Sequence[int] | np.ndarray | None = None,
    *,
    faded_opacity: float = 0.12,
) -> go.Figure:
    """Restrict and highlight the points of a figure from :func:`scatter` or
    :func:`small_multiples`, by their row in the activations (``customdata[0]``), in every
    panel at once: a selection made in one layer's panel lights up the same images in all.

    Args:
        fig: the figure (changed in place and returned).
        keep: rows to draw (``None``: all); the others are removed from every trace.
        highlight: rows shown as selected (full colour); the others are faded.
        faded_opacity: opacity of the points not highlighted.
    """
    keep_set = None if keep is None else {int(r) for r in keep}
    lit = None if highlight is None else {int(r) for r in highlight}
    for trace in fig.data:
        custom = trace.customdata
        if custom is None or not len(custom):
            continue
        rows = np.array([int(c[0]) for c in custom])
        if keep_set is not None:
            mask = np.array([r in keep_set for r in rows], dtype=bool)
            update: dict[str, Any] = {"customdata": np.asarray(custom, dtype=object)[mask]}
            for axis in ("x", "y", "z"):
                values = getattr(trace, axis, None)
                if values is not None:
                    update[axis] = np.asarray(values)[mask]
            color = trace.marker.color
            if color is not None and not isinstance(color, str) and len(color) == len(rows):
                update["marker"] = {"color": np.asarray(color)[mask]}
            trace.update(update)
            rows = rows[mask]
        if lit is not None and trace.type == "scatter3d":  # no selection state in 3-D: size
            base = trace.marker.size if isinstance(trace.marker.size, int | float) else 4
            trace.update(marker={"size": [base * 2 if r in lit else base * 0.6 for r in rows]})
        elif lit is not None:
            trace.update(
                selectedpoints=[i for i, r in enumerate(rows) if r in lit],
                unselected={"marker": {"opacity": faded_opacity}},
                selected={"marker": {"opacity": 1.0}},
            )
    return fig


#: Above this many points, a point cloud's hover names only the class (the file names of
#: every point would make the page several times heavier).
CLOUD_HOVER_NAMES = 50_000


def point_cloud(
    acts: Activations,
    layout: np.ndarray,
    color_by: str = "label",
    *,
    title: str | None = None,
    height: int = 640,
) -> go.Figure:
    """A 2-D scatter plot for large runs (up to about a million points): WebGL traces
    (``go.Scattergl``) whatever the size, one per category, the row of each point as a plain
    integer ``customdata``, file names on hover up to :data:`CLOUD_HOVER_NAMES` points.

    Args:
        acts: the activations (labels, predictions, names).
        layout: ``(N, 2)`` coordinates, rows as in ``acts``.
        color_by: ``"label"``, ``"prediction"``, ``"correct"`` or ``"confidence"``.

    Returns:
        A ``go.Figure`` of ``go.Scattergl`` traces holding ``N`` points in all.
    """
    xy = np.asarray(layout, dtype=np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(acts):
        raise ValueError(f"layout must be (N, 2) with N = {len(acts)}, got {xy.shape}.")
    n = len(acts)
    size = 5 if n <= 3000 else 3 if n <= 100_000 else 2
    names = np.asarray(acts.names, dtype=object) if n <= CLOUD_HOVER_NAMES else None
    hover = "%{text}<extra>%{fullData.name}</extra>" if names is not None else None

    def trace(rows: np.ndarray, marker: dict[str, Any], **kwargs: Any) -> go.Scattergl:
        return go.Scattergl(
            x=xy[rows, 0],
            y=xy[rows, 1],
            mode="markers",
            marker=marker,
            customdata=rows.astype(np.int64),
            text=names[rows] if names is not None else None,
            hovertemplate=hover,
            **kwargs,
        )

    if color_by == "confidence":
        marker = {"size": size, "color": acts.confidence, "colorscale": "Viridis"}
        marker |= {"cmin": 0.0, "cmax": 1.0, "colorbar": {"title": {"text": "confidence"}}}
        traces = [trace(np.arange(n), marker, name="confidence", showlegend=False)]
    else:
        per_row, order, colors = _categories(acts, color_by)
        per_row_arr = np.asarray(per_row, dtype=object)
        traces = [
            trace(
                np.flatnonzero(per_row_arr == category),
                {"size": size, "color": colors[category], "opacity": 0.8},
                name=category,
            )
            for category in order
        ]
    fig = go.Figure(traces)
    fig.update_layout(
        title=title,
        height=height,
        legend={"itemsizing": "constant", "title": {"text": color_by}},
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        dragmode="pan",
    )
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None, scaleanchor="x", scaleratio=1)
    return fig


def cka_heatmap(
    names: Sequence[str], matrix: np.ndarray, *, title: str = "Linear CKA between layers"
) -> go.Figure:
    """Heatmap of a CKA matrix (from :func:`~embeddings.metrics.cka_matrix`), values written
    in the cells; rows top to bottom and columns left to right in depth order."""
    matrix = np.asarray(matrix, dtype=float)
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in matrix]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(names),
            y=list(names),
            zmin=0.0,
            zmax=1.0,
            colorscale="Viridis",
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: CKA %{z:.3f}<extra></extra>",
            colorbar={"title": {"text": "CKA"}},
        )
    )
    side = max(360, 60 * len(names) + 160)
    fig.update_layout(
        title=title,
        height=side,
        width=side + 80,
        template="plotly_white",
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def metrics_chart(
    table: Any, *, accuracy: float | None = None, title: str = "Class separation by depth"
) -> go.Figure:
    """Line chart of the per-layer metrics (from :func:`~embeddings.metrics.layer_metrics`)
    against depth, with the model's own accuracy as a dashed line when given."""
    fig = go.Figure()
    layers = list(table["layer"])
    for name, info in METRICS.items():
        if name in table.columns and table[name].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=layers,
                    y=table[name],
                    mode="lines+markers",
                    name=info.title,
                    hovertemplate=f"{info.title} at %{{x}}: %{{y:.3f}}<extra></extra>",
                )
            )
    if accuracy is not None:
        fig.add_hline(
            y=accuracy,
            line_dash="dash",
            line_color="#555",
            annotation_text=f"model accuracy {accuracy:.3f}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        title=title,
        height=420,
        template="plotly_white",
        xaxis={"title": {"text": "layer (shallow to deep)"}, "type": "category"},
        yaxis={"title": {"text": "score"}},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def html_page(sections: Sequence[tuple[str, go.Figure | str]], title: str) -> str:
    """A standalone HTML page (plotly.js inlined once: works offline) of figures and HTML.

    Args:
        sections: ``(heading, figure or HTML fragment)`` in page order.
        title: the page title.
    """
    parts, inlined = [], False
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, go.Figure):
            parts.append(
                content.to_html(
                    full_html=False, include_plotlyjs=not inlined, config={"displaylogo": False}
                )
            )
            inlined = True
        else:
            parts.append(content)
    body = "\n".join(parts)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title><style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1500px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;"
        "text-align:right}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
