"""Present: one image at a time, a large picture and one plain sentence; export everything as a
single HTML file that opens offline."""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.widgets import show_error, sidebar
from explain import ExplainError
from explain.narrative import describe
from explain.render import overlay
from explain.report import Slide, presentation_html

CMAP, ALPHA = "jet", 0.45

handle, pictures, model_key = sidebar()


def slide_for(index: int) -> Slide:
    picture = pictures[index]
    probs = state.predict(model_key, handle, picture.key, picture.pixels)
    order = probs.argsort()[::-1]
    top, second = int(order[0]), int(order[1]) if len(order) > 1 else None
    result = state.cams(
        model_key, handle, picture.key, picture.pixels, "gradcam", (handle.default_layer,), top
    )
    heat = result.maps[handle.default_layer][0]
    view = state.model_view(model_key, handle, picture.key, picture.pixels)
    sentence = describe(
        handle.labels[top],
        float(probs[top]),
        heat,
        CMAP,
        second=(handle.labels[second], float(probs[second])) if second is not None else None,
    )
    facts = [("Image", picture.name)]
    if picture.label is not None:
        facts.append(("Correct answer", picture.label))
    return Slide(
        title=handle.labels[top].replace("_", " ").capitalize(),
        sentence=sentence,
        overlay=overlay(view, heat, ALPHA, CMAP),
        original=view,
        facts=facts,
    )


index = st.session_state.get("present_index", 0) % len(pictures)
nav = st.columns([1.4, 1.2, 5, 2.2])
if nav[0].button("← Previous", key="present_prev"):
    index = (index - 1) % len(pictures)
if nav[1].button("Next →", key="present_next"):
    index = (index + 1) % len(pictures)
st.session_state["present_index"] = index
nav[2].markdown(f"Image {index + 1} of {len(pictures)}")

try:
    slide = slide_for(index)
except ExplainError as exc:
    show_error(exc)
    st.stop()

st.title(slide.title)
left, right = st.columns([3, 1])
left.image(slide.overlay, width="stretch")
right.image(slide.original, caption="The image", width="stretch")
st.markdown(
    f"<p style='font-size:1.45rem;line-height:1.5'>{slide.sentence}</p>", unsafe_allow_html=True
)
for label, value in slide.facts[1:]:
    st.caption(f"{label}: {value}")

if nav[3].button("Export presentation", key="present_export"):
    with st.spinner("Preparing every slide…"):
        slides = [slide_for(i) for i in range(len(pictures))]
        st.session_state["present_html"] = presentation_html(slides)
if "present_html" in st.session_state:
    nav[3].download_button(
        "Download HTML",
        st.session_state["present_html"],
        file_name="explanations.html",
        mime="text/html",
        key="present_download",
    )
