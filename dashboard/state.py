"""Cached resources shared by all pages and all browser sessions."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explain import ModelHandle, load_model

BUILTIN_SPECS = ("builtin:shapes", "builtin:shapes-biased")


@st.cache_resource(show_spinner="Loading the model…")
def get_model(spec: str) -> ModelHandle:
    """One model object per spec for every session (calls on it are serialised by its lock)."""
    return load_model(spec)


@st.cache_data(show_spinner=False)
def shapes_samples(n: int = 12, seed: int = 2024) -> tuple[np.ndarray, np.ndarray]:
    """Sample images from the built-in shapes generator: ``(n, 64, 64, 3)`` uint8, labels."""
    from explain.builtin.shapes import make_dataset

    data = make_dataset(n, seed=seed)
    return data.images, data.labels
