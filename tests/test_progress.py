"""One progress type (``progress(done, total, message)``) through every long library call, and
its adapters (``within``, the tqdm bar, ``collect_activations(progress=True)``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embeddings import collect_activations, layer_metrics, project_layers
from explain.progress import BAR_MESSAGE_CHARS, notify, tqdm_progress, within

SIZE = 16  # the input size of the small_cnn fixture (conftest.tiny_cnn)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Seven random PNG files."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
    return sorted(folder.glob("*.png"))


def test_within_maps_a_step_onto_its_share_of_the_whole():
    calls = []
    part = within(lambda *a: calls.append(a), 0.25, 0.5)
    part(0, 4, "start")
    part(2, 4, "half")
    part(4, 4)
    assert calls == [(250, 1000, "start"), (375, 1000, "half"), (500, 1000, "")]
    notify(None, 1, 2)  # no callback: nothing to call


def test_tqdm_progress_shows_done_total_and_message(capsys):
    message = "a message longer than the bar shows: " + "x" * 60
    with tqdm_progress("work", disable=False) as report:
        report(0, 4, "")
        report(3, 4, message)
    err = capsys.readouterr().err
    assert "work" in err and "3/4" in err and "75%" in err
    assert message[:BAR_MESSAGE_CHARS] in err and message not in err  # one line, cut


def test_collect_activations_reports_images_in_every_form(small_cnn, images, capsys):
    three = []
    kwargs = {"layers": ["0", "2"], "batch_size": 3, "cache_dir": False}
    acts = collect_activations(small_cnn, images, progress=lambda *a: three.append(a), **kwargs)
    assert [(d, t) for d, t, _ in three] == [(3, 7), (6, 7), (7, 7), (7, 7)]
    assert all(m == "activations" for *_, m in three)
    # progress=True: a tqdm bar; the features do not depend on how progress is shown.
    shown = collect_activations(small_cnn, images, progress=True, **kwargs)
    for layer in ("0", "2"):
        np.testing.assert_array_equal(acts.features[layer], shown.features[layer])


def test_projection_and_metrics_report_layers():
    rng = np.random.default_rng(1)
    features = {"a": rng.normal(size=(12, 5)), "b": rng.normal(size=(12, 3))}
    three = []
    project_layers(features, "pca", progress=lambda *a: three.append(a))
    assert three == [(1, 2, "pca projection: a"), (2, 2, "pca projection: b")]
    calls = []
    labels = np.repeat([0, 1, 2], 4)
    layer_metrics(features, labels, metrics=["silhouette"], progress=lambda *a: calls.append(a))
    assert calls == [(1, 2, "layer metrics: a"), (2, 2, "layer metrics: b")]
