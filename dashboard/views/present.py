"""Present: one image at a time, a large picture and one plain sentence, for a room of people
who are not specialists. A presentation mode hides everything else (sidebar, controls) and
fits one 1366 x 768 screen; ← and → move between images, Esc leaves. The export is one HTML
file with the same slides that opens offline."""

from __future__ import annotations

import datetime

import streamlit as st

from dashboard import state, style
from dashboard.presentation import CMAP, Deck, today
from dashboard.widgets import colour_bar, method_progress, show_error, sidebar
from explain import METHOD_INFO, ExplainError

ctx = sidebar()
handle, pictures = ctx.handle, ctx.pictures
presenting = state.present_mode()
index = state.picture_index()
deck = Deck(
    handle,
    ctx.model_key,
    tuple(pictures),
    state.method(handle),
    state.layer(handle),
    index,
    today(),
)


def _move(step: int) -> None:
    state.put("picture", (state.picture_index() + step) % len(state.pictures()))


def _mode(on: bool) -> None:
    state.put("present_mode", on)


if presenting:
    style.presentation()
report, clear_progress = method_progress(st, deck.method)
try:
    slide = deck.slide(index, progress=report)
except ExplainError as exc:
    show_error(exc)
    st.stop()
finally:
    clear_progress()

with st.container(key="present_slide"):
    picture_col, text_col = st.columns([1.3, 1], gap="large", vertical_alignment="center")
    with picture_col, st.container(key="present_picture"):
        st.image(slide.overlay, width="stretch")
    with text_col:
        st.title(slide.title)
        st.markdown(
            f"<p style='font-size:1.5rem;line-height:1.45'>{slide.sentence}</p>",
            unsafe_allow_html=True,
        )
        colour_bar(CMAP)
        with st.container(key="present_original"):
            st.image(slide.original, caption="The image the model saw", width=200)
        for label, value in slide.facts[1:]:
            st.caption(f"{label}: {value}")
        st.caption(f"Model: **{handle.name}** · {deck.date}")

with st.container(horizontal=True, key="present_nav", vertical_alignment="center"):
    st.button("← Previous", key="w.present.prev", on_click=_move, args=(-1,), shortcut="Left")
    st.markdown(f"Image {index + 1} of {len(pictures)} · **{pictures[index].name}**")
    st.button("Next →", key="w.present.next", on_click=_move, args=(1,), shortcut="Right")
    if presenting:
        st.button(
            "Exit presentation", key="w.present.exit", on_click=_mode, args=(False,), shortcut="Esc"
        )

with st.container(key="present_controls"):
    st.divider()
    cols = st.columns([1.2, 1.2, 3])
    cols[0].button(
        "Presentation mode",
        key="w.present.enter",
        on_click=_mode,
        args=(True,),
        type="primary",
        icon=":material/slideshow:",
        help="Hides the sidebar and the controls; ← and → move between images, Esc leaves.",
    )
    # The file is made when clicked, from the deck on screen now: never an older one.
    cols[1].download_button(
        "Download HTML",
        deck.html,
        file_name=f"explanations-{datetime.date.today().isoformat()}.html",
        mime="text/html",
        key="w.present.download",
        on_click="ignore",
        icon=":material/download:",
    )
    cols[2].caption(
        f"{len(pictures)} slide{'s' if len(pictures) != 1 else ''} with "
        f"{METHOD_INFO[deck.method].title} at {deck.layer}; one file "
        "that opens offline in any browser (← and → there too). Change the method or layer on "
        "the Explain page."
    )
