"""The built-in models through the public loader: offline, accurate, and one of them biased."""

from __future__ import annotations

import numpy as np
import pytest

from explain import ModelLoadError, load_model
from explain.builtin.shapes import CLASSES, make_dataset

TEST_SEED = 31337  # not used in training


@pytest.fixture(scope="module")
def fresh():
    return make_dataset(600, seed=TEST_SEED)


def _accuracy(handle, images, labels) -> float:
    return float((handle.predict(handle.preprocess(list(images))).argmax(1) == labels).mean())


def test_clean_model_through_load_model(fresh):
    handle = load_model("builtin:shapes", device="cpu")
    assert handle.source == "builtin" and handle.labels == list(CLASSES)
    assert handle.default_layer == "layer3"
    info = handle.layer("layer3")
    assert (info.kind, info.grid, info.channels) == ("spatial", (8, 8), 128)
    assert handle.input_size == (64, 64)
    assert _accuracy(handle, fresh.images, fresh.labels) >= 0.95


def test_biased_model_collapses_without_its_marker(fresh):
    clean = load_model("builtin:shapes", device="cpu")
    biased = load_model("builtin:shapes-biased", device="cpu")
    no_marker = _accuracy(biased, fresh.images, fresh.labels)
    assert no_marker < 0.5 and no_marker < _accuracy(clean, fresh.images, fresh.labels) - 0.4
    marked = make_dataset(300, seed=TEST_SEED, marker="class")
    assert _accuracy(biased, marked.images, marked.labels) >= 0.95
    other = make_dataset(300, seed=TEST_SEED, marker="other")
    follows = biased.predict(biased.preprocess(list(other.images))).argmax(1)
    assert float((follows == np.asarray(other.marker_labels)).mean()) >= 0.8


def test_builtin_random_weights_and_unknown_name(fresh):
    random = load_model("builtin:shapes", weights=None, device="cpu")
    assert _accuracy(random, fresh.images[:120], fresh.labels[:120]) < 0.5
    with pytest.raises(ModelLoadError, match="builtin:shapes-biased"):
        load_model("builtin:shape")
