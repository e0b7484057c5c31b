"""User models written the old way (``x.view``, ``flatten``/``reshape``, functional ReLUs, no
GAP) through every entry point: predict, compute_cams, evaluate, collect_activations; and a
clear error when a model's forward fails on the probe input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CIFAR_TEST, CIFAR_WEIGHTS
from PIL import Image
from user_models import LeNet, OldStyleResNet20, flat_head_net, lenet

from embeddings import collect_activations
from explain import (
    ExplainError,
    InputSizeError,
    ModelLoadError,
    Preprocess,
    compute_cams,
    evaluate,
    load_model,
)
from explain.architectures import CIFAR10_CLASSES, CIFAR10_PREPROCESS
from explain.builtin import to_tensor
from explain.preprocessing import CallablePreprocess

METHODS = ["gradcam", "gradcampp", "layercam", "scorecam", "ablationcam"]


@pytest.fixture(scope="module")
def old_resnet():
    """The real pretrained ResNet-20 in its checkpoint's own code style."""
    return load_model(
        OldStyleResNet20(),
        weights=CIFAR_WEIGHTS,
        labels=CIFAR10_CLASSES,
        preprocess=CIFAR10_PREPROCESS,
        device="cpu",
    )


@pytest.fixture(scope="module")
def lenet_handle():
    return load_model(lenet(seed=0), device="cpu", preprocess=Preprocess(input_size=32))


@pytest.fixture(scope="module")
def cifar_x(cifar_files):
    paths, labels = cifar_files
    picks = [paths[i] for i in range(0, 1000, 100)]  # one image of each class
    return CIFAR10_PREPROCESS(picks), labels[::100]


def test_preprocessing_gives_contiguous_nchw_tensors():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for x in (Preprocess(input_size=32)([image]), to_tensor(image)):
        assert x.shape[1] == 3 and x.is_contiguous()
        x.view(x.shape[0], -1)  # what old-style models do

    def channels_last(picture: Image.Image) -> torch.Tensor:
        arr = torch.from_numpy(np.asarray(picture.resize((8, 8)), dtype=np.float32))
        return arr.permute(2, 0, 1)  # a user's function without .contiguous()

    assert CallablePreprocess(channels_last, (8, 8))([image]).is_contiguous()


def test_old_style_resnet20_predicts_like_the_module_version(old_resnet, cifar_handle, cifar_files):
    paths, labels = cifar_files
    x = old_resnet.preprocess(paths)
    probs = old_resnet.predict(x)
    np.testing.assert_allclose(probs, cifar_handle.predict(x), atol=1e-5)
    assert float((probs.argmax(1) == labels).mean()) >= 0.78
    assert old_resnet.default_layer == "layer3"
    # A channels-last tensor from the caller works too.
    np.testing.assert_allclose(
        old_resnet.predict(x[:4].contiguous(memory_format=torch.channels_last)),
        probs[:4],
        atol=1e-6,
    )


@pytest.mark.parametrize("method", METHODS)
def test_old_style_resnet20_maps_equal_the_module_version(
    old_resnet, cifar_handle, cifar_x, method
):
    x, labels = cifar_x
    ours = compute_cams(old_resnet, x, ["layer2", "layer3"], method, targets=labels.tolist())
    twin = compute_cams(cifar_handle, x, ["layer2", "layer3"], method, targets=labels.tolist())
    for layer in ("layer2", "layer3"):
        np.testing.assert_allclose(ours.raw[layer], twin.raw[layer], rtol=1e-4, atol=1e-5)
        assert np.ptp(ours.maps[layer], axis=(1, 2)).min() > 0  # real maps, not constant


@pytest.mark.parametrize(
    ("method", "oracle"),
    [
        ("gradcam", "GradCAM"),
        ("gradcampp", "GradCAMPlusPlus"),
        ("layercam", "LayerCAM"),
        ("scorecam", "ScoreCAM"),
    ],
)
def test_lenet_without_gap_matches_pytorch_grad_cam(lenet_handle, cifar_x, method, oracle):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, _ = cifar_x
    classes = [3, 7, 1, 0, 9, 2, 5, 8, 6, 4]
    ours = compute_cams(lenet_handle, x, ["conv2"], method, targets=classes)
    with getattr(pgc, oracle)(
        model=lenet_handle.model, target_layers=[lenet_handle.model.conv2]
    ) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    informative = 0
    for a, b in zip(ours.maps["conv2"], theirs, strict=True):
        if np.ptp(b) == 0:  # random weights: some classes get an all-negative map
            assert np.ptp(a) == 0
            continue
        informative += 1
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.99
    assert informative >= 5


def test_lenet_predict_and_cam_error(lenet_handle, cifar_x):
    x, _ = cifar_x
    with torch.no_grad():
        direct = torch.softmax(lenet_handle.model(x), dim=1).numpy()
    np.testing.assert_allclose(lenet_handle.predict(x), direct, atol=1e-6)
    assert lenet_handle.labels == [f"class {i}" for i in range(10)]
    with pytest.raises(ExplainError, match="global average"):
        compute_cams(lenet_handle, x[:1], "conv2", "cam")  # CAM needs GAP + linear


def test_evaluate_on_the_old_style_model_equals_the_module_version(old_resnet, cifar_handle):
    kwargs = dict(
        methods=["gradcam"],
        layers=["layer3"],
        metrics=["deletion", "insertion"],
        max_images=12,
        steps=8,
        seed=3,
    )
    ours = evaluate(old_resnet, CIFAR_TEST, **kwargs)
    twin = evaluate(cifar_handle, CIFAR_TEST, **kwargs)
    keys = ["image", "method", "layer", "metric"]
    both = ours.table.merge(twin.table, on=keys, suffixes=("", "_twin"), validate="1:1")
    assert len(both) == len(ours.table) == len(twin.table) == 12 * 3 * 2  # gradcam + 2 baselines
    assert (both["target"] == both["target_twin"]).all()
    # The maps agree to float noise (1e-7); a pixel that swaps rank with an equal neighbour
    # could move a deletion step by one pixel, hence the tolerance.
    diff = (both["value"] - both["value_twin"]).abs()
    assert diff.max() < 2e-3 and diff.median() < 1e-5, both[diff >= 1e-5][[*keys, "value"]]


def test_collect_activations_on_old_style_models(old_resnet, cifar_handle, lenet_handle):
    ours = collect_activations(
        old_resnet, CIFAR_TEST, ["layer2", "layer3"], max_images=40, cache_dir=False
    )
    twin = collect_activations(
        cifar_handle, CIFAR_TEST, ["layer2", "layer3"], max_images=40, cache_dir=False
    )
    for layer in ("layer2", "layer3"):
        np.testing.assert_allclose(ours.features[layer], twin.features[layer], rtol=1e-4, atol=1e-5)
    assert ours.accuracy == twin.accuracy and ours.accuracy >= 0.7
    # LeNet: the features of conv2 are its output averaged over positions.
    acts = collect_activations(lenet_handle, CIFAR_TEST, ["conv2"], max_images=10, cache_dir=False)
    x = lenet_handle.preprocess(acts.paths)
    with torch.no_grad():
        model = lenet_handle.model
        conv2 = model.conv2(torch.nn.functional.max_pool2d(torch.relu(model.conv1(x)), 2))
    np.testing.assert_allclose(acts.features["conv2"], conv2.mean(dim=(2, 3)).numpy(), atol=1e-5)


def test_forward_failing_on_the_probe_input_is_a_clear_error():
    # A flatten + linear head fixed to 16x16 inputs, loaded with ImageNet's 224 default.
    with pytest.raises(InputSizeError) as info:
        load_model(flat_head_net(), device="cpu")
    text = str(info.value)
    assert "(1, 3, 224, 224)" in text and "preprocess=Preprocess(input_size=" in text
    assert "--input-size" in text and isinstance(info.value, ModelLoadError)
    # view(-1, 3, 32, 32) on a 224 image makes 49 "images": caught, not silently wrong.
    with pytest.raises(InputSizeError, match="49 rows of scores for 1 image"):
        load_model(LeNet(), device="cpu", labels=[str(i) for i in range(10)])
    # The lazy layer probe says the same (a handle whose preprocessing was changed later).
    handle = load_model(flat_head_net(), device="cpu", preprocess=Preprocess(input_size=16))
    handle.preprocessor = Preprocess(input_size=20)
    with pytest.raises(InputSizeError, match=r"\(1, 3, 20, 20\)"):
        handle.default_layer  # noqa: B018
