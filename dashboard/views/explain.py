"""Explain: one image, its prediction, and the class-activation map of any class at any layer."""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.widgets import (
    class_select,
    downloads,
    layer_select,
    method_progress,
    method_select,
    overlay_controls,
    page,
    picture_select,
    prediction_chart,
    show_error,
)
from explain import METHOD_INFO, ExplainError, TopK
from explain.render import colorize, overlay

handle, pictures, model_key = page(
    "Explain a prediction",
    "Which parts of the image made the model choose a class: warm, bright colours mark what "
    "mattered most.",
)
st.caption(
    f"Model: **{handle.name}** · {handle.num_classes} classes · input "
    f"{handle.input_size[0]}×{handle.input_size[1]}"
)
for note in handle.notes:
    st.info(note, icon=":material/info:")

controls, results = st.columns([1, 2.2], gap="large")
with controls:
    picture = picture_select(pictures)
    method = method_select("explain_method")
    layer = layer_select(handle, "explain_layer")
    probs = state.predict(model_key, handle, picture.key, picture.pixels)
    target = class_select(handle, probs, "explain_class")
    alpha, cmap = overlay_controls("explain")
    with st.expander(f"About {METHOD_INFO[method].title}"):
        info = METHOD_INFO[method]
        st.write(info.summary)
        st.code(info.formula, language=None)
        st.caption(info.reference)

top5 = [int(i) for i in probs.argsort()[::-1][:5]]
report, clear_progress = method_progress(st, method)
# The five best classes share one pass: switching among them never runs the model again.
wanted = TopK(len(top5)) if target in top5 else target
try:
    result = state.cams(
        model_key,
        handle,
        picture.key,
        picture.pixels,
        method,
        (layer,),
        wanted,
        _progress=report,
    )
except ExplainError as exc:
    show_error(exc)
    st.stop()
finally:
    clear_progress()
heat = result.maps[layer][0, top5.index(target)] if target in top5 else result.maps[layer][0]

view = state.model_view(model_key, handle, picture.key, picture.pixels)
with results:
    label = handle.labels[target]
    st.markdown(f"### {handle.labels[int(probs.argmax())]} · {probs.max():.0%}")
    st.markdown(
        f"Explaining **{label}** ({probs[target]:.1%}) with "
        f"**{METHOD_INFO[method].title}** at `{layer}`"
    )
    cols = st.columns(3)
    cols[0].image(view, caption="What the model sees", width="stretch")
    cols[1].image(colorize(heat, cmap), caption="Heatmap", width="stretch")
    cols[2].image(overlay(view, heat, alpha, cmap), caption="Overlay", width="stretch")
    st.plotly_chart(prediction_chart(handle, probs), width="stretch", key="explain_chart")
    for note in result.notes:
        st.caption(note)
    summary = {
        **result.summary(),
        "model": handle.name,
        "image": picture.name,
        "class": label,
        "class_index": target,
        "probability": float(probs[target]),
        "top5": [{"class": handle.labels[i], "probability": float(probs[i])} for i in top5],
    }
    downloads(f"{picture.name}_{method}_{layer}", view, heat, summary, alpha, cmap, "explain")
