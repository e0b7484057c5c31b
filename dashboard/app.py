"""Grad-CAM Explorer dashboard: ``streamlit run dashboard/app.py``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Grad-CAM Explorer", page_icon="🔍", layout="wide")

navigation = st.navigation(
    [
        st.Page(PAGES / "explain.py", title="Explain", icon="🔍", default=True),
    ]
)
navigation.run()
