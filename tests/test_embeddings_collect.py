"""Activation collection: exact pooled features on a hand-made model, one pass per batch, hooks
removed, the disk cache (hit without running the model, resume after an interruption), bad
images, and the real pretrained CIFAR ResNet-20 (class separation emerges with depth)."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from embeddings import DatasetError, collect_activations, suggest_layers
from embeddings.collect import match_classes
from explain import LayerError, Preprocess, load_model

SIZE = 16


class TinyNet(nn.Module):
    """A spatial map (NCHW), a channels-last map (NHWC), tokens with a class token, a vector."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 6, 4, stride=4)
        self.norm = nn.LayerNorm(6)
        self.cls = nn.Parameter(torch.randn(1, 1, 6))
        self.mix = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        maps = self.down(torch.relu(self.conv(x)))  # (N, 6, 4, 4)
        nhwc = self.norm(maps.permute(0, 2, 3, 1))  # (N, 4, 4, 6)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), nhwc.flatten(1, 2)], dim=1)
        tokens = self.mix(tokens)  # (N, 1 + 16, 6)
        return self.head(tokens[:, 0])


@pytest.fixture
def tiny_handle():
    torch.manual_seed(0)
    return load_model(
        TinyNet(),
        labels=["red", "green", "blue"],
        device="cpu",
        preprocess=Preprocess(input_size=(SIZE, SIZE)),
    )


def _image_folder(root, per_class=4, seed=0):
    rng = np.random.default_rng(seed)
    for label in ("red", "green", "blue"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _manual(handle, paths):
    """Every layer's output by a hand-written forward, pooled by hand."""
    model = handle.model
    x = handle.preprocess([str(p) for p in paths])
    with torch.no_grad():
        conv = model.conv(x)
        maps = model.down(torch.relu(conv))
        nhwc = model.norm(maps.permute(0, 2, 3, 1))
        tokens = model.mix(torch.cat([model.cls.expand(len(x), -1, -1), nhwc.flatten(1, 2)], 1))
        logits = model.head(tokens[:, 0])
    return {
        "conv": conv.mean(dim=(2, 3)),
        "conv_max": conv.amax(dim=(2, 3)),
        "norm": nhwc.mean(dim=(1, 2)),
        "mix": tokens[:, 0],
        "mix_avg": tokens[:, 1:].mean(1),
        "head": logits,
        "probs": torch.softmax(logits, 1),
    }


def test_pooled_features_are_exact(tiny_handle, tmp_path):
    root = _image_folder(tmp_path / "data")
    assert tiny_handle.layer("norm").layout == "nhwc"
    assert tiny_handle.layer("mix").kind == "tokens" and tiny_handle.layer("mix").prefix_tokens == 1
    acts = collect_activations(
        tiny_handle, root, ["head", "mix", "conv", "norm"], batch_size=5, cache_dir=False
    )
    assert acts.layers == ["conv", "norm", "mix", "head"]  # depth order, not request order
    assert acts.pooling == {"conv": "avg", "norm": "avg", "mix": "cls", "head": "flatten"}
    expected = _manual(tiny_handle, acts.paths)
    for layer in ("conv", "norm", "mix", "head"):
        assert acts.features[layer].dtype == np.float32
        np.testing.assert_allclose(acts.features[layer], expected[layer].numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.probabilities, expected["probs"].numpy(), atol=1e-6)
    assert np.array_equal(acts.predictions, expected["probs"].numpy().argmax(1))
    assert acts.label_names == ["blue", "green", "red"] and acts.labels.tolist()[:5] == [0] * 4 + [
        1
    ]
    # Dataset classes map to the model's classes by name (different order).
    assert acts.targets.tolist()[:5] == [2, 2, 2, 2, 1]
    assert acts.accuracy == pytest.approx(float((acts.predictions == acts.targets).mean()))
    other = collect_activations(
        tiny_handle, root, ["conv", "mix"], cache_dir=False, pooling={"conv": "max", "mix": "avg"}
    )
    np.testing.assert_allclose(other.features["conv"], expected["conv_max"].numpy(), atol=1e-5)
    np.testing.assert_allclose(other.features["mix"], expected["mix_avg"].numpy(), atol=1e-5)


def test_one_forward_pass_per_batch_and_hooks_removed(tiny_handle, tmp_path):
    root = _image_folder(tmp_path / "data", per_class=5)  # 15 images
    _ = tiny_handle.layers  # the handle's own one-off dry run, before counting
    calls = []
    counter = tiny_handle.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        collect_activations(
            tiny_handle, root, ["conv", "norm", "mix", "head"], batch_size=4, cache_dir=False
        )
    finally:
        counter.remove()
    assert len(calls) == math.ceil(15 / 4)
    assert all(not m._forward_hooks for m in tiny_handle.model.modules())
    # ... also when a layer fails half-way.
    with pytest.raises(LayerError, match="no class token"):
        collect_activations(tiny_handle, root, ["conv"], pooling="cls", cache_dir=False)
    assert all(not m._forward_hooks for m in tiny_handle.model.modules())


def test_layer_errors(tiny_handle, tmp_path):
    root = _image_folder(tmp_path / "data", per_class=1)
    with pytest.raises(LayerError, match="did you mean 'conv'"):
        collect_activations(tiny_handle, root, ["convv"], cache_dir=False)
    with pytest.raises(LayerError, match="never called"):
        collect_activations(tiny_handle, root, ["unused"], cache_dir=False)
    with pytest.raises(LayerError, match="Unknown pooling"):
        collect_activations(tiny_handle, root, ["conv"], pooling="median", cache_dir=False)


def test_cache_hit_does_not_run_the_model(tiny_handle, tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "data")
    layers = ["conv", "mix", "head"]
    first = collect_activations(tiny_handle, root, layers, cache_dir=tmp_path / "cache")
    assert not first.from_cache

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model ran on a cache hit")

    monkeypatch.setattr(tiny_handle.model, "forward", refuse)
    monkeypatch.setattr("explain.datasets.base.load_image", refuse)  # no image is decoded either
    hit = collect_activations(tiny_handle, root, layers, cache_dir=tmp_path / "cache")
    assert hit.from_cache and hit.key == first.key
    for layer in layers:
        assert np.array_equal(hit.features[layer], first.features[layer])
    assert np.array_equal(hit.probabilities, first.probabilities)
    assert hit.paths == first.paths and np.array_equal(hit.labels, first.labels)
    # What the result depends on changes the key: layers, pooling, a file's content.
    with pytest.raises(AssertionError, match="the model ran"):
        collect_activations(tiny_handle, root, ["conv"], cache_dir=tmp_path / "cache")
    with pytest.raises(AssertionError, match="the model ran"):
        collect_activations(tiny_handle, root, layers, pooling="max", cache_dir=tmp_path / "cache")
    Image.new("RGB", (SIZE + 1, SIZE), (9, 9, 9)).save(root / "red" / "0.png")
    with pytest.raises(AssertionError, match="the model ran"):
        collect_activations(tiny_handle, root, layers, cache_dir=tmp_path / "cache")


def test_interrupted_run_resumes_from_stored_batches(tiny_handle, tmp_path):
    root = _image_folder(tmp_path / "data", per_class=5)  # 15 images, 5 batches of 3
    cache = tmp_path / "cache"

    def interrupt(done, _total, _message):
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_activations(
            tiny_handle, root, ["conv", "mix"], batch_size=3, cache_dir=cache, progress=interrupt
        )
    _ = tiny_handle.layers
    calls = []
    counter = tiny_handle.model.register_forward_pre_hook(
        lambda _m, inputs: calls.append(len(inputs[0]))
    )
    try:
        resumed = collect_activations(
            tiny_handle, root, ["conv", "mix"], batch_size=4, cache_dir=cache
        )
    finally:
        counter.remove()
    assert sum(calls) == 15 - 6  # only the images not stored yet ran
    fresh = collect_activations(tiny_handle, root, ["conv", "mix"], cache_dir=False)
    for layer in ("conv", "mix"):
        np.testing.assert_allclose(resumed.features[layer], fresh.features[layer], atol=1e-6)
    assert resumed.paths == fresh.paths


def test_mixed_modes_sizes_and_broken_files(tiny_handle, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (40, 16), dtype=np.uint8), "L").save(root / "gray.png")
    Image.new("RGBA", (24, 16), (10, 200, 10, 128)).save(root / "rgba.png")
    Image.new("P", (18, 18)).save(root / "palette.gif")
    Image.new("CMYK", (32, 32), (0, 50, 100, 0)).save(root / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16)).save(root / "deep.png")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (5, 5, 5)).save(buffer, format="JPEG")
    (root / "truncated.jpg").write_bytes(buffer.getvalue()[:200])
    (root / "fake.png").write_bytes(b"this is text, not a PNG")
    Image.new("RGB", (4, 4)).save(root / "tiny.png")
    (root / "notes.txt").write_text("hello")
    acts = collect_activations(tiny_handle, root, ["conv", "head"], batch_size=4, cache_dir=False)
    assert sorted(acts.names) == [
        "cmyk.jpg",
        "deep.png",
        "gray.png",
        "palette.gif",
        "rgb.png",
        "rgba.png",
    ]
    skipped = dict(acts.skipped)
    assert set(skipped) == {"truncated.jpg", "fake.png", "tiny.png", "notes.txt"}
    assert "not an image file that can be read" in skipped["fake.png"]
    assert "at least 8 pixels" in skipped["tiny.png"]
    assert acts.features["conv"].shape == (6, 4) and np.isfinite(acts.features["conv"]).all()
    assert acts.labels.tolist() == [-1] * 6 and acts.accuracy is None


def test_nothing_readable_is_a_clear_error(tiny_handle, tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    (tmp_path / "b.jpg").write_bytes(b"more garbage")
    with pytest.raises(DatasetError, match=r"None of the 2 images .* could be read"):
        collect_activations(tiny_handle, tmp_path, ["conv"], cache_dir=False)


def test_zip_and_shapes_sources(tiny_handle, tmp_path):
    folder = _image_folder(tmp_path / "data", per_class=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*.png")):
            zf.write(path, f"upload/{path.relative_to(folder).as_posix()}")
    from_zip = collect_activations(tiny_handle, buffer.getvalue(), ["conv"], cache_dir=False)
    from_folder = collect_activations(tiny_handle, folder, ["conv"], cache_dir=False)
    assert from_zip.names == from_folder.names
    np.testing.assert_allclose(from_zip.features["conv"], from_folder.features["conv"], atol=1e-6)
    shapes = collect_activations(
        tiny_handle, "builtin:shapes", ["norm"], max_images=12, cache_dir=False
    )
    assert shapes.features["norm"].shape == (12, 6) and len(shapes.label_names) == 6


def test_match_classes_and_suggested_layers(cifar_handle):
    assert match_classes(
        ["Cat", "sea_lion", "7", "zebra"], ["dog", "cat", "sea lion", "x", "y", "z", "u", "v"]
    ).tolist() == [1, 2, 7, -1]
    assert suggest_layers(cifar_handle) == ["layer1", "layer2", "layer3"]
    resnet = load_model("torchvision:resnet18", weights=None, device="cpu")
    assert suggest_layers(resnet) == ["layer1", "layer2", "layer3", "layer4"]


def test_class_separation_emerges_with_depth(cifar_handle, shared_data, tmp_path):
    """Real pretrained ResNet-20 on 300 real CIFAR-10 test images (30 per class)."""
    from embeddings import knn_accuracy, silhouette

    acts = collect_activations(
        cifar_handle,
        shared_data / "cifar10-test",
        ["layer1", "layer2", "layer3", "linear"],
        max_images=300,
        seed=0,
        cache_dir=tmp_path,
    )
    assert len(acts) == 300 and np.bincount(acts.labels).tolist() == [30] * 10
    assert acts.features["layer3"].shape == (300, 64)
    assert 0.74 <= acts.accuracy <= 0.86
    knn = [knn_accuracy(acts.features[layer], acts.labels) for layer in acts.layers]
    sil = [silhouette(acts.features[layer], acts.labels) for layer in acts.layers]
    # Stage by stage, classes separate more: early stages are near chance (0.1), the last
    # stage is near the model's own accuracy.
    assert knn[0] < knn[1] < knn[2] and sil[0] < sil[1] < sil[2]
    assert knn[0] < 0.4 and knn[2] > 0.7 and sil[0] < 0 < sil[2]
    assert abs(knn[-1] - acts.accuracy) < 0.06
    assert abs(knn[2] - acts.accuracy) < 0.06
    # The model's own predictions agree with handle.predict.
    direct = cifar_handle.predict(cifar_handle.preprocess(acts.paths))
    np.testing.assert_allclose(acts.probabilities, direct, atol=1e-5)
