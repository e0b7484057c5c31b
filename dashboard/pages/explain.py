"""Explain one image: the model's prediction and its Grad-CAM."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.state import BUILTIN_SPECS, get_model, shapes_samples
from explain import ExplainError, compute_cams
from explain.render import overlay

st.title("Explain a prediction")
spec = st.selectbox("Model", BUILTIN_SPECS, help="Built-in models work offline.")
handle = get_model(spec)
images, labels = shapes_samples()
index = st.slider("Sample image", 0, len(images) - 1, 0)
image = images[index]

try:
    result = compute_cams(handle, [image], method="gradcam")
except ExplainError as exc:
    st.error(str(exc))
    st.stop()

probs = result.probs[0]
top = int(probs.argmax())
st.markdown(f"**Prediction: {handle.labels[top]}** ({probs[top]:.0%} sure)")
left, right = st.columns(2)
left.image(image, caption=f"Sample (true class: {handle.labels[int(labels[index])]})",
           width="stretch")
heat = result.maps[handle.default_layer][0]
right.image(overlay(handle.prepare([image])[0], heat, alpha=0.5), caption="Grad-CAM",
            width="stretch")
st.bar_chart({handle.labels[i]: float(p) for i, p in enumerate(probs)})
