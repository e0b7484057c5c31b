"""Widgets the pages share: picture, method, layer and class selectors (each shows the session's
choice, see :mod:`dashboard.state`), overlay controls, the colour bar, progress for the slow
methods, and downloads that never re-run the page. No maths here: everything calls ``explain``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explain import METHOD_INFO, ModelHandle, top_classes
from explain.layers import LayerInfo
from explain.progress import Progress
from explain.render import COLORMAPS, overlay, to_png
from explain.report import legend_html

from . import state
from .method_choice import not_offered_note, offered
from .sidebar import Context, page, show_error, sidebar
from .sources import Picture

__all__ = [
    "Context",
    "class_select",
    "colour_bar",
    "downloads",
    "layer_select",
    "legend_and_controls",
    "method_progress",
    "method_select",
    "overlay_controls",
    "page",
    "picture_select",
    "prediction_chart",
    "show_error",
    "sidebar",
]


def picture_select(pictures: Sequence[Picture], page: str) -> Picture:
    """Choose one of the pictures; the choice holds on every page."""
    key, on_change = state.controlled("picture", state.picture_index(), page)
    st.selectbox(
        "Image",
        range(len(pictures)),
        format_func=lambda i: pictures[i].name,
        key=key,
        on_change=on_change,
    )
    return state.current_picture()


def method_select(handle: ModelHandle, page: str, kinds: Sequence[str] | None = None) -> str:
    """Choose the method (one choice for the session, kept in the URL) among those offered
    for the model (of ``kinds`` only, when given)."""
    names = offered(handle, kinds)
    current = state.method(handle)
    key, on_change = state.controlled("method", current if current in names else names[0], page)
    note = not_offered_note(handle)
    return st.selectbox(
        "Method",
        names,
        format_func=lambda m: METHOD_INFO[m].title,
        key=key,
        on_change=on_change,
        help="How the map is made." + (f" {note}" if note else ""),
    )


#: Channels a quick Score-CAM / Ablation-CAM perturbs (those of highest activation variance).
QUICK_CHANNELS = 64


def quick_perturbation(
    handle: ModelHandle, methods: str | Sequence[str], layer: str, page: str
) -> int | None:
    """For perturbation methods among ``methods`` at a layer with more than
    :data:`QUICK_CHANNELS` channels, a switch to perturb only that many (approximate, several
    times faster; one switch for the session, on every page); returns the ``max_channels`` to
    give those methods (None: all)."""
    chosen = [methods] if isinstance(methods, str) else list(methods)
    slow = [METHOD_INFO[m].title for m in chosen if METHOD_INFO[m].kind == "perturbation"]
    info = handle.map_layer(layer)
    if not slow or (info.channels or 0) <= QUICK_CHANNELS:
        return None
    key, on_change = state.controlled(
        "quick_perturbation", bool(state.get("quick_perturbation")), page
    )
    quick = st.toggle(
        f"Quick: {QUICK_CHANNELS} of {info.channels} channels",
        key=key,
        on_change=on_change,
        help=f"{' and '.join(slow)} {'runs' if len(slow) == 1 else 'run'} the model once per "
        f"channel. Quick perturbs only the {QUICK_CHANNELS} channels whose activations vary "
        "most and gives the others no weight: an approximation, several times faster.",
    )
    return QUICK_CHANNELS if quick else None


def layer_label(info: LayerInfo) -> str:
    """``"layer3 · 128×8×8 (Sequential)"``: the name first, then what it outputs."""
    if info.grid is None:
        return info.describe()
    tokens = " tokens" if info.kind == "tokens" else ""
    return f"{info.name} · {info.channels}×{info.grid[0]}×{info.grid[1]}{tokens} ({info.type})"


def short_layers(handle: ModelHandle) -> list[str]:
    """The layers to offer first: the last block of each stage, ending with the default
    layer (no BatchNorm / ReLU / conv rows)."""
    names = {i.name for i in handle.map_layers}
    short = [n for n in handle.stage_layers() if n in names]
    if handle.default_layer not in short:
        short.append(handle.default_layer)
    return short


def layer_select(handle: ModelHandle, page: str) -> str:
    """Choose the layer: the stages first, every layer one click away (the toggle)."""
    infos = {i.name: i for i in handle.map_layers}
    short = short_layers(handle)
    chosen = state.layer(handle)
    every = bool(state.get("all_layers", False)) or chosen not in short
    names = list(infos) if every else short
    key, on_change = state.controlled("layer", chosen, page)
    value = st.selectbox(
        "Layer",
        names,
        format_func=lambda n: layer_label(infos[n]),
        key=key,
        on_change=on_change,
        help="The stages of the network, shallow to deep; switch on “every layer” for all "
        "modules with a spatial (or token-grid) output.",
    )
    toggle_key, _ = state.controlled("all_layers", every, page)

    def on_toggle() -> None:
        on = bool(st.session_state[toggle_key])
        state.put("all_layers", on)
        if not on and state.layer(handle) not in short:
            state.put("layer", handle.default_layer)

    st.toggle(f"Every layer ({len(infos)})", key=toggle_key, on_change=on_toggle)
    return value


def class_select(handle: ModelHandle, probs: np.ndarray, page: str) -> int:
    """The class to explain: one of the five most probable (pills), or any class by name.

    Both widgets show the class explained: the pill is lit when it is one of the five, and the
    box names it always. The choice belongs to this model and picture.
    """
    top = top_classes(probs, 5).indices.tolist()
    target = state.target(probs)
    pills_key = state.widget_key("target", page + ".top")
    any_key = state.widget_key("target", page + ".any")
    st.session_state[pills_key] = target if target in top else None
    st.session_state[any_key] = target

    def picked(key: str) -> Callable[[], None]:
        def on_change() -> None:
            value = st.session_state[key]
            if value is not None:  # clicking the lit pill again keeps the class
                state.put("target", int(value))

        return on_change

    word = "class" if handle.prompts is None else "prompt"  # a CLIP model's classes
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
        st.pills(
            f"Explain the {word}",
            top,
            key=pills_key,
            on_change=picked(pills_key),
            format_func=lambda i: f"{handle.labels[i]} ({probs[i]:.0%})",
        )
        st.selectbox(
            f"…or any {word}",
            range(handle.num_classes),
            key=any_key,
            on_change=picked(any_key),
            format_func=lambda i: handle.labels[i],
            placeholder=f"Search a {word} by name",
            width=240,
        )
    return target


def method_progress(container, method: str) -> tuple[Progress, Callable[[], None]]:
    """For the slow (perturbation) methods, a ``progress(done, total, message)`` callback that
    draws a bar in ``container`` when first called (a stored result draws nothing), and a
    function that removes the bar."""
    slot = container.empty()
    title = METHOD_INFO[method].title
    slow = METHOD_INFO[method].kind == "perturbation"
    bar = None

    def report(done: int, total: int, message: str) -> None:
        nonlocal bar
        if not slow:
            return
        text = f"{title}: {message}" if message else f"{title}…"
        if bar is None:
            bar = slot.progress(0.0, text=text)
        bar.progress(min(1.0, done / max(total, 1)), text=text)

    return report, slot.empty


def overlay_controls(page: str) -> tuple[float, str]:
    """Opacity and colour map (one choice for the session): they never run the model."""
    cols = st.columns(2)
    alpha = float(state.get("alpha", 0.5))
    key, on_change = state.controlled("alpha", alpha, page)
    alpha = cols[0].slider("Opacity", 0.0, 1.0, step=0.05, key=key, on_change=on_change)
    cmap = state.get("cmap", "jet")
    key, on_change = state.controlled("cmap", cmap if cmap in COLORMAPS else "jet", page)
    cmap = cols[1].selectbox("Colours", COLORMAPS, key=key, on_change=on_change)
    return alpha, cmap


def colour_bar(cmap: str, where=st) -> None:
    """What the colours mean: "dark blue = mattered least … red = mattered most"."""
    where.html(legend_html(cmap))


def legend_and_controls(cmap: str, page: str) -> None:
    """The colour bar beside the opacity and colour controls (stacked when narrow)."""
    with st.container(horizontal=True, gap="large", vertical_alignment="center"):
        with st.container(width=420):
            colour_bar(cmap)
        with st.container(width=380):
            overlay_controls(page)


def prediction_chart(
    handle: ModelHandle, probs: np.ndarray, k: int = 5, explained: int | None = None
) -> go.Figure:
    """The ``k`` most probable classes as bars; the class explained in the page's colour."""
    top = top_classes(probs, k).indices.tolist()[::-1]  # the most probable at the top
    if explained is not None and explained not in top:
        top = [explained, *top[1:]]
    colours = ["#d6336c" if i == explained else "#adb5bd" for i in top]
    fig = go.Figure(
        go.Bar(
            x=probs[top],
            y=[handle.labels[i] for i in top],
            orientation="h",
            text=[f"{probs[i]:.1%}" for i in top],
            textposition="auto",
            marker_color=colours,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=60 + 34 * len(top),
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
    )
    return fig


def downloads(
    stem: str,
    picture: np.ndarray,
    heat: np.ndarray,
    summary: dict,
    alpha: float,
    cmap: str,
    page: str,
) -> None:
    """Overlay PNG, map .npy and summary JSON. Files are made when clicked and the page is not
    run again (a download never recomputes anything)."""
    row = st.container(horizontal=True, gap="small")
    row.download_button(
        "Overlay (PNG)",
        lambda: to_png(overlay(picture, heat, alpha, cmap)),
        file_name=f"{stem}_overlay.png",
        mime="image/png",
        key=f"w.{page}.png",
        on_click="ignore",
    )
    row.download_button(
        "Map (.npy)",
        lambda: _npy_bytes(heat),
        file_name=f"{stem}_map.npy",
        mime="application/octet-stream",
        key=f"w.{page}.npy",
        on_click="ignore",
    )
    row.download_button(
        "Summary (JSON)",
        lambda: json.dumps(summary, indent=2),
        file_name=f"{stem}_summary.json",
        mime="application/json",
        key=f"w.{page}.json",
        on_click="ignore",
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, np.float32))
    return buf.getvalue()
