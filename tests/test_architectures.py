"""Depth-parameterised CIFAR ResNets (He et al. 2016, section 4.2) and factory arguments in
model specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CIFAR_WEIGHTS

from explain import ModelLoadError, load_model
from explain.architectures import (
    CIFAR10_CLASSES,
    CIFAR10_PREPROCESS,
    CIFAR_RESNET_DEPTHS,
    cifar_resnet,
    cifar_resnet20,
    cifar_resnet32,
    cifar_resnet44,
    cifar_resnet56,
    cifar_resnet110,
)
from explain.factory_spec import format_factory_args, parse_model_args, split_factory_args

NAMED = {20: cifar_resnet20, 32: cifar_resnet32, 44: cifar_resnet44, 56: cifar_resnet56}
NAMED[110] = cifar_resnet110


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", list(CIFAR_RESNET_DEPTHS))
def test_parameter_counts_are_the_papers(depth):
    model = cifar_resnet(depth)
    paper = CIFAR_RESNET_DEPTHS[depth]  # Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M
    digits = len(paper.rstrip("M").split(".")[1])
    assert f"{_params(model) / 1e6:.{digits}f}M" == paper
    blocks = (depth - 2) // 6
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [blocks] * 3
    # Weighted layers: the first conv, two per block, the linear head.
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs + 1 == depth
    assert _params(NAMED[depth]()) == _params(model)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_depth_must_be_6n_plus_2():
    for bad in (21, 2, 0, "20", 20.0, True):
        with pytest.raises(ValueError, match=r"6n \+ 2"):
            cifar_resnet(bad)


def test_pretrained_resnet20_through_the_depth_spec(cifar_files):
    paths, labels = cifar_files
    handle = load_model(
        "explain.architectures:cifar_resnet(depth=20)",
        weights=CIFAR_WEIGHTS,
        labels=CIFAR10_CLASSES,
        preprocess=CIFAR10_PREPROCESS,
        device="cpu",
    )
    assert handle.spec == "explain.architectures:cifar_resnet(depth=20)"
    accuracy = float((handle.predict(handle.preprocess(paths)).argmax(1) == labels).mean())
    assert accuracy == pytest.approx(0.804, abs=0.003)  # NOTES.md: 0.804 on these 1,000


def test_model_args_and_spec_args_merge():
    handle = load_model(
        "explain.architectures:cifar_resnet(depth=44)",
        weights=None,
        device="cpu",
        preprocess=CIFAR10_PREPROCESS,
        model_args={"num_classes": 4},
    )
    assert handle.num_classes == 4 and len(handle.model.layer2) == 7
    assert handle.spec == "explain.architectures:cifar_resnet(depth=44, num_classes=4)"
    by_args = load_model(
        "python:explain.architectures:cifar_resnet",
        weights=None,
        device="cpu",
        preprocess=CIFAR10_PREPROCESS,
        model_args={"depth": 32},
    )
    assert len(by_args.model.layer1) == 5 and by_args.source == "user"
    with pytest.raises(ModelLoadError, match=r"6n \+ 2"):
        load_model("explain.architectures:cifar_resnet(depth=21)", weights=None, device="cpu")


def test_factory_arguments_are_literals_never_code(tmp_path):
    assert split_factory_args("m.x:f(depth=56, name='a', sizes=(1, 2))") == (
        "m.x:f",
        {"depth": 56, "name": "a", "sizes": (1, 2)},
    )
    assert split_factory_args("m.x:f") == ("m.x:f", {})
    assert format_factory_args("m.x:f", {"b": 1, "a": "z"}) == "m.x:f(a='z', b=1)"
    trap = tmp_path / "ran"
    for bad, message in [
        ("m.x:f(56)", "Only keyword"),
        (f"m.x:f(depth=open({str(trap)!r}, 'w'))", "not a Python literal"),
        ("m.x:f(depth=1 + 2 * x)", "not a Python literal"),
        ("m.x:f(depth=", "Unbalanced"),
        ("m.x:f(**{'a': 1})", "Only keyword"),
    ]:
        with pytest.raises(ModelLoadError, match=message):
            split_factory_args(bad)
    assert not trap.exists()  # nothing in a spec is executed
    assert parse_model_args(["depth=56", "act=relu", "scale=0.5", "flag=True"]) == {
        "depth": 56,
        "act": "relu",
        "scale": 0.5,
        "flag": True,
    }
    with pytest.raises(ModelLoadError, match="KEY=VALUE"):
        parse_model_args(["depth"])
    with pytest.raises(ModelLoadError, match=r"apply only to .*timm.*your own architecture"):
        load_model("builtin:shapes", model_args={"depth": 3})


def test_same_weights_same_maps_whatever_the_spec_form():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    a = load_model(cifar_resnet(56), weights=None, device="cpu", preprocess=CIFAR10_PREPROCESS)
    b = load_model(
        "explain.architectures:cifar_resnet56",
        weights=None,
        device="cpu",
        preprocess=CIFAR10_PREPROCESS,
    )
    b.model.load_state_dict(a.model.state_dict())
    np.testing.assert_allclose(a.predict(x), b.predict(x), atol=1e-6)
