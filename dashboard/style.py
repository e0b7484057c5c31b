"""Page styles: a little CSS for every page, and the presentation mode (no sidebar, no
controls, the picture and its sentence on one 1366 x 768 screen)."""

from __future__ import annotations

import streamlit as st

BASE = """
<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
/* Pills and buttons wrap instead of being cut off in narrow columns. */
[data-testid="stButtonGroup"] > div { flex-wrap: wrap; }
.st-key-explain_pictures [data-testid="stImageCaption"],
.st-key-layers_grid [data-testid="stImageCaption"] { font-size: 0.85rem; }
/* A picture of a fixed width never overflows a column narrower than it (Present at 800 px). */
.st-key-present_original * { max-width: 100%; }
.st-key-present_original img { height: auto; }
</style>
"""

PRESENTATION = """
<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], header[data-testid="stHeader"],
.st-key-present_controls { display: none !important; }
[data-testid="stMainBlockContainer"] { padding: 1rem 2.5rem 0.5rem 2.5rem !important;
  max-width: 100% !important; }
.st-key-present_slide h1 { padding: 0 0 0.25rem 0; font-size: 2.2rem; }
.st-key-present_picture img { max-height: 76vh; object-fit: contain; }
.st-key-present_original img { max-height: 24vh; object-fit: contain; }
</style>
"""


def apply() -> None:
    """The styles every page uses."""
    st.html(BASE)


def presentation() -> None:
    """Hide the sidebar, the header and the page's controls; size the picture to the screen."""
    st.html(PRESENTATION)
