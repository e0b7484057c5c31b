"""The dashboard's pieces without a page: links that may name only safe models, the store of
results, upload messages and kept uploads, and the Evaluate tables' units and best values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import scores, sources
from dashboard.results import ResultStore
from explain import DEFAULT, ExplainError


def test_links_name_only_builtin_torchvision_and_hub_models():
    choice = sources.ModelChoice.from_url({"model": "torchvision:resnet50", "weights": "random"})
    assert choice == sources.ModelChoice("torchvision:resnet50", None)
    assert choice.url_params() == {"model": "torchvision:resnet50", "weights": "random"}
    hub = sources.ModelChoice.from_url({"model": "hf:microsoft/resnet-50"})
    assert hub == sources.ModelChoice("hf:microsoft/resnet-50", DEFAULT)
    assert not hub.trust_remote_code  # never from a link
    for refused in (
        "explain.architectures:cifar_resnet20",  # Python code
        "hf:/etc/passwd",  # a file on the server
        "hf:../secrets",
        "torchvision:resnet50/../x",
        "",
    ):
        assert sources.ModelChoice.from_url({"model": refused}) is None, refused
    uploaded = sources.ModelChoice("torchvision:resnet18", "/tmp/x/w.pth", False, None, "w.pth")
    assert uploaded.url_params() == {}  # a file on this server is never put in a link
    assert uploaded.title == "torchvision:resnet18 + w.pth"


def test_default_model_and_samples_come_from_one_place():
    assert sources.default_model_spec() == sources.DEFAULT_MODEL_SPEC
    assert sources.default_choice() == sources.ModelChoice(sources.DEFAULT_MODEL_SPEC)
    assert sources.default_sample_set() in sources.SAMPLE_SETS
    shapes = sources.load_images_source("shapes")
    assert [p.label for p in shapes] == ["circle", "square", "triangle", "star", "cross", "hexagon"]
    assert len({p.key for p in shapes}) == 6 and sources.load_images_source("nope") == []


def test_upload_messages_name_the_file_and_uploads_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "UPLOADS", tmp_path)
    with pytest.raises(ExplainError, match=r"^holiday.jpg is empty \(0 bytes\)"):
        sources.read_upload("holiday.jpg", b"")
    with pytest.raises(ExplainError, match=r"^notes.txt is not an image file"):
        sources.read_upload("notes.txt", b"hello")
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(buf, format="PNG")
    picture = sources.read_upload("grey.png", buf.getvalue())
    assert picture.name == "grey.png" and picture.pixels.shape == (20, 30, 3)
    set_id = sources.remember_uploads([("grey.png", buf.getvalue())])
    again = sources.load_images_source(f"upload-{set_id}")
    assert [p.name for p in again] == ["grey.png"] and again[0].key == picture.key
    assert sources.recall_uploads("../../etc/passwd") == []
    path = sources.save_upload(b"weights", "my model (v2).pth")
    assert path.endswith("/my_model_v2_.pth")


def test_result_store_serves_repeats_and_drops_the_oldest_by_size():
    store = ResultStore(max_bytes=3 * 800)
    calls = []

    def make(i):
        calls.append(i)
        return np.zeros(100, np.float64)  # 800 bytes

    for i in range(4):
        store.get(i, lambda i=i: make(i))
    assert calls == [0, 1, 2, 3] and len(store) == 3 and 0 not in store
    store.get(1, lambda: make(99))  # served: no computation, and now the most recent
    store.get(4, lambda: make(4))
    assert calls == [0, 1, 2, 3, 4] and 1 in store and 2 not in store


def test_leaderboard_units_names_and_best_values():
    summary = pd.DataFrame(
        {
            "method": ["gradcam", "gradcam", "random", "random"],
            "layer": ["layer3", "layer3", "", ""],
            "metric": ["average_drop", "pointing_game", "average_drop", "pointing_game"],
            "mean": [12.5, 0.9, 40.0, 0.25],
        }
    )
    board = scores.scaled(summary, "mean")
    assert list(board.index) == ["Grad-CAM at layer3", "Random map (baseline)"]
    assert board.loc["Grad-CAM at layer3", "pointing_game"] == pytest.approx(90.0)
    assert board.loc["Random map (baseline)", "average_drop"] == pytest.approx(40.0)
    assert scores.column("average_drop") == "Average Drop (%) ↓"
    assert scores.column("pointing_game") == "Pointing game (% of images) ↑"
    assert scores.column("deletion") == "Deletion AUC (0–1) ↓"
    # Lower is better for Average Drop, higher for the pointing game.
    assert scores.best_rows(board) == {
        "average_drop": ["Grad-CAM at layer3"],
        "pointing_game": ["Grad-CAM at layer3"],
    }
    html = scores.styled(board).to_html()
    assert "12.5 ★" in html and "90.0 ★" in html and "40.0 ★" not in html
    assert scores.BEST.split(";")[0] in html
