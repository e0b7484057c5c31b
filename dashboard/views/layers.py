"""Compare layers: one image, the map of one class at many layers, all from one pass."""

from __future__ import annotations

import streamlit as st

from dashboard import results, state
from dashboard.widgets import (
    class_select,
    legend_and_controls,
    method_select,
    page,
    picture_select,
    show_error,
)
from explain import METHOD_INFO, ExplainError
from explain.render import common_scale, overlay

PAGE = "layers"
SCOPES = ("Last block of each stage", "Every block", "Choose")
PER_ROW = 3

ctx = page(
    "Compare layers",
    "Early layers see edges and textures; late layers see parts and objects. All maps "
    "below come from a single forward and backward pass.",
)
handle, model_key = ctx.handle, ctx.model_key

with st.container(horizontal=True, key="layers_controls", gap="medium"):
    with st.container(width=220):
        picture = picture_select(ctx.pictures, PAGE)
    with st.container(width=200):
        method = method_select(handle, PAGE, kinds=("gradient", "activation", "attention"))
    with st.container(width=250):
        key, on_change = state.controlled(
            "layers_scope", state.get("layers_scope", SCOPES[0]), PAGE
        )
        scope = st.selectbox("Layers", SCOPES, key=key, on_change=on_change)
    with st.container(width=250):
        key, on_change = state.controlled("shared_scale", bool(state.get("shared_scale")), PAGE)
        shared = st.toggle(
            "One colour scale for all layers",
            key=key,
            on_change=on_change,
            help="On: the same colour means the same strength in every layer. Off: each map "
            "is stretched to its own range (shows where each layer looks, not how strongly).",
        )
probs = results.predict(model_key, handle, picture)
target = class_select(handle, probs, PAGE)

names = [i.name for i in handle.map_layers]
if scope == SCOPES[0]:
    layers = handle.stage_layers()
elif scope == SCOPES[1]:
    layers = handle.block_layers()
else:
    chosen = [n for n in state.get("compare_layers", handle.stage_layers()) if n in names]
    key, on_change = state.controlled("compare_layers", chosen, PAGE)
    layers = st.multiselect("Layers to compare", names, key=key, on_change=on_change)
if not layers:
    st.info("Choose at least one layer.")
    st.stop()

try:
    with st.spinner(f"{METHOD_INFO[method].title} at {len(layers)} layers…"):
        result = results.cams(model_key, handle, picture, method, tuple(layers), target)
except ExplainError as exc:
    show_error(exc)
    st.stop()

view = results.model_view(model_key, handle, picture)
alpha, cmap = float(state.get("alpha", 0.5)), str(state.get("cmap", "jet"))
maps = (
    common_scale({n: result.raw[n][0] for n in layers}, view.shape[:2])
    if shared
    else {n: result.maps[n][0] for n in layers}
)
st.markdown(
    f"Explaining **{handle.labels[target]}** ({probs[target]:.0%}) with "
    f"**{METHOD_INFO[method].title}** at {len(layers)} layers · image **{picture.name}** · "
    f"computed in {result.timings.get('total', 0):.2f} s"
    + (" · one colour scale" if shared else "")
)
left, right = st.columns([1, 3], gap="medium")
left.image(view, caption="What the model sees", width="stretch")
with right, st.container(key="layers_grid"):
    for start in range(0, len(layers), PER_ROW):
        row = st.columns(PER_ROW)
        for col, name in zip(row, layers[start : start + PER_ROW], strict=False):
            info = handle.layer(name)
            col.image(
                overlay(view, maps[name], alpha, cmap),
                width="stretch",
                caption=f"{name} · {info.channels}×{info.grid[0]}×{info.grid[1]}",
            )
legend_and_controls(cmap, PAGE)
