"""Grad-CAM Explorer dashboard: ``streamlit run dashboard/app.py``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="Grad-CAM Explorer", page_icon="🔍", layout="wide")

navigation = st.navigation(
    {
        "Explain": [
            st.Page(PAGES / "explain.py", title="Explain", icon=":material/search:", default=True),
            st.Page(PAGES / "layers.py", title="Compare layers", icon=":material/layers:"),
            st.Page(PAGES / "methods.py", title="Compare methods", icon=":material/compare:"),
        ],
        "Explore": [
            st.Page(PAGES / "embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
            st.Page(PAGES / "evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        ],
        "Share": [
            st.Page(PAGES / "present.py", title="Present", icon=":material/co_present:"),
        ],
    }
)
navigation.run()
