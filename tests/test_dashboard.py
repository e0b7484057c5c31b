"""The dashboard through Streamlit's AppTest: the session's state transitions (model, images,
picture, method, layer, class, link) and what every page shows, without a browser.

Each test names the model it relies on (``?model=...``), never the dashboard's default.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explain import load_model
from explain.builtin.shapes import CLASSES, make_dataset
from explain.evaluation import METRICS

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SHAPES = {"model": "builtin:shapes", "images": "shapes"}
METRICS_BY_TITLE = {m.column_title: m.name for m in METRICS.values()}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _open(query: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(SHAPES if query is None else query)
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
    next(t for t in at.sidebar.toggle if t.label.startswith("Pretrained weights")).set_value(False)
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
            "images": "shapes",  # its own samples would be the marked ones
            "method": "gradcampp",
            "layer": "layer2",
        }
    )
    assert _sidebar_model(app) == "**Model:** `builtin:shapes-biased`"
    assert "with **Grad-CAM++** at `layer2`" in _line(app, "Explaining")
    assert _select(app, "Method").value == "gradcampp"
    assert _select(app, "Layer").value == "layer2"
    assert _select(app, "Image").format_func(0) == "circle 1"
    app.switch_page("views/layers.py").run()
    assert app.query_params["model"] == "builtin:shapes-biased"
    assert app.query_params["images"] == "shapes"
    # Without images in the link, a model shows the samples of its kind.
    marked = _open({"model": "builtin:shapes-biased"})
    assert _select(marked, "Image").format_func(0) == "circle 1 + marker"
    assert "images" not in marked.query_params
    # Uploads this server does not have: the samples, and a word on why.
    gone = _open({"model": "builtin:shapes", "images": "upload-" + "0" * 24})
    assert "not on this server" in " ".join(i.value for i in gone.sidebar.info)
    from dashboard import sources

    samples = sources.load_images_source(sources.default_sample_set("builtin:shapes"))
    assert _select(gone, "Image").format_func(0) == samples[0].name == "circle 1"
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
        "k-NN accuracy (% correct)",
        "Linear-probe accuracy (% correct)",
        "Trustworthiness",
    ]
    assert list(table["Layer"]) == ["layer1", "layer2", "layer3"]
    # Class separation grows with depth on the clean model; the last layer separates well.
    knn = table["k-NN accuracy (% correct)"]
    assert knn.iloc[-1] > 90 > knn.iloc[0]  # in percent, as the title says
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


def _verdict(table, method: str, metric: str, baseline: str) -> str:
    methods, metrics = table.index.get_level_values(0), table.index.get_level_values(1)
    row = table[(methods == method) & metrics.str.startswith(metric)]
    return str(row[f"vs {baseline}"].iloc[0]).split(" (")[0]


def test_evaluate_leaderboard_readable_and_bias_finder_pictures():
    app = _open(page="views/evaluate.py")
    app.slider(key="eval_n").set_value(12)
    metrics = ["deletion", "average_drop", "pointing_game", "energy_pointing_game"]
    app.multiselect(key="eval_metrics").set_value(metrics)
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    # One table per category, the ground truth first, each with its paired tests below it.
    located, located_tests, faithful, faithful_tests = (t.value for t in app.table[:4])
    rows = [
        "Grad-CAM at layer3",
        "Grad-CAM++ at layer3",
        "Eigen-CAM at layer3",
        "Random map (baseline)",
        "Centred blob (baseline)",
    ]
    assert list(located.index) == list(faithful.index) == rows
    located.columns = [METRICS_BY_TITLE[c] for c in located.columns]  # titles on screen
    faithful.columns = [METRICS_BY_TITLE[c] for c in faithful.columns]
    assert list(located.columns) == ["pointing_game", "energy_pointing_game"]
    assert list(faithful.columns) == ["deletion", "average_drop"]
    # Pointing game in percent of images; Average Drop is a percentage already.
    assert located.loc["Grad-CAM at layer3", "pointing_game"] >= 90
    assert located.loc["Random map (baseline)", "pointing_game"] < 50
    assert faithful["average_drop"].min() >= 0 and faithful["average_drop"].max() <= 100
    assert (
        faithful.loc["Grad-CAM at layer3", "deletion"]
        < faithful.loc["Random map (baseline)", "deletion"]
    )
    # The paired tests: Grad-CAM points at the shapes significantly more than a random map.
    assert list(located_tests.columns) == ["Mean", "vs centre", "vs random"]
    assert re.fullmatch(
        r"(better|worse|no significant difference) \(baseline [\d.]+%, p = \S+\)",
        located_tests["vs centre"].iloc[0],
    )
    assert _verdict(located_tests, "Grad-CAM at layer3", "Pointing game", "random") == "better"
    assert set(faithful_tests.index.get_level_values(1)) == {
        "Deletion AUC (0–1) ↓",
        "Average Drop (%) ↓",
    }
    assert len(app.get("download_button")) == 2  # scores (CSV) and the report
    # One image at a time: the mask's box drawn over the model's view and each method's map,
    # with that image's localisation scores.
    captions = _captions(app)
    assert captions[0].startswith("Ground truth: 1 box(es) · explained: ")
    assert captions[1].startswith("Grad-CAM at layer3 · Pointing game ")
    assert "Energy pointing game " in captions[1] and len(captions) == 4
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


def test_evaluate_on_real_photos_with_their_boxes(shared_data, monkeypatch):
    """Issue 11: the Evaluate page takes an annotated dataset (a folder and its boxes CSV,
    found next to it) and scores localisation on the real boxes next to both baselines."""
    monkeypatch.setenv("GCE_DATA_ROOTS", str(shared_data))
    app = _open({"model": "builtin:efficientnet-lite0"}, page="views/evaluate.py")
    app.segmented_control(key="eval_source").set_value("folder").run()
    app.text_input(key="eval_folder").set_value(str(shared_data / "imagenet-val" / "images"))
    app.slider(key="eval_n").set_value(6)
    app.multiselect(key="eval_methods").set_value(["gradcam"])
    app.multiselect(key="eval_metrics").set_value(
        ["pointing_game", "energy_pointing_game", "box_accuracy", "localisation_error"]
    )
    app.get("form_submit_button")[0].click().run()
    assert not app.exception
    assert any("ground truth: boxes.csv" in c.value for c in app.caption)
    board = app.table[0].value
    board.columns = [METRICS_BY_TITLE[c] for c in board.columns]  # titles on screen
    assert list(board.index) == [
        "Grad-CAM at bn2",
        "Random map (baseline)",
        "Centred blob (baseline)",
    ]
    assert list(board.columns) == [
        "pointing_game",
        "energy_pointing_game",
        "box_accuracy",
        "localisation_error",
    ]
    assert ((board >= 0) & (board <= 100)).all().all()  # percentages
    verdicts = app.table[1].value
    assert set(verdicts.index.get_level_values(0)) == {"Grad-CAM at bn2"} and len(verdicts) == 4
    assert verdicts["vs centre"].str.contains(r"\(baseline .*, p = ").all()
    # The images whose objects are small: their own table and tests.
    app.segmented_control(key="eval_subset").set_value("small objects").run()
    assert not app.exception
    assert app.table[0].value.shape == board.shape
    captions = _captions(app)
    assert re.match(r"Ground truth: \d+ box\(es\) · explained: ", captions[0])
    assert captions[1].startswith("Grad-CAM at bn2 · Pointing game ")


def test_first_screen_is_the_real_imagenet_model_on_a_photo():
    """Issue 11: with no link, a newcomer sees EfficientNet-Lite0 explaining a real photo
    (the cat) with its ImageNet class; picking a shapes model brings the shapes, and back."""
    from dashboard.sources import ModelChoice, get_model, load_images_source

    app = _open({})
    assert _sidebar_model(app) == "**Model:** `builtin:efficientnet-lite0`"
    handle = get_model(ModelChoice("builtin:efficientnet-lite0"))
    cat = load_images_source("photos")[0]
    probs = handle.predict([cat.pixels])[0]
    top = handle.labels[int(probs.argmax())]
    assert top in ("tabby", "tiger cat", "Egyptian cat")  # ImageNet's three house cats
    assert f"### {top} · {probs.max():.0%}" in _text(app)
    assert _line(app, "Explaining") == (
        f"Explaining **{top}** ({probs.max():.1%}) with **Grad-CAM** at `bn2` · image "
        "**chelsea the cat**"
    )
    assert len(app.main.get("image")) == 3
    assert _select(app, "Image").options[:3] == ["chelsea the cat", "espresso", "chinese palace"]
    # The attention methods are not offered for a CNN.
    assert "Attention rollout" not in _select(app, "Method").options
    assert app.query_params["model"] == "builtin:efficientnet-lite0"
    # Lite0 -> shapes: the shapes come with it; -> Lite0: the photos again.
    picker = next(r for r in app.sidebar.radio if r.label == "Source")
    assert picker.options == [
        "Built-in",
        "torchvision",
        "timm",
        "Hugging Face",
        "CLIP (Hugging Face)",
        "CLIP (open_clip)",
        "Your weights",
    ]
    for spec, first, layer in [
        ("builtin:shapes", "circle 1", "layer3"),
        ("builtin:efficientnet-lite0", "chelsea the cat", "bn2"),
    ]:
        _select(app, "Built-in model", "sidebar").set_value(spec)
        next(b for b in app.sidebar.button if b.label == "Use this model").click().run()
        assert not app.exception
        assert _sidebar_model(app) == f"**Model:** `{spec}`"
        assert f"at `{layer}` · image **{first}**" in _line(app, "Explaining")


def test_transformer_offers_attention_methods_on_every_page():
    """The attention methods appear for a vision transformer (a timm ViT, random weights so
    that it loads offline), run on the Explain, Compare layers and Compare methods pages."""
    app = _open({"model": "timm:vit_tiny_patch16_224", "weights": "random", "images": "photos"})
    methods = _select(app, "Method")
    assert methods.options[-3:] == ["Attention rollout", "Attention relevancy (Chefer)", "LeGrad"]
    for method, title in [("rollout", "Attention rollout"), ("legrad", "LeGrad")]:
        methods = _select(app, "Method")
        methods.set_value(method).run()
        assert not app.exception and not app.error
        assert f"with **{title}** at `blocks.11.norm1`" in _line(app, "Explaining")
    app.switch_page("views/layers.py").run()
    assert not app.exception and not app.error
    assert "with **LeGrad** at 4 layers" in (_line(app, "Explaining"))
    app.switch_page("views/methods.py").run()
    chosen = next(m for m in app.main.multiselect if m.label == "Methods")
    assert chosen.value[-3:] == ["rollout", "chefer", "legrad"]
    assert not app.exception
    captions = [c.split(" · ")[0] for c in _captions(app)]
    assert captions[-3:] == ["Attention rollout", "Attention relevancy (Chefer)", "LeGrad"]
    # Back on a CNN: no attention method offered, and a word on why.
    cnn = _open(page="views/methods.py")
    chosen = next(m for m in cnn.main.multiselect if m.label == "Methods")
    assert "rollout" not in chosen.options and "rollout" not in chosen.value
    assert any("no attention blocks" in c.value for c in cnn.caption)


def test_each_new_view_is_one_pass_and_a_view_shown_before_none(monkeypatch):
    """Warm interactions: a new class, layer, method or image runs the model once (the class
    shown only, never the top class again for its probabilities); a view shown before runs
    nothing."""
    from dashboard import results

    calls: list[tuple] = []
    real = results.compute_cams

    def counted(handle, images, layers, method, targets=None, **kwargs):
        calls.append((tuple(layers), method, targets))
        return real(handle, images, layers=layers, method=method, targets=targets, **kwargs)

    monkeypatch.setattr(results, "compute_cams", counted)
    results.store().clear()
    app = _open()
    assert calls == [(("layer3",), "gradcam", None)]  # the map and the probabilities
    steps = [
        (lambda: _select(app, "…or any class").set_value(CLASSES.index("hexagon")), 1),
        (lambda: _select(app, "Layer").set_value("layer2"), 1),  # hexagon at layer2 only
        (lambda: _select(app, "Method").set_value("gradcampp"), 1),
        (lambda: _select(app, "Method").set_value("gradcam"), 0),  # shown before
        (lambda: _select(app, "Layer").set_value("layer3"), 0),
        (lambda: _select(app, "Image").set_value(1), 1),  # a new image: its top class
        (lambda: _select(app, "Image").set_value(0), 0),
    ]
    for step, passes in steps:
        calls.clear()
        step().run()
        assert not app.exception
        assert len(calls) == passes, calls
    assert _line(app, "Explaining").startswith("Explaining **hexagon**")  # kept for image 0


def test_the_server_can_start_sessions_on_its_own_model(monkeypatch):
    """``gradcam-explorer app --model builtin:shapes --weights random`` (the environment it
    sets): a new session opens on that model, with those weights."""
    monkeypatch.setenv("GCE_MODEL", "builtin:shapes")
    monkeypatch.setenv("GCE_WEIGHTS", "random")
    at = _open(query={})
    assert _sidebar_model(at) == "**Model:** `builtin:shapes (random weights)`"
    assert not at.error


def test_a_server_model_that_cannot_load_falls_back_to_the_built_in_one(monkeypatch):
    monkeypatch.setenv("GCE_MODEL", "torchvision:resnet_nosuch")
    monkeypatch.delenv("GCE_WEIGHTS", raising=False)
    at = _open(query={})
    assert "resnet_nosuch" in " ".join(e.value for e in at.error)
    assert "builtin:" in _sidebar_model(at)
    assert "resnet_nosuch" not in _sidebar_model(at)


def test_compare_methods_offers_the_same_quick_switch(monkeypatch):
    """On Compare methods the Quick switch shows when a perturbation method is among those
    compared; it changes only their maps (their captions say so, and the engine's notes say
    approximate for them only), and it is the Explain page's switch: on here, on there."""
    from dashboard import results

    shown: dict[str, list[str]] = {}
    cams = results.cams

    def spy(model_key, handle, picture, method, *args, **kwargs):
        result = cams(model_key, handle, picture, method, *args, **kwargs)
        shown[method] = result.notes
        return result

    monkeypatch.setattr(results, "cams", spy)
    at = _open(page="views/methods.py")
    assert not any(t.label.startswith("Quick") for t in at.main.toggle)  # the fast methods
    at.main.multiselect[0].set_value(["scorecam", "gradcam"]).run()
    quick = next(t for t in at.main.toggle if t.label.startswith("Quick"))
    assert quick.label == "Quick: 64 of 128 channels" and quick.value is False
    exact = _image_urls(at)
    assert [c.split(" · ")[0] for c in _captions(at)] == ["Score-CAM", "Grad-CAM"]
    assert not any("approximate" in c for c in _captions(at))
    quick.set_value(True).run()
    assert not at.exception
    score, grad = _captions(at)
    assert score.startswith("Score-CAM · ") and score.endswith(" s · approximate, 64 channels")
    assert grad.startswith("Grad-CAM · ") and "approximate" not in grad
    assert _image_urls(at)[1] == exact[1]  # Grad-CAM's map is the one it was
    approximate = "approximate: only the 64 channels of highest variance were perturbed."
    assert approximate in shown["scorecam"] and approximate not in shown["gradcam"]
    at.switch_page("views/explain.py").run()
    _select(at, "Method").set_value("scorecam").run()
    assert next(t for t in at.main.toggle if t.label.startswith("Quick")).value is True
    assert approximate in " ".join(c.value for c in at.main.caption)


def test_quick_score_cam_perturbs_only_the_most_varied_channels(app):
    """Score-CAM runs the model once per channel: the Quick switch (perturbation methods at a
    layer with more than 64 channels only) asks for 64, says so under the maps, and gives the
    engine's approximate map; switched off, the exact map comes back."""
    assert not any(t.label.startswith("Quick") for t in app.main.toggle)  # Grad-CAM: none
    _select(app, "Method").set_value("scorecam").run()
    quick = next(t for t in app.main.toggle if t.label.startswith("Quick"))
    assert quick.label == "Quick: 64 of 128 channels" and quick.value is False
    assert not [c.value for c in app.main.caption if "approximate" in c.value]
    quick.set_value(True).run()
    assert not app.exception
    notes = " ".join(c.value for c in app.main.caption)
    assert "approximate: only the 64 channels of highest variance were perturbed." in notes
    assert next(t for t in app.main.toggle if t.label.startswith("Quick")).value is True
    next(t for t in app.main.toggle if t.label.startswith("Quick")).set_value(False).run()
    assert "approximate" not in " ".join(c.value for c in app.main.caption)
    _select(app, "Method").set_value("gradcam").run()
    assert not any(t.label.startswith("Quick") for t in app.main.toggle)
