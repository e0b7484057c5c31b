"""Compare methods: one image and layer, the map of every method, with the time each took."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import state
from dashboard.widgets import (
    layer_select,
    method_progress,
    overlay_controls,
    page,
    picture_select,
)
from explain import METHOD_INFO, ExplainError
from explain.render import overlay

FAST = ["gradcam", "gradcampp", "xgradcam", "hirescam", "layercam", "eigencam"]

handle, pictures, model_key = page(
    "Compare methods",
    "Different methods answer slightly different questions; where they agree, trust the "
    "picture more. Score-CAM and Ablation-CAM run hundreds of forward passes.",
)

cols = st.columns([1, 1, 2])
with cols[0]:
    picture = picture_select(pictures, key="methods_picture")
with cols[1]:
    layer = layer_select(handle, "methods_layer")
with cols[2]:
    methods = st.multiselect(
        "Methods",
        list(METHOD_INFO),
        default=FAST,
        format_func=lambda m: METHOD_INFO[m].title,
        key="methods_chosen",
    )
alpha, cmap = overlay_controls("methods")
if not methods:
    st.info("Choose at least one method.")
    st.stop()
probs = state.predict(model_key, handle, picture.key, picture.pixels)
target = int(probs.argmax())
st.markdown(f"Explaining **{handle.labels[target]}** ({probs[target]:.0%}) at `{layer}`")
view = state.model_view(model_key, handle, picture.key, picture.pixels)
per_row = 4
row = None
for index, method in enumerate(methods):
    if index % per_row == 0:
        row = st.columns(per_row)
    col = row[index % per_row]
    info = METHOD_INFO[method]
    report, clear_progress = method_progress(col, method)
    start = time.perf_counter()
    try:
        result = state.cams(
            model_key,
            handle,
            picture.key,
            picture.pixels,
            method,
            (layer,),
            target,
            _progress=report,
        )
    except ExplainError as exc:
        col.warning(f"{info.title}: {str(exc).splitlines()[0]}")
        continue
    finally:
        clear_progress()
    elapsed = result.timings.get("total", time.perf_counter() - start)
    col.image(
        overlay(view, result.maps[layer][0], alpha, cmap),
        width="stretch",
        caption=f"{info.title} · {elapsed:.2f} s",
    )
