"""Explain: one image, its prediction, and the class-activation map of any class at any layer."""

from __future__ import annotations

import streamlit as st

from dashboard import results, state
from dashboard.widgets import (
    class_select,
    colour_bar,
    downloads,
    layer_select,
    method_progress,
    method_select,
    overlay_controls,
    page,
    picture_select,
    prediction_chart,
    quick_perturbation,
    show_error,
)
from explain import METHOD_INFO, ExplainError, top_classes
from explain.render import colorize, overlay

PAGE = "explain"

ctx = page(
    "Explain a prediction",
    "Which parts of the image made the model choose a class: warm, bright colours mark what "
    "mattered most.",
)
handle, model_key = ctx.handle, ctx.model_key
st.caption(
    f"Model: **{handle.name}** · {handle.num_classes} classes · input "
    f"{handle.input_size[0]}×{handle.input_size[1]}"
)
for note in handle.notes:
    st.info(note, icon=":material/info:")

# Controls as a toolbar that wraps: it holds at 1400, 1000 and 800 pixels.
with st.container(horizontal=True, key="explain_controls", gap="medium"):
    with st.container(width=220):
        picture = picture_select(ctx.pictures, PAGE)
    with st.container(width=200):
        method = method_select(handle, PAGE)
    with st.container(width=300):
        layer = layer_select(handle, PAGE)
        quick = quick_perturbation(handle, method, layer, PAGE)
report, clear_progress = method_progress(st, method)
try:
    # A picture's probabilities come with its first map (the top class's: no pass of their
    # own); after that only the class shown is computed: one pass for a new view, none for
    # one shown before (any other class is kept for when it is asked again).
    probs = results.known_probs(model_key, picture)
    if probs is None:
        first = results.cams(
            model_key, handle, picture, method, (layer,), None, max_channels=quick, progress=report
        )
        probs = results.remember_probs(model_key, picture, first.probs[0])
    with st.container(key="explain_classes"):
        target = class_select(handle, probs, PAGE)
    wanted = None if target == int(probs.argmax()) else target  # the top class's own key
    result = results.cams(
        model_key, handle, picture, method, (layer,), wanted, max_channels=quick, progress=report
    )
    heat = result.maps[layer][0]
except ExplainError as exc:
    show_error(exc)
    st.stop()
finally:
    clear_progress()
view = results.model_view(model_key, handle, picture)
alpha, cmap = float(state.get("alpha", 0.5)), str(state.get("cmap", "jet"))

label = handle.labels[target]
top5 = top_classes(probs, 5, handle.labels)
st.markdown(f"### {top5.labels[0]} · {top5.probabilities[0]:.0%}")
st.markdown(
    f"Explaining **{label}** ({probs[target]:.1%}) with **{METHOD_INFO[method].title}** "
    f"at `{layer}` · image **{picture.name}**"
)
with st.container(key="explain_pictures"):
    cols = st.columns(3)
    cols[0].image(view, caption="What the model sees", width="stretch")
    cols[1].image(colorize(heat, cmap), caption=f"Map of “{label}”", width="stretch")
    cols[2].image(overlay(view, heat, alpha, cmap), caption="Overlay", width="stretch")
    colour_bar(cmap)
for note in result.notes:
    st.caption(note)

with st.container(horizontal=True, gap="large"):  # side by side when wide, else stacked
    with st.container(width=480):
        st.plotly_chart(
            prediction_chart(handle, probs, explained=target), width="stretch", key="explain_chart"
        )
    side = st.container(width=360)
with side:
    overlay_controls(PAGE)
    summary = {
        **result.summary(),
        "model": handle.name,
        "image": picture.name,
        "layer": layer,
        "class": label,
        "class_index": target,
        "probability": float(probs[target]),
        "top5": [
            {"class": name, "probability": float(p)}
            for name, p in zip(top5.labels, top5.probabilities, strict=True)
        ],
    }
    downloads(f"{picture.name}_{method}_{layer}", view, heat, summary, alpha, cmap, PAGE)
    with st.expander(f"About {METHOD_INFO[method].title}"):
        info = METHOD_INFO[method]
        st.write(info.summary)
        st.code(info.formula, language=None)
        st.caption(info.reference)
