"""Compare methods: one image, layer and class, the map of every method, with the time each
took."""

from __future__ import annotations

import streamlit as st

from dashboard import results, state
from dashboard.method_choice import not_offered_note, offered
from dashboard.widgets import (
    class_select,
    layer_select,
    legend_and_controls,
    method_progress,
    page,
    picture_select,
    quick_perturbation,
)
from explain import METHOD_INFO, ExplainError
from explain.render import overlay

PAGE = "methods"
FAST = ["gradcam", "gradcampp", "xgradcam", "hirescam", "layercam", "eigencam"]
PER_ROW = 4

ctx = page(
    "Compare methods",
    "Different methods answer slightly different questions; where they agree, trust the "
    "picture more. Score-CAM and Ablation-CAM run hundreds of forward passes.",
)
handle, model_key = ctx.handle, ctx.model_key

with st.container(horizontal=True, key="methods_controls", gap="medium"):
    with st.container(width=220):
        picture = picture_select(ctx.pictures, PAGE)
    with st.container(width=300):
        layer = layer_select(handle, PAGE)
    with st.container(width=420):
        names = offered(handle)
        first = FAST + [m for m in names if METHOD_INFO[m].kind == "attention"]
        chosen = [m for m in state.get("methods", first) if m in names]
        key, on_change = state.controlled("methods", chosen, PAGE)
        methods = st.multiselect(
            "Methods",
            names,
            format_func=lambda m: METHOD_INFO[m].title,
            key=key,
            on_change=on_change,
        )
if note := not_offered_note(handle):
    st.caption(note)
probs = results.predict(model_key, handle, picture)
target = class_select(handle, probs, PAGE)
if not methods:
    st.info("Choose at least one method.")
    st.stop()
quick = quick_perturbation(handle, methods, layer, PAGE)
alpha, cmap = float(state.get("alpha", 0.5)), str(state.get("cmap", "jet"))
st.markdown(
    f"Explaining **{handle.labels[target]}** ({probs[target]:.0%}) at `{layer}` · image "
    f"**{picture.name}**"
)
view = results.model_view(model_key, handle, picture)
row = None
for index, method in enumerate(methods):
    if index % PER_ROW == 0:
        row = st.columns(PER_ROW)
    col = row[index % PER_ROW]
    info = METHOD_INFO[method]
    report, clear_progress = method_progress(col, method)
    channels = quick if info.kind == "perturbation" else None
    try:
        result = results.cams(
            model_key,
            handle,
            picture,
            method,
            (layer,),
            target,
            max_channels=channels,
            progress=report,
        )
    except ExplainError as exc:
        col.warning(f"{info.title}: {str(exc).splitlines()[0]}")
        continue
    finally:
        clear_progress()
    approximate = f" · approximate, {channels} channels" if channels else ""
    col.image(
        overlay(view, result.maps[layer][0], alpha, cmap),
        width="stretch",
        caption=f"{info.title} · {result.timings.get('total', 0.0):.2f} s{approximate}",
    )
legend_and_controls(cmap, PAGE)
