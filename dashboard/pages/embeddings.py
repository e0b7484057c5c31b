"""Placeholder until the embeddings page lands."""

import streamlit as st

st.title("Embeddings")
st.info("This page is being built.")
