"""Compare layers: one image, the map at many layers, all from one pass."""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.widgets import (
    method_select,
    overlay_controls,
    page,
    picture_select,
    show_error,
)
from explain import METHOD_INFO, ExplainError
from explain.render import overlay

handle, pictures, model_key = page(
    "Compare layers",
    "Early layers see edges and textures; late layers see parts and objects. All maps "
    "below come from a single forward and backward pass.",
)

cols = st.columns([1, 1, 1])
with cols[0]:
    picture = picture_select(pictures, key="layers_picture")
with cols[1]:
    gradient_methods = [m for m, i in METHOD_INFO.items() if i.kind in ("gradient", "activation")]
    method = method_select("layers_method", methods=gradient_methods)
with cols[2]:
    scope = st.radio(
        "Layers", ("Last block of each stage", "Every block", "Choose"), key="layers_scope"
    )

names = [i.name for i in handle.map_layers]
if scope == "Last block of each stage":
    layers = handle.stage_layers()
elif scope == "Every block":
    layers = handle.block_layers()
else:
    layers = st.multiselect(
        "Layers to compare", names, default=handle.stage_layers(), key="layers_chosen"
    )
if not layers:
    st.info("Choose at least one layer.")
    st.stop()
alpha, cmap = overlay_controls("layers")
probs = state.predict(model_key, handle, picture.key, picture.pixels)
target = int(probs.argmax())
try:
    with st.spinner(f"{METHOD_INFO[method].title} at {len(layers)} layers…"):
        result = state.cams(
            model_key, handle, picture.key, picture.pixels, method, tuple(layers), target
        )
except ExplainError as exc:
    show_error(exc)
    st.stop()

st.markdown(
    f"Explaining **{handle.labels[target]}** ({probs[target]:.0%}) · computed in "
    f"{result.timings.get('total', 0):.2f} s for {len(layers)} layers"
)
view = state.model_view(model_key, handle, picture.key, picture.pixels)
per_row = 4
for start in range(0, len(layers), per_row):
    row = st.columns(per_row)
    for col, layer in zip(row, layers[start : start + per_row], strict=False):
        info = handle.layer(layer)
        col.image(
            overlay(view, result.maps[layer][0], alpha, cmap),
            width="stretch",
            caption=f"{layer} · {info.channels}×{info.grid[0]}×{info.grid[1]}",
        )
