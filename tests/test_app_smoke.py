"""The dashboard starts headless and shows the built-in model's prediction."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def test_explain_page_shows_prediction():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Prediction:" in text
    assert len(at.get("image")) == 2  # the sample and its Grad-CAM overlay
