"""Layer lists resolved in one place (``explain.layers.resolve_layers``): module paths, ``default``,
``all`` and patterns, the same errors through every caller (``compute_cams``, ``evaluate``, the
randomisation check, ``collect_activations`` and the command lines), and the top classes of a
prediction (``explain.top_classes``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from embeddings import collect_activations
from explain import ExplainError, LayerError, compute_cams, load_model, top_classes
from explain.cli.options import layer_names
from explain.evaluation import cascading_randomisation, evaluate
from explain.layers import resolve_layers

SIZE = 16


class Named(nn.Module):
    """Blocks named like the keywords and a pattern; a vector layer; layers out of depth order."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.late = nn.Conv2d(6, 6, 3, padding=1)  # defined first, runs last
        self.blocks = nn.ModuleDict(
            {"all": nn.Conv2d(3, 4, 3, padding=1), "b[1]": nn.Conv2d(4, 6, 3, padding=1)}
        )
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.blocks["b[1]"](torch.relu(self.blocks["all"](x))))
        return self.fc(torch.relu(self.late(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def handle():
    size = {"input_size": (SIZE, SIZE)}
    return load_model(Named(), labels=list("abc"), device="cpu", preprocess=size)


@pytest.fixture(scope="module")
def x(handle):
    return torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def names(infos):
    return [info.name for info in infos]


def test_entries_keywords_and_patterns(handle):
    maps = ["late", "blocks.all", "blocks.b[1]"]  # model (named_modules) order
    assert names(handle.map_layers) == maps
    assert handle.default_layer == "late"
    assert names(resolve_layers(handle)) == names(resolve_layers(handle, "default")) == ["late"]
    assert names(resolve_layers(handle, "all")) == maps
    assert names(resolve_layers(handle, ["blocks.*", "late", "blocks.all"])) == [
        "blocks.all",
        "blocks.b[1]",
        "late",
    ]  # given order, repeats dropped
    assert names(resolve_layers(handle, ["late", "blocks.*"], depth_order=True)) == [
        "blocks.all",
        "blocks.b[1]",
        "late",
    ]
    # A module path always means that module, even one that reads as a pattern.
    assert names(resolve_layers(handle, "blocks.b[1]")) == ["blocks.b[1]"]
    assert names(resolve_layers(handle, "blocks.b?1?")) == ["blocks.b[1]"]  # a real pattern
    # maps_only=False: vectors too (embeddings), in 'all' and patterns as well.
    assert names(resolve_layers(handle, "fc", maps_only=False)) == ["fc"]
    assert names(resolve_layers(handle, "f*", maps_only=False)) == ["fc"]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "No layer was given"),
        (["blocks.al"], "has no layer 'blocks.al'"),
        (["fc"], "not a spatial map"),
        (["layer4.*"], "matches 'layer4.*'"),
    ],
)
def test_every_caller_gives_the_same_error(handle, x, layers, message):
    calls = {
        "resolve_layers": lambda: resolve_layers(handle, layers),
        "compute_cams": lambda: compute_cams(handle, x, layers),
        "evaluate": lambda: evaluate(handle, "unused: fails first", "gradcam", layers),
        "randomisation": lambda: cascading_randomisation(handle, x, ["gradcam"], layers),
        "command line": lambda: layer_names(handle, ",".join(layers)),
    }
    errors = {}
    for caller, call in calls.items():
        with pytest.raises(LayerError, match=re.escape(message)) as e:
            call()
        errors[caller] = str(e.value)
    assert len(set(errors.values())) == 1, errors


def test_embeddings_take_any_layer_in_depth_order(handle, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    acts = collect_activations(handle, tmp_path, ["fc", "late", "blocks.*"], cache_dir=False)
    assert acts.layers == ["blocks.all", "blocks.b[1]", "late", "fc"]  # forward order
    with torch.no_grad():
        logits = handle.model(handle.preprocess(acts.paths))
    np.testing.assert_allclose(acts.features["fc"], logits.numpy(), atol=1e-5)
    with pytest.raises(LayerError, match="No layer was given"):
        collect_activations(handle, tmp_path, [], cache_dir=False)


def test_pattern_layers_give_the_same_maps_as_their_names(handle, x):
    by_pattern = compute_cams(handle, x, "blocks.*")
    by_name = compute_cams(handle, x, ["blocks.all", "blocks.b[1]"])
    assert list(by_pattern.maps) == ["blocks.all", "blocks.b[1]"]
    for layer in by_name.maps:
        np.testing.assert_array_equal(by_pattern.maps[layer], by_name.maps[layer])


def test_top_classes_of_one_prediction_and_of_a_batch():
    probs = np.array([0.1, 0.3, 0.05, 0.3, 0.25])
    top = top_classes(probs, 3, ["a", "b", "c", "d", "e"])
    assert top.indices.tolist() == [1, 3, 4]  # equal probabilities: the lower index first
    assert top.labels == ["b", "d", "e"]
    np.testing.assert_array_equal(top.probabilities, [0.3, 0.3, 0.25])
    batch = top_classes(np.stack([probs, probs[::-1]]), 2)
    assert batch.indices.tolist() == [[1, 3], [1, 3]] and batch.labels == [["1", "3"], ["1", "3"]]
    np.testing.assert_array_equal(batch.probabilities, [[0.3, 0.3], [0.3, 0.3]])
    assert top_classes(probs, 50).indices.tolist() == [1, 3, 4, 0, 2]  # k > classes: all
    for bad in ({"k": 0}, {"labels": ["a"]}):
        with pytest.raises(ExplainError):
            top_classes(probs, **{"k": 2, **bad})
    with pytest.raises(ExplainError, match="shape"):
        top_classes(np.zeros((2, 2, 2)))


def test_top_classes_agree_with_the_model(handle, x):
    probs = handle.predict(x)
    top = top_classes(probs, 2, handle.labels)
    for i in range(len(x)):
        order = sorted(range(3), key=lambda c: (-probs[i, c], c))[:2]
        assert top.indices[i].tolist() == order
        assert top.labels[i] == [handle.labels[c] for c in order]
