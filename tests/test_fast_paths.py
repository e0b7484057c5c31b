"""The engine's shortcuts give the plain computation's numbers: max pooling read channels-last,
upsampling by matrix products, constant maps kept at zero, pictures made on first use, constant maps found once per map
size."""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from explain import TopK, compute_cams, load_model
from explain.cams import (
    CamMethod,
    RawMaps,
    normalize_maps,
    register_method,
    run_pass,
    unregister_method,
    upsample,
    upsample_normalized,
)
from explain.hooks import Hooks
from explain.preprocessing import input_pictures


class PooledNet(nn.Module):
    """VGG-style, as much user code is: pooling modules, then ``x.view`` on the pooled map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        return self.fc(x.view(x.size(0), -1))  # fails on a channels-last map


def _layouts(model: nn.Module) -> dict[str, list[str]]:
    """Record the layout each max pooling reads (forward hooks see the replaced inputs)."""
    seen: dict[str, list[str]] = {}

    def hook(name: str):
        def record(_module, args, _output):
            x = args[0]
            cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            seen.setdefault(name, []).append("nhwc" if cl else "nchw")

        return record

    for name, module in model.named_modules():
        if isinstance(module, nn.MaxPool2d):
            module.register_forward_hook(hook(name))
    return seen


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def test_fast_pooling_gives_the_same_logits_to_the_bit(resnet18):
    x = torch.randn(2, 3, 96, 80)
    with torch.inference_mode():
        plain = resnet18(x)
        with Hooks(resnet18).fast_pooling():
            fast = resnet18(x)
    assert torch.equal(plain, fast)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in resnet18.modules())


def test_fast_pooling_hands_back_nchw_so_view_still_works():
    torch.manual_seed(0)
    model = PooledNet().eval()
    seen = _layouts(model)
    x = torch.randn(3, 3, 20, 20)
    x[:, :, :10] = -5.0  # whole windows of zeros after the ReLU: ties in the pooling
    with torch.no_grad():
        plain = model(x)
        with Hooks(model).fast_pooling():
            fast = model(x)
    assert torch.equal(plain, fast)
    # Read channels-last inside the block only (16 and 32 channels both qualify).
    assert seen == {"pool1": ["nchw", "nhwc"], "pool2": ["nchw", "nhwc"]}


def test_fast_pooling_leaves_the_gradient_path_alone():
    """A pooling whose input needs a gradient runs as written: with ties (zeros after a
    ReLU), another kernel could route the gradient to another position of the window."""
    torch.manual_seed(0)
    model = PooledNet().eval()
    seen = _layouts(model)
    x = torch.randn(1, 3, 20, 20)
    x[:, :, :10] = -5.0

    def input_grad(fast: bool) -> torch.Tensor:
        inp = x.clone().requires_grad_(True)
        hooks = Hooks(model).fast_pooling() if fast else Hooks(model)
        with hooks:
            score = model(inp)[0, 3]
        return torch.autograd.grad(score, inp)[0]

    assert torch.equal(input_grad(True), input_grad(False))
    assert set(itertools.chain(*seen.values())) == {"nchw"}


def test_maps_with_fast_pooling_equal_maps_without(resnet18, monkeypatch):
    handle = load_model(resnet18, weights=None, labels=[str(i) for i in range(1000)])
    x = torch.randn(2, 3, 112, 112)
    layers = ["maxpool", "layer1.0", "layer3", "layer4"]  # the pooling itself among them
    fast = compute_cams(handle, x, layers, targets=TopK(2))
    monkeypatch.setattr(Hooks, "fast_pooling", lambda self: self)
    plain = compute_cams(handle, x, layers, targets=TopK(2))
    for layer in layers:
        np.testing.assert_array_equal(fast.raw[layer], plain.raw[layer])
        np.testing.assert_array_equal(fast.maps[layer], plain.maps[layer])
    np.testing.assert_array_equal(fast.probs, plain.probs)


@pytest.mark.parametrize("align_corners", [False, True])
def test_upsample_by_matrices_matches_interpolate(align_corners):
    torch.manual_seed(0)
    worst = 0.0
    sizes = [(1, 1), (2, 3), (7, 7), (14, 13), (5, 9)]
    for (h, w), out in itertools.product(sizes, [(224, 224), (97, 61), (300, 256)]):
        maps = torch.rand(2, 3, h, w) * 10
        want = F.interpolate(
            maps.reshape(-1, 1, h, w), size=out, mode="bilinear", align_corners=align_corners
        ).reshape(2, 3, *out)
        got = upsample(maps, out, align_corners=align_corners)
        assert got.shape == want.shape
        worst = max(worst, float((got - want).abs().max()))
    assert worst < 1e-5  # float rounding of values up to 10: the same weights


@pytest.mark.parametrize("align_corners", [False, True])
def test_upsample_normalized_is_upsample_then_normalize_but_for_constant_maps(align_corners):
    torch.manual_seed(1)
    sizes = [(1, 1), (2, 3), (7, 7), (14, 13), (56, 56), (5, 9), (300, 200)]
    for (h, w), out in itertools.product(sizes, [(224, 224), (97, 61), (7, 4)]):
        maps = torch.randn(5, h, w) * 10
        maps[1] = torch.relu(maps[1])  # a ReLU'd map: flat at zero over half of it
        maps[2, h // 2, w // 2] = 500.0  # one sharp peak in the middle
        maps[3] = 0.7  # constant
        got = upsample_normalized(maps, out, align_corners=align_corners)
        want = normalize_maps(upsample(maps, out, align_corners=align_corners))
        varying = [0, 1, 2, 4] if h * w > 1 else []
        assert torch.equal(got[varying], want[varying])
        assert float(got[3].abs().max()) == 0.0
        for m in got[varying]:  # each spans [0, 1] exactly
            assert float(m.min()) == 0.0 and float(m.max()) == 1.0


def test_a_constant_map_stays_all_zero_when_upsampled():
    """Upsampling a constant map in float leaves rounding ripples (3.0000002 next to 3.0);
    scaled after upsampling they became a speckle of zeros and ones. Zeroed first, it stays
    zero."""
    flat = torch.full((1, 5, 3), 3.0)
    rippled = normalize_maps(upsample(flat, (7, 4)))
    assert float(rippled.max()) == 1.0  # what scaling after upsampling does to it
    assert float(upsample_normalized(flat, (7, 4)).abs().max()) == 0.0
    assert float(upsample_normalized(flat, (224, 224)).abs().max()) == 0.0
    same = torch.rand(2, 6, 6)
    kept = same.clone()
    assert torch.equal(upsample_normalized(same, (6, 6)), normalize_maps(same))
    assert torch.equal(same, kept)  # the caller's maps are left as they were


@dataclass(frozen=True)
class ConstantPlusBlob(CamMethod):
    """A toy method: a 7x7 map per image, constant 0.7 for the first, a blob on 0.7 for the
    others (upsampled in float, 0.7 ripples: 0.70000005 next to 0.7)."""

    def raw_maps(self, request, x, targets) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=False)
        maps = {}
        for name, acts in p.acts.items():
            raw = torch.full((len(x), 1, 7, 7), 0.7)
            raw[1:, 0, 3, 3] = 2.0
            maps[name] = raw
            request.check_constant(name, raw, acts)
        return RawMaps(p.logits, p.targets, maps)


def test_compute_cams_gives_a_constant_raw_map_as_all_zero(cifar_handle):
    """Through the engine: a constant raw map comes out all zero with its note (scaled after
    upsampling it was a speckle of zeros and ones), next to a map that spans [0, 1]."""
    toy = register_method(
        ConstantPlusBlob("constant-toy", "Constant toy", "activation", False, "toy", "3", "test")
    )
    try:
        result = compute_cams(cifar_handle, torch.randn(2, 3, 32, 32), ["layer3", "layer2"], toy)
    finally:
        unregister_method(toy.name)
    for layer in ("layer3", "layer2"):
        assert float(np.abs(result.maps[layer][0]).max()) == 0.0
        blob = result.maps[layer][1]
        assert blob.min() == 0.0 and blob.max() == pytest.approx(1.0, abs=1e-6)
        assert any(
            f"constant map (shown as all zero) at {layer} for 1 of 2" in n for n in result.notes
        )


def test_images_are_made_on_first_use_from_the_input_as_it_was(cifar_handle):
    x = torch.randn(2, 3, 32, 32)
    want = input_pictures(x, cifar_handle.preprocessor)
    result = compute_cams(cifar_handle, x, "layer3")
    x.mul_(0)  # the caller reuses its tensor: the pictures are those of the explained input
    np.testing.assert_array_equal(result.images, want)
    second = compute_cams(cifar_handle, torch.randn(1, 3, 32, 32), "layer3")
    again = pickle.loads(pickle.dumps(second))  # pictures not read yet travel with the result
    np.testing.assert_array_equal(again.images, second.images)


def test_constant_maps_are_found_once_per_size_with_their_cause(cifar_handle):
    """A layer whose maps are all constant and one whose maps vary, in the same call: the
    note names the first only, with the count over all images."""
    x = torch.randn(4, 3, 32, 32)
    dead = cifar_handle.model.layer3[2].bn2
    saved = (dead.weight.detach().clone(), dead.bias.detach().clone())
    with torch.no_grad():
        dead.weight.zero_()
        dead.bias.zero_()
    try:
        result = compute_cams(cifar_handle, x, ["layer3.2.bn2", "layer3"], batch_size=3)
    finally:
        with torch.no_grad():
            dead.weight.copy_(saved[0])
            dead.bias.copy_(saved[1])
    notes = [n for n in result.notes if "constant map" in n]
    assert len(notes) == 1
    assert "at layer3.2.bn2 for 4 of 4 maps" in notes[0]
    assert "activations are all zero" in notes[0]
    assert not np.any(result.maps["layer3.2.bn2"])
    assert np.ptp(result.maps["layer3"], axis=(1, 2)).min() > 0.5
