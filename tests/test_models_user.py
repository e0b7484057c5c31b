"""A user's own architecture, the real pretrained CIFAR ResNet-20, and bad weights files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from explain import LayerError, ModelLoadError, Preprocess, TargetError, WeightsError, load_model
from explain.architectures import CIFAR10_CLASSES, CIFAR10_PREPROCESS, cifar_resnet20
from explain.checkpoints import read_state_dict


def test_pretrained_cifar_resnet20_accuracy(cifar_handle, cifar_files):
    paths, labels = cifar_files
    assert len(paths) == 1000
    probs = cifar_handle.predict(cifar_handle.preprocess(paths))
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy >= 0.78, accuracy
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_cifar_layers(cifar_handle):
    assert cifar_handle.source == "user"
    assert cifar_handle.default_layer == "layer3"
    info = cifar_handle.layer("layer3")
    assert (info.kind, info.channels, info.grid) == ("spatial", 64, (8, 8))
    assert cifar_handle.layer("layer2.1").grid == (16, 16)
    assert cifar_handle.layer("linear").kind == "vector"


def test_layer_errors_are_specific(cifar_handle):
    with pytest.raises(LayerError, match="did you mean 'layer3'"):
        cifar_handle.layer("layer33")
    with pytest.raises(LayerError, match="not a spatial map"):
        cifar_handle.map_layer("linear")
    with pytest.raises(LayerError, match="not a spatial map"):
        cifar_handle.map_layer("pool")  # 1x1: nothing to localise


def test_class_index_checks(cifar_handle):
    assert cifar_handle.class_index("Cat") == 3
    assert cifar_handle.class_index(9) == 9
    with pytest.raises(TargetError, match="out of range"):
        cifar_handle.class_index(10)
    with pytest.raises(TargetError, match="did you mean 'horse'"):
        cifar_handle.class_index("hors")


def test_module_instance_and_factory_give_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = cifar_resnet20()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "r20.pt")
    by_instance = load_model(
        cifar_resnet20(), weights=tmp_path / "r20.pt", device="cpu", preprocess=CIFAR10_PREPROCESS
    )
    by_factory = load_model(
        "python:explain.architectures:cifar_resnet20",
        weights=str(tmp_path / "r20.pt"),
        device="cpu",
        preprocess={
            "input_size": 32,
            "mean": CIFAR10_PREPROCESS.mean,
            "std": CIFAR10_PREPROCESS.std,
        },
    )
    x = torch.randn(3, 3, 32, 32)
    np.testing.assert_allclose(by_instance.predict(x), by_factory.predict(x), atol=1e-6)
    assert by_instance.labels == [f"class {i}" for i in range(10)]
    assert by_factory.source == "user"


def test_callable_preprocess():
    def to_tensor(image):
        arr = np.asarray(image.resize((32, 32)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1)

    handle = load_model(
        cifar_resnet20, weights=None, device="cpu", preprocess=to_tensor, labels=CIFAR10_CLASSES
    )
    image = np.full((50, 40, 3), 255, dtype=np.uint8)
    x = handle.preprocess([image])
    assert x.shape == (1, 3, 32, 32) and float(x.min()) == 1.0
    assert handle.input_size == (32, 32)


def test_bad_specs():
    with pytest.raises(ModelLoadError, match="Unknown model source 'nosuchsource'") as info:
        load_model("nosuchsource:resnet50")
    assert "'timm:<name>'" in str(info.value) and "'hf:<hub id" in str(info.value)
    # timm is a source: its names go to timm, not to a "package.module:factory" lookup.
    with pytest.raises(ModelLoadError, match="'resnet1000' is not a timm model"):
        load_model("timm:resnet1000")
    # An importable module that is no source and has no such factory.
    with pytest.raises(ModelLoadError, match="Unknown model source 'numpy'"):
        load_model("numpy:resnet50")
    with pytest.raises(ModelLoadError, match="names no source"):
        load_model("resnet50")
    with pytest.raises(ModelLoadError, match="no built-in model 'nope'"):
        load_model("builtin:nope")
    with pytest.raises(ModelLoadError, match="Cannot import"):
        load_model("no_such_package.models:make")
    with pytest.raises(ModelLoadError, match="has no attribute"):
        load_model("explain.architectures:resnet1000")
    with pytest.raises(ModelLoadError, match=r"not an nn\.Module"):
        load_model("explain.architectures:CIFAR10_CLASSES.__len__")
    with pytest.raises(ModelLoadError, match="outputs 10 scores but 2 labels"):
        load_model(cifar_resnet20(), weights=None, labels=["a", "b"], preprocess=CIFAR10_PREPROCESS)


class _Evil:
    def __reduce__(self):
        return (print, ("this would run arbitrary code",))


def test_pickle_with_python_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(WeightsError, match="could run arbitrary code"):
        read_state_dict(path)


def test_missing_corrupt_and_empty_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(cifar_resnet20(), weights=tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    torch.save(cifar_resnet20().state_dict(), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_model(cifar_resnet20(), weights=corrupt)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        read_state_dict(garbage)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"12345678")  # not a pickle, not a zip: said so, not "Python objects"
    with pytest.raises(WeightsError, match=r"^junk.pth is not a PyTorch weights file"):
        read_state_dict(junk)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"^empty.pth is empty \(0 bytes\)"):
        read_state_dict(empty)
    old_pickle = tmp_path / "old.pkl"
    old_pickle.write_bytes(pickle.dumps([1, 2, 3]) + b"junk")
    with pytest.raises(WeightsError):
        read_state_dict(old_pickle)


def test_shape_mismatch_names_the_tensor(tmp_path):
    state = cifar_resnet20(num_classes=5).state_dict()
    torch.save(state, tmp_path / "five.pth")
    with pytest.raises(WeightsError, match=r"linear.weight: file \(5, 64\) vs model \(10, 64\)"):
        load_model(cifar_resnet20(), weights=tmp_path / "five.pth")


def test_device_checks():
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            load_model(cifar_resnet20(), weights=None, device="cuda")
    handle = load_model(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        weights=None,
        preprocess=Preprocess(input_size=(16, 16)),
    )
    assert handle.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert handle.default_layer == "0" and handle.num_classes == 4
