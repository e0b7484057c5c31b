"""The dashboard through Streamlit's AppTest: the session's state transitions (model, images,
picture, method, layer, class, link) and what every page shows, without a browser.

Each test names the model it relies on (``?model=...``), never the dashboard's default.
"""

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
SHAPES = {"model": "builtin:shapes", "images": "shapes"}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _open(query: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or SHAPES)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception
    return at


@pytest.fixture()
def app() -> AppTest:
    return _open()


def _text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def _line(at: AppTest, start: str) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(start))


def _select(at: AppTest, label: str, where: str = "main"):
    return next(w for w in getattr(at, where).selectbox if w.label == label)


def _pills(at: AppTest):
    return next(w for w in at.main.get("button_group") if w.label == "Explain the class")


def _captions(at: AppTest) -> list[str]:
    return [img.caption for i in at.main.get("image") for img in i.proto.imgs]


def _image_urls(at: AppTest) -> list[str]:
    """Media URLs of the main area's pictures (they name the pixels' hash)."""
    return [img.url for i in at.main.get("image") for img in i.proto.imgs]


def _sidebar_model(at: AppTest) -> str:
    return next(m.value for m in at.sidebar.markdown if m.value.startswith("**Model:**"))


def _class_widgets_agree(at: AppTest, explained: str) -> None:
    """The "any class" box names the class explained, and the lit pill (if any) is it."""
    box = _select(at, "…or any class")
    assert box.format_func(box.value) == explained
    pills = _pills(at)
    if pills.value is not None:
        assert pills.value == box.value


def _load_torchvision(at: AppTest, name: str) -> None:
    """Load a torchvision architecture with random weights (offline) through the picker."""
    next(r for r in at.sidebar.radio if r.label == "Source").set_value("torchvision").run()
    _select(at, "Architecture (type to search)", "sidebar").set_value(name)
    next(t for t in at.sidebar.toggle if t.label.startswith("ImageNet weights")).set_value(False)
    next(b for b in at.sidebar.button if b.label == "Load").click().run()


def test_explain_shows_prediction_maps_downloads_and_its_choices(app):
    handle = load_model("builtin:shapes")
    pictures = make_dataset(6, seed=2024)
    probs = handle.predict([pictures.images[0]])[0]
    top = CLASSES[int(probs.argmax())]
    assert f"### {top} · {probs.max():.0%}" in _text(app)
    assert _line(app, "Explaining") == (
        f"Explaining **{top}** ({probs.max():.1%}) with **Grad-CAM** at `layer3` · image "
        f"**{top} 1**"
    )
    assert len(app.main.get("image")) == 3  # model view, map, overlay
    assert len(app.get("download_button")) == 3
    assert len(app.get("plotly_chart")) == 1
    # The selectors show what is explained.
    assert _select(app, "Image").format_func(_select(app, "Image").value) == f"{top} 1"
    assert _select(app, "Method").value == "gradcam"
    layer = _select(app, "Layer")
    assert layer.format_func(layer.value) == "layer3 · 128×8×8 (Sequential)"
    # The short list: the three stages, no BatchNorm / ReLU / conv rows; every layer a click away.
    assert layer.options == ["layer1 · 32×32×32 (Sequential)", *layer.options[1:]]
    assert len(layer.options) == 3
    next(t for t in app.main.toggle if t.label.startswith("Every layer")).set_value(True).run()
    every = _select(app, "Layer")
    assert len(every.options) == len(handle.map_layers) == 53
    assert any("BatchNorm2d" in o for o in every.options)
    _class_widgets_agree(app, top)
    assert app.query_params["method"] == "gradcam" and app.query_params["layer"] == "layer3"


def test_slow_methods_shown_again_never_replay_widgets():
    """Defect 1: Score-CAM / Ablation-CAM shown a second time raised CacheReplayClosureError."""
    app = _open()
    for method, title in [
        ("scorecam", "Score-CAM"),
        ("gradcam", "Grad-CAM"),
        ("scorecam", "Score-CAM"),
        ("ablationcam", "Ablation-CAM"),
        ("gradcampp", "Grad-CAM++"),
        ("ablationcam", "Ablation-CAM"),
    ]:
        _select(app, "Method").set_value(method).run()
        assert not app.exception
        assert f"with **{title}** at `layer3`" in _line(app, "Explaining")
        assert len(app.main.get("image")) == 3
    # A second browser session asking for the same maps, on Compare methods too.
    other = _open(page="views/methods.py")
    other.main.multiselect[0].set_value(["scorecam", "ablationcam", "gradcam"])
    for _ in range(2):
        other.run()
        assert not other.exception
        captions = _captions(other)
        assert [c.split(" · ")[0] for c in captions] == ["Score-CAM", "Ablation-CAM", "Grad-CAM"]
        other.switch_page("views/explain.py").run()
        other.switch_page("views/methods.py")


def test_results_report_progress_only_while_computing():
    """Progress shows on the first run of a slow method; a stored map is served without it."""
    import uuid

    from dashboard import results
    from dashboard.sources import Picture

    handle = load_model("builtin:shapes")
    pixels = make_dataset(1, seed=77).images[0]
    picture = Picture("fresh", pixels, "sample", key=f"fresh-{uuid.uuid4()}")  # never stored
    calls: list[tuple[int, int]] = []

    def run():
        return results.cams(
            "shapes",
            handle,
            picture,
            "scorecam",
            ("layer3",),
            progress=lambda done, total, message: calls.append((done, total)),
        )

    first = run()
    assert calls and calls[-1][0] == calls[-1][1]
    calls.clear()
    assert run() is first and not calls


def test_upload_shows_the_new_image_and_drops_the_old_class(app):
    """Defects 2 and 6: after an upload the Image box names the new image, and the class
    chosen for the old image is not carried over to it."""
    _select(app, "…or any class").set_value(CLASSES.index("hexagon")).run()
    assert _line(app, "Explaining").startswith("Explaining **hexagon**")
    sample = make_dataset(1, seed=99)
    handle = load_model("builtin:shapes")
    probs = handle.predict([sample.images[0]])[0]
    predicted = CLASSES[int(probs.argmax())]
    assert predicted == CLASSES[int(sample.labels[0])] != "hexagon"
    app.sidebar.file_uploader[0].set_value(("my star.png", _png(sample.images[0]), "image/png"))
    app.run()
    assert not app.exception
    image = _select(app, "Image")
    assert image.options == ["my star.png"] and image.format_func(image.value) == "my star.png"
    assert f"### {predicted} · {probs.max():.0%}" in _text(app)
    assert _line(app, "Explaining").startswith(f"Explaining **{predicted}**")
    assert "image **my star.png**" in _line(app, "Explaining")
    _class_widgets_agree(app, predicted)
    assert app.query_params["images"].startswith("upload-")
    assert not app.sidebar.file_uploader[0].value  # emptied: the thumbnails show what is used


def test_bad_uploads_name_the_file_and_the_real_reason(app, photo_paths):
    """Defect 5: no BytesIO, no "bytes is ...", no internal hash; the user's file name and
    the reason."""
    corrupt = photo_paths[0].read_bytes()[:4000]
    huge = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(huge, format="PNG")
    app.sidebar.file_uploader[0].set_value(
        [
            ("notes.txt", b"not an image at all", "text/plain"),
            ("empty.png", b"", "image/png"),
            ("broken.jpg", corrupt, "image/jpeg"),
            ("huge.png", huge.getvalue(), "image/png"),
        ]
    )
    app.run()
    warnings = [w.value for w in app.warning]
    assert len(warnings) == 4
    assert "notes.txt is not an image file" in warnings[0]
    assert "empty.png is empty (0 bytes)" in warnings[1]
    assert "broken.jpg is truncated or corrupt" in warnings[2]
    assert "huge.png is 20000x20000 pixels" in warnings[3]
    for text in warnings:
        assert "BytesIO" not in text and "bytes is" not in text
    assert not app.exception
    assert len(app.main.get("image")) == 3  # the previous images are still explained
    assert _select(app, "Image").format_func(0) == f"{CLASSES[0]} 1"


def test_model_switch_resets_what_depends_on_the_model(app):
    """Defects 2 and 3: the Layer box and the class choice belong to the model."""
    _select(app, "Layer").set_value("layer2").run()
    _select(app, "…or any class").set_value(CLASSES.index("triangle")).run()
    assert _line(app, "Explaining").startswith("Explaining **triangle**")
    _load_torchvision(app, "resnet18")
    assert not app.exception
    assert _sidebar_model(app) == "**Model:** `torchvision:resnet18 (random weights)`"
    layer = _select(app, "Layer")
    assert (
        layer.value == "layer4" and layer.format_func("layer4") == "layer4 · 512×7×7 (Sequential)"
    )
    assert all("128×8×8" not in o for o in layer.options)
    from dashboard.sources import ModelChoice, get_model

    handle = get_model(ModelChoice("torchvision:resnet18", None))  # the dashboard's own copy
    probs = handle.predict([make_dataset(1, seed=2024).images[0]])[0]
    top = handle.labels[int(probs.argmax())]
    assert _line(app, "Explaining").startswith(f"Explaining **{top}**")
    assert "at `layer4`" in _line(app, "Explaining")
    _class_widgets_agree(app, top)
    assert _pills(app).value == int(probs.argmax())
    # The picker shows the model in use; the link names it.
    assert next(r for r in app.sidebar.radio if r.label == "Source").value == "torchvision"
    assert _select(app, "Architecture (type to search)", "sidebar").value == "resnet18"
    assert app.query_params["model"] == "torchvision:resnet18"
    assert app.query_params["weights"] == "random" and app.query_params["layer"] == "layer4"


def test_junk_weights_are_refused_by_their_own_name(app):
    next(r for r in app.sidebar.radio if r.label == "Source").set_value("Your weights").run()
    uploaders = [u for u in app.sidebar.file_uploader if u.label.startswith("Weights")]
    uploaders[0].set_value(("junk.pth", b"12345678", "application/octet-stream")).run()
    next(b for b in app.sidebar.button if b.label == "Load").click().run()
    errors = " ".join(e.value for e in app.error)
    assert "junk.pth is not a PyTorch weights file" in errors
    assert "Python objects" not in errors and "What to do" in errors
    assert _sidebar_model(app) == "**Model:** `builtin:shapes`"
    assert not app.exception


def test_link_restores_model_images_method_and_layer():
    """Defect 8: a reload or a shared link shows the same view."""
    app = _open(
        {
            "model": "builtin:shapes-biased",
            "images": "shapes-marker",
            "method": "gradcampp",
            "layer": "layer2",
        }
    )
    assert _sidebar_model(app) == "**Model:** `builtin:shapes-biased`"
    assert "with **Grad-CAM++** at `layer2`" in _line(app, "Explaining")
    assert _select(app, "Method").value == "gradcampp"
    assert _select(app, "Layer").value == "layer2"
    assert _select(app, "Image").format_func(0).endswith("+ marker")
    app.switch_page("views/layers.py").run()
    assert app.query_params["model"] == "builtin:shapes-biased"
    assert app.query_params["images"] == "shapes-marker"
    # Uploads this server does not have: the samples, and a word on why.
    gone = _open({"model": "builtin:shapes", "images": "upload-" + "0" * 24})
    assert "not on this server" in " ".join(i.value for i in gone.sidebar.info)
    from dashboard import sources

    samples = sources.load_images_source(sources.default_sample_set())
    assert _select(gone, "Image").format_func(0) == samples[0].name
    # A link may not name Python code or a file on the server: the default model is used.
    refused = _open({"model": "explain.architectures:cifar_resnet20", "method": "nonsense"})
    assert _sidebar_model(refused) != "**Model:** `explain.architectures:cifar_resnet20`"
    assert _select(refused, "Method").value == "gradcam"


def test_unknown_hugging_face_model_without_network(app, monkeypatch):
    from explain.models import network

    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: False)
    next(r for r in app.sidebar.radio if r.label == "Source").set_value("Hugging Face").run()
    next(t for t in app.sidebar.text_input if t.label.startswith("Hub id")).set_value(
        "nobody/no-such-model"
    ).run()
    next(b for b in app.sidebar.button if b.label == "Load").click().run()
    errors = " ".join(e.value for e in app.error)
    assert "nobody/no-such-model" in errors and "What to do" in errors
    assert not app.exception
    assert _sidebar_model(app) == "**Model:** `builtin:shapes`"
    assert len(app.main.get("image")) == 3


def test_compare_layers_class_picker_and_shared_scale():
    app = _open(page="views/layers.py")
    captions = _captions(app)
    assert captions[0] == "What the model sees"
    assert [c.split(" · ")[0] for c in captions[1:]] == ["layer1", "layer2", "layer3"]
    _select(app, "…or any class").set_value(CLASSES.index("star")).run()
    assert _line(app, "Explaining").startswith("Explaining **star**")
    own = _image_urls(app)[1:]
    next(t for t in app.main.toggle if t.label.startswith("One colour scale")).set_value(True).run()
    assert "one colour scale" in _line(app, "Explaining")
    shared = _image_urls(app)[1:]
    assert own != shared
    _select(app, "Layers").set_value("Every block").run()
    assert len(app.main.get("image")) == 1 + 6
    assert not app.exception


def test_present_mode_and_export_follow_the_screen():
    """Defect 4: the export is made from what the page shows now, model and images included."""
    from dashboard.presentation import Deck, today
    from dashboard.sources import SAMPLE_SETS, ModelChoice, get_model

    app = _open(page="views/present.py")
    assert "Image 1 of 6" in _text(app) and "The model is" in _text(app)
    next(b for b in app.main.button if b.label == "Next →").click().run()
    assert "Image 2 of 6" in _text(app)
    next(b for b in app.main.button if b.label == "Presentation mode").click().run()
    assert app.query_params["mode"] == "present"
    assert any(b.label == "Exit presentation" for b in app.main.button)
    # Another model: the deck on screen (and so the file) names it.
    next(r for r in app.sidebar.radio if r.label == "Source").set_value("Built-in").run()
    _select(app, "Built-in model", "sidebar").set_value("builtin:shapes-biased")
    next(b for b in app.sidebar.button if b.label == "Use this model").click().run()
    assert not app.exception
    title = app.title[0].value
    sentence = next(m.value for m in app.markdown if "The model is" in m.value)
    handle = get_model(ModelChoice("builtin:shapes-biased"))
    deck = Deck(
        handle,
        ModelChoice("builtin:shapes-biased").key,
        tuple(SAMPLE_SETS["shapes"].load()),
        "gradcam",
        "layer3",
        1,
        today(),
    )
    html = deck.html()
    assert html.count('class="slide"') == 6 and "show(1);" in html
    assert f"<h2>{title}</h2>" in html and deck.slide(1).sentence in sentence
    assert "Model: builtin:shapes-biased" in html and today() in html
    assert "red = mattered most" in html and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # opens offline
    assert f"Model: **builtin:shapes-biased** · {today()}" in " ".join(c.value for c in app.caption)


def test_embeddings_page_metrics_in_words_and_mistakes(tmp_path, monkeypatch):
    monkeypatch.setenv("GCE_CACHE_DIR", str(tmp_path))
    app = _open(page="views/embeddings.py")
    assert "press **Run**" in " ".join(i.value for i in app.info)
    app.slider(key="emb_n").set_value(120)
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    assert "**120 images** · 3 layers" in _text(app)
    assert len(app.get("plotly_chart")) == 3  # small multiples, CKA, metrics by depth
    table = app.dataframe[0].value
    assert list(table.columns) == [
        "Layer",
        "Depth",
        "Features",
        "Silhouette",
        "k-NN accuracy (%)",
        "Linear-probe accuracy (%)",
        "Trustworthiness",
    ]
    assert list(table["Layer"]) == ["layer1", "layer2", "layer3"]
    # Class separation grows with depth on the clean model; the last layer separates well.
    assert table["k-NN accuracy (%)"].iloc[-1] > 90 > table["k-NN accuracy (%)"].iloc[0]
    app.toggle(key="emb_mistakes").set_value(True).run()
    note = next(c.value for c in app.caption if " of 120 images: " in c.value)
    assert "wrong" in note and "less than 60% sure" in note


def test_embeddings_folder_outside_allowed_roots_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GCE_DATA_ROOTS", str(tmp_path / "allowed"))
    app = _open(page="views/embeddings.py")
    app.radio(key="emb_source").set_value("Folder")  # form widgets apply on submit
    app.text_input(key="emb_folder").set_value("/etc")
    app.get("form_submit_button")[0].click().run()
    assert "outside the folders this dashboard may read" in " ".join(e.value for e in app.error)
    assert not app.exception


def test_evaluate_leaderboard_readable_and_bias_finder_pictures():
    app = _open(page="views/evaluate.py")
    app.slider(key="eval_n").set_value(12)
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    board = app.dataframe[0].value
    assert list(board.index) == [
        "Grad-CAM at layer3",
        "Grad-CAM++ at layer3",
        "Eigen-CAM at layer3",
        "Random map (baseline)",
        "Centred blob (baseline)",
    ]
    # Pointing game in percent of images; Average Drop is a percentage already.
    assert board.loc["Grad-CAM at layer3", "pointing_game"] >= 90
    assert board.loc["Random map (baseline)", "pointing_game"] < 50
    assert board["average_drop"].min() >= 0 and board["average_drop"].max() <= 100
    assert (
        board.loc["Grad-CAM at layer3", "deletion"] < board.loc["Random map (baseline)", "deletion"]
    )
    assert len(app.get("download_button")) == 1
    app.button(key="bias_demo").click().run()
    verdicts = _text(app)
    assert "**builtin:shapes-biased**: This model relies on the corner marker" in verdicts
    assert "**builtin:shapes**: This model looks at the shape" in verdicts
    captions = _captions(app)
    pictures = [c for c in captions if "marker · a " in c]
    assert len(pictures) == 8  # 2 models x 2 shapes x (marker, no marker)
    assert sum("with marker" in c for c in pictures) == 4
    # The biased model loses its answer without the marker; the clean one keeps it.
    biased, clean = pictures[:4], pictures[4:]
    assert all(c.endswith("✓") for c in clean)
    assert any(c.endswith("✗") for c in biased if c.startswith("no marker"))
    study = app.dataframe[-1].value
    assert "Map on the marker (%)" in study.columns and "Accuracy (%)" in study.columns
    assert not app.exception
