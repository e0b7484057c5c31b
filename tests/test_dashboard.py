"""Every dashboard page through Streamlit's AppTest: what is rendered, not just "no crash"."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explain import load_model
from explain.builtin.shapes import CLASSES, make_dataset

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_explain_default_shows_prediction_maps_and_downloads(app):
    text = _markdown(app)
    assert any(f"### {name}" in text for name in CLASSES)
    assert "with **Grad-CAM** at `layer3`" in text
    assert len(app.main.get("image")) == 3  # model view, heatmap, overlay
    assert len(app.get("download_button")) == 3
    assert len(app.get("plotly_chart")) == 1


def test_explain_uploaded_image_layer_method_and_class(app):
    sample = make_dataset(1, seed=99)
    true = CLASSES[int(sample.labels[0])]
    app.file_uploader(key="uploads").set_value(("star.png", _png(sample.images[0]), "image/png"))
    app.run()
    handle = load_model("builtin:shapes")
    probs = handle.predict([sample.images[0]])[0]
    predicted = CLASSES[int(probs.argmax())]
    assert predicted == true
    assert f"### {predicted} · {probs.max():.0%}" in _markdown(app)

    app.selectbox(key="explain_layer").set_value("layer2").run()
    assert "at `layer2`" in _markdown(app)
    app.selectbox(key="explain_method").set_value("gradcampp").run()
    assert "with **Grad-CAM++** at `layer2`" in _markdown(app)
    other = next(c for c in CLASSES if c != predicted)
    app.selectbox(key="explain_class_any").set_value(CLASSES.index(other)).run()
    assert f"Explaining **{other}**" in _markdown(app)
    assert not app.exception


def test_bad_uploads_are_reported_and_the_page_keeps_working(app, photo_paths):
    corrupt = photo_paths[0].read_bytes()[:4000]
    huge = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(huge, format="PNG")
    app.file_uploader(key="uploads").set_value(
        [
            ("notes.txt", b"not an image at all", "text/plain"),
            ("broken.jpg", corrupt, "image/jpeg"),
            ("huge.png", huge.getvalue(), "image/png"),
        ]
    )
    app.run()
    warnings = " ".join(w.value for w in app.warning)
    assert "notes.txt" in warnings and "not an image" in warnings
    assert "broken.jpg" in warnings and "truncated or corrupt" in warnings
    assert "huge.png" in warnings and "20000x20000" in warnings
    assert not app.exception
    assert len(app.main.get("image")) == 3  # the previous images are still explained


def test_unknown_hugging_face_model_without_network(app, monkeypatch):
    from explain.models import network

    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: False)
    app.radio(key="model_source").set_value("Hugging Face").run()
    app.text_input(key="hf_ref").set_value("nobody/no-such-model").run()
    app.button(key="load_hf").click().run()
    errors = " ".join(e.value for e in app.error)
    assert "nobody/no-such-model" in errors and "What to do" in errors
    assert not app.exception
    assert "**Model:** `builtin:shapes`" in "\n".join(m.value for m in app.sidebar.markdown)
    assert len(app.main.get("image")) == 3


def test_switching_to_the_biased_model(app):
    app.selectbox(key="builtin_spec").set_value("builtin:shapes-biased").run()
    app.button(key="load_builtin").click().run()
    assert "builtin:shapes-biased" in "\n".join(m.value for m in app.sidebar.markdown)
    assert not app.exception


def test_compare_layers_page(app):
    app.switch_page("views/layers.py").run()
    assert not app.exception
    assert len(app.main.get("image")) == 3  # layer1, layer2, layer3 of the built-in model
    assert "3 layers" in _markdown(app)
    app.radio(key="layers_scope").set_value("Every block").run()
    assert len(app.main.get("image")) == 6


def test_compare_methods_page(app):
    app.switch_page("views/methods.py").run()
    assert not app.exception
    assert len(app.main.get("image")) == 6
    app.multiselect(key="methods_chosen").set_value(["gradcam", "scorecam"]).run()
    assert len(app.main.get("image")) == 2
    assert not app.exception


def test_present_page_and_export(app):
    app.switch_page("views/present.py").run()
    assert not app.exception
    text = _markdown(app)
    assert "Image 1 of 6" in text and "The model is" in text and "highlighted in red" in text
    app.button(key="present_next").click().run()
    assert "Image 2 of 6" in _markdown(app)
    app.button(key="present_export").click().run()
    assert len(app.get("download_button")) == 1
    html = app.session_state["present_html"]
    assert html.count('class="slide"') == 6 and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # opens offline


def test_embeddings_page_runs_on_the_builtin_dataset(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GCE_CACHE_DIR", str(tmp_path))
    app.switch_page("views/embeddings.py").run()
    assert "press **Run**" in " ".join(i.value for i in app.info)
    app.slider(key="emb_n").set_value(120)
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    assert "**120 images** · 3 layers" in _markdown(app)
    assert len(app.get("plotly_chart")) == 3  # small multiples, CKA, metrics by depth
    table = app.dataframe[0].value
    assert list(table["layer"]) == ["layer1", "layer2", "layer3"]
    # Class separation grows with depth on the clean model; the last layer separates well.
    assert table["knn_accuracy"].iloc[-1] > 0.9 > table["knn_accuracy"].iloc[0]


def test_embeddings_folder_outside_allowed_roots_is_refused(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GCE_DATA_ROOTS", str(tmp_path / "allowed"))
    app.switch_page("views/embeddings.py").run()
    app.radio(key="emb_source").set_value("Folder")  # form widgets apply on submit
    app.text_input(key="emb_folder").set_value("/etc")
    app.get("form_submit_button")[0].click().run()
    assert "outside the folders this dashboard may read" in " ".join(e.value for e in app.error)
    assert not app.exception


def test_evaluate_page_leaderboard_and_bias_finder(app):
    app.switch_page("views/evaluate.py").run()
    app.slider(key="eval_n").set_value(12)
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    board = app.dataframe[0].value
    assert list(board.index) == [
        "Grad-CAM @ layer3",
        "Grad-CAM++ @ layer3",
        "Eigen-CAM @ layer3",
        "random (baseline)",
        "gaussian (baseline)",
    ]
    assert "Deletion AUC ↓" in board.columns and "Pointing game ↑" in board.columns
    # On the clean model Grad-CAM lands on the shape far more often than a random map.
    assert board.loc["Grad-CAM @ layer3", "Pointing game ↑"] >= 0.9
    assert board.loc["random (baseline)", "Pointing game ↑"] < 0.5
    assert (
        board.loc["Grad-CAM @ layer3", "Deletion AUC ↓"]
        < board.loc["random (baseline)", "Deletion AUC ↓"]
    )
    assert len(app.get("download_button")) == 1
    app.button(key="bias_demo").click().run()
    verdicts = _markdown(app)
    assert "**builtin:shapes-biased**: This model relies on the corner marker" in verdicts
    assert "**builtin:shapes**: This model looks at the shape" in verdicts
    assert not app.exception
