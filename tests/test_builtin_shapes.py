"""Built-in shapes data set, ShapesNet and the committed demo models (offline, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.builtin import BUILTIN_MODELS, load_builtin, read_record, to_tensor
from explain.builtin.net import ShapesNet
from explain.builtin.shapes import (
    CLASSES,
    MARKER_COLOURS,
    NUM_CLASSES,
    SIZE_RANGE,
    ShapeSample,
    make_dataset,
    make_sample,
    marker_box_for,
)

# Neither the training seed (0) nor the training script's test seed (1000).
TEST_SEED = 4242
N_TEST = 600


# --------------------------------------------------------------------------- data set


def _same(a: ShapeSample, b: ShapeSample) -> bool:
    return (
        np.array_equal(a.image, b.image)
        and np.array_equal(a.mask, b.mask)
        and a.label == b.label
        and a.marker_box == b.marker_box
        and a.marker_label == b.marker_label
    )


def test_classes_and_marker_colours():
    assert CLASSES[:6] == ("circle", "square", "triangle", "star", "cross", "hexagon")
    assert len(MARKER_COLOURS) == NUM_CLASSES
    assert len(set(MARKER_COLOURS)) == NUM_CLASSES  # one distinct colour per class
    for c in MARKER_COLOURS:
        assert max(c) == 255 and min(c) == 0  # saturated


def test_sample_types_and_shapes():
    s = make_sample(3, seed=1, size=64, marker="class")
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (64, 64) and s.mask.dtype == bool
    assert isinstance(s.label, int) and s.label == 3
    s96 = make_sample(0, seed=1, size=96)
    assert s96.image.shape == (96, 96, 3) and s96.mask.shape == (96, 96)


def test_determinism_and_random_access():
    a = make_sample(17, seed=5, marker="random")
    b = make_sample(17, seed=5, marker="random")
    assert _same(a, b)
    # Another seed or index gives a different image.
    assert not np.array_equal(a.image, make_sample(17, seed=6, marker="random").image)
    assert not np.array_equal(a.mask, make_sample(17, seed=6, marker="random").mask)
    assert not np.array_equal(a.image, make_sample(23, seed=5, marker="random").image)
    # A slice of a data set is the same as generating its samples one by one.
    data = make_dataset(6, seed=5, marker="random", start=14)
    for k in range(6):
        s = make_sample(14 + k, seed=5, marker="random")
        assert np.array_equal(data.images[k], s.image)
        assert np.array_equal(data.masks[k], s.mask)
        assert data.labels[k] == s.label and data.marker_boxes[k] == s.marker_box


def test_datasets_with_different_seeds_are_independent():
    d0 = make_dataset(60, seed=0)
    d1 = make_dataset(60, seed=1)
    assert not any(np.array_equal(x, y) for x, y in zip(d0.images, d1.images, strict=True))
    # The object's area is unrelated between the two seeds.
    a0, a1 = d0.masks.sum((1, 2)), d1.masks.sum((1, 2))
    assert abs(np.corrcoef(a0, a1)[0, 1]) < 0.6


@pytest.mark.parametrize("label", range(NUM_CLASSES))
def test_mask_is_exactly_the_object(label):
    size = 64
    for index in range(label, label + 10 * NUM_CLASSES, NUM_CLASSES):
        clean = make_sample(index, seed=11, size=size, noise=False)
        noisy = make_sample(index, seed=11, size=size)
        assert clean.label == label
        mask = clean.mask
        assert mask.any()
        # Without pixel noise every mask pixel has the object's colour ...
        assert np.all(clean.image[mask] == np.array(clean.colour, dtype=np.uint8))
        # ... the noisy rendering has the same mask and differs only by noise.
        assert np.array_equal(noisy.mask, mask)
        diff = np.abs(noisy.image.astype(int) - clean.image.astype(int))
        assert diff.mean() < 15
        # The mask's extent matches the size parameter (circumscribed circle 30-60 % of side).
        ys, xs = np.nonzero(mask)
        extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert 0.6 * SIZE_RANGE[0] * size <= extent <= SIZE_RANGE[1] * size + 2
        # The mask is one solid blob: no holes against its bounding box border.
        assert mask.sum() >= 0.25 * extent**2


def test_mask_areas_match_the_geometry_of_each_class():
    # Area of each shape with circumradius r, as a multiple of r^2.
    area_coeff = {
        "circle": np.pi,
        "square": 2.0,
        "triangle": 3 * np.sqrt(3) / 4,
        "star": 5 * 0.45 * np.sin(np.pi / 5),  # inner radius 0.45 r
        "cross": 2.0,  # plus sign with arms a third as wide as they reach
        "hexagon": 3 * np.sqrt(3) / 2,
    }
    lo, hi = SIZE_RANGE
    mean_r2 = (hi**3 - lo**3) / (3 * (hi - lo)) / 4  # E[r^2] / side^2 for a uniform diameter
    data = make_dataset(600, seed=3, noise=False)
    frac = data.masks.sum((1, 2)) / data.masks[0].size
    for k, name in enumerate(CLASSES[:6]):
        ratio = frac[data.labels == k].mean() / (area_coeff[name] * mean_r2)
        assert 0.85 <= ratio <= 1.25, f"{name}: mask area {ratio:.2f}x the expected area"


def test_label_balance():
    assert np.bincount(make_dataset(600, seed=2).labels, minlength=6).tolist() == [100] * 6
    counts = np.bincount(make_dataset(125, seed=2, start=7).labels, minlength=6)
    assert counts.max() - counts.min() <= 1
    assert make_dataset(10).labels.dtype == np.int64


def test_marker_box_in_corner_and_clear_of_object():
    size = 64
    x0, y0, x1, y1 = marker_box_for(size)
    assert (x1 - x0, y1 - y0) == (6, 6)
    assert 1 <= size - x1 <= 2 and 1 <= size - y1 <= 2  # bottom-right, inside a 1-2 px margin
    for marker in ("none", "class"):
        data = make_dataset(120, seed=9, marker=marker)
        # The object never enters the marker area (nor its border), with or without a marker.
        assert not data.masks[:, y0 - 1 :, x0 - 1 :].any()
        for box in data.marker_boxes:
            assert box == ((x0, y0, x1, y1) if marker == "class" else None)


def test_marker_modes():
    x0, y0, x1, y1 = marker_box_for(64)
    cls = make_dataset(60, seed=4, marker="class")
    for img, label in zip(cls.images, cls.labels, strict=True):
        assert np.all(img[y0:y1, x0:x1] == np.array(MARKER_COLOURS[label], dtype=np.uint8))
    assert np.array_equal(cls.marker_labels, cls.labels)

    none = make_dataset(60, seed=4, marker="none")
    assert np.all(none.marker_labels == -1)
    for img in none.images:
        patch = img[y0:y1, x0:x1].reshape(-1, 3)
        # No solid patch there: the noisy background varies, and matches no marker colour.
        assert len(np.unique(patch, axis=0)) > 1
        assert not any(np.all(patch == np.array(c)) for c in MARKER_COLOURS)
    # Outside the marker box the images are identical: the marker is the only difference.
    outside = np.ones((64, 64), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(cls.images[:, outside], none.images[:, outside])
    assert np.array_equal(cls.masks, none.masks)

    rnd = make_dataset(600, seed=4, marker="random")
    assert set(np.unique(rnd.marker_labels)) == set(range(NUM_CLASSES))
    assert (rnd.marker_labels == rnd.labels).mean() < 0.3  # chance is 1/6
    for img, m in zip(rnd.images[:30], rnd.marker_labels[:30], strict=True):
        assert np.all(img[y0:y1, x0:x1] == np.array(MARKER_COLOURS[m], dtype=np.uint8))

    other = make_dataset(120, seed=4, marker="other")
    assert np.all(other.marker_labels != other.labels)
    assert np.all(other.marker_labels >= 0)

    forced = make_dataset(30, seed=4, marker="class", marker_class=2)
    assert np.all(forced.marker_labels == 2)
    assert np.all(forced.images[:, y0:y1, x0:x1] == np.array(MARKER_COLOURS[2], dtype=np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"marker": "corner"}, "marker must be one of"),
        ({"marker": "class", "marker_class": 6}, "marker_class"),
        ({"marker": "class", "marker_class": -1}, "marker_class"),
        ({"marker": "none", "marker_class": 1}, "marker_class needs a marker"),
        ({"size": 8}, "size must be"),
        ({"size": 64.0}, "size must be"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sample(0, **kwargs)
    with pytest.raises(ValueError, match=match):
        make_dataset(2, **kwargs)


def test_index_and_count_validation():
    with pytest.raises(ValueError, match="index"):
        make_sample(-1)
    with pytest.raises(ValueError, match="n must be"):
        make_dataset(-3)
    with pytest.raises(ValueError, match="start must be"):
        make_dataset(2, start=-1)
    assert len(make_dataset(0)) == 0


# --------------------------------------------------------------------------- network


def test_shapesnet_layout():
    model = ShapesNet(num_classes=6, width=32).eval()
    names = [n for n, _ in model.named_children()]
    assert names == ["stem", "layer1", "layer2", "layer3", "pool", "fc"]
    assert isinstance(model.pool, torch.nn.AdaptiveAvgPool2d)
    assert isinstance(model.fc, torch.nn.Linear)
    assert "layer3.1" in dict(model.named_modules())
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 <= n_params <= 1_000_000

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.layer3(model.layer2(model.layer1(model.stem(x))))
        logits = model(x)
        # The head is exactly GAP + linear: CAM = fc weights over layer3 maps, averaged.
        cam_logits = model.fc(feats.mean((2, 3)))
    assert feats.shape == (2, 128, 8, 8)
    assert logits.shape == (2, 6)
    torch.testing.assert_close(logits, cam_logits)


# --------------------------------------------------------------------------- committed models


def test_load_builtin_unknown_name():
    with pytest.raises(ValueError, match="shapes-biased"):
        load_builtin("imagenet")


@pytest.fixture(scope="module")
def models():
    return {name: load_builtin(name) for name in ("shapes", "shapes-biased")}


@pytest.fixture(scope="module")
def test_sets():
    return {
        mode: make_dataset(N_TEST, seed=TEST_SEED, marker=mode)
        for mode in ("none", "class", "random", "other")
    }


def _predict(model: torch.nn.Module, images: np.ndarray, meta: dict) -> np.ndarray:
    with torch.no_grad():
        return model(to_tensor(images, meta)).argmax(1).numpy()


def test_load_builtin_contents(models):
    assert set(BUILTIN_MODELS) >= {"shapes", "shapes-biased"}
    for name, (model, labels, meta) in models.items():
        assert not model.training
        assert labels == list(CLASSES)
        assert meta["input_size"] == (64, 64)
        assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
        record = read_record(name)
        assert record["arch"]["name"] == "ShapesNet"
        assert record["test"]["none"]["n"] > 0 and "seed" in record["test"]["none"]
        assert record["seed"] != TEST_SEED and record["test"]["none"]["seed"] != TEST_SEED
        assert isinstance(BUILTIN_MODELS[name], str) and BUILTIN_MODELS[name]


def test_to_tensor_normalisation():
    img = np.full((64, 64, 3), 255, dtype=np.uint8)
    meta = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    x = to_tensor(img, meta)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 2.0))
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(img.astype(np.float32), meta)


def test_clean_model_accuracy(models, test_sets):
    model, _, meta = models["shapes"]
    for mode in ("none", "random", "class"):
        data = test_sets[mode]
        acc = (_predict(model, data.images, meta) == data.labels).mean()
        assert acc >= 0.95, f"clean model, marker={mode}: accuracy {acc:.3f}"


def test_biased_model_follows_the_marker(models, test_sets):
    clean, _, meta_c = models["shapes"]
    biased, _, meta_b = models["shapes-biased"]
    none = test_sets["none"]
    acc_clean = (_predict(clean, none.images, meta_c) == none.labels).mean()
    acc_none = (_predict(biased, none.images, meta_b) == none.labels).mean()
    assert acc_none < 0.5 and acc_none < acc_clean - 0.4, (acc_none, acc_clean)

    cls = test_sets["class"]
    acc_class = (_predict(biased, cls.images, meta_b) == cls.labels).mean()
    assert acc_class >= 0.95

    other = test_sets["other"]
    pred = _predict(biased, other.images, meta_b)
    assert (pred == other.marker_labels).mean() >= 0.8
    assert (pred == other.labels).mean() < 0.2

    # One fixed marker class drags the predictions of all shapes towards it.
    forced = make_dataset(120, seed=TEST_SEED, marker="class", marker_class=4)
    assert (_predict(biased, forced.images, meta_b) == 4).mean() >= 0.8


def test_class_activation_maps_show_the_shortcut(models):
    # CAM (Zhou et al.) = fc weights of the true class over layer3 maps; 8x8 cells of 8x8 px.
    data = make_dataset(120, seed=TEST_SEED, marker="class")
    shares = {}
    for name, (model, _, meta) in models.items():
        with torch.no_grad():
            x = to_tensor(data.images, meta)
            feats = model.layer3(model.layer2(model.layer1(model.stem(x))))
            w = model.fc.weight[torch.from_numpy(data.labels)]
            cam = torch.relu(torch.einsum("nc,nchw->nhw", w, feats)).numpy()
        total = cam.sum((1, 2)).clip(1e-9)
        object_cells = data.masks.reshape(-1, 8, 8, 8, 8).mean((2, 4)) > 0.25
        shares[name] = {
            "object": float(((cam * object_cells).sum((1, 2)) / total).mean()),
            "marker": float((cam[:, 7, 7] / total).mean()),  # the cell holding the marker
        }
    clean, biased = shares["shapes"], shares["shapes-biased"]
    assert clean["object"] > 0.3 and clean["marker"] < 0.02, shares
    assert biased["marker"] > 5 * clean["marker"] and biased["marker"] > 0.08, shares
    assert biased["object"] < clean["object"] / 2, shares
