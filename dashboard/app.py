"""Grad-CAM Explorer dashboard: ``streamlit run dashboard/app.py``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Grad-CAM Explorer", page_icon="🔍", layout="wide")

navigation = st.navigation(
    {
        "Explain": [
            st.Page(PAGES / "explain.py", title="Explain", icon="🔍", default=True),
            st.Page(PAGES / "layers.py", title="Compare layers", icon="🧅"),
            st.Page(PAGES / "methods.py", title="Compare methods", icon="⚖️"),
        ],
        "Explore": [
            st.Page(PAGES / "embeddings.py", title="Embeddings", icon="🗺️"),
            st.Page(PAGES / "evaluate.py", title="Evaluate", icon="✅"),
        ],
        "Share": [
            st.Page(PAGES / "present.py", title="Present", icon="🎤"),
        ],
    }
)
navigation.run()
