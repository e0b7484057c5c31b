"""Placeholder until the evaluate page lands."""

import streamlit as st

st.title("Evaluate")
st.info("This page is being built.")
