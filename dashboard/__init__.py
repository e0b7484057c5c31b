"""The Streamlit dashboard of Grad-CAM Explorer (widgets only; the maths lives in ``explain``
and ``embeddings``)."""
