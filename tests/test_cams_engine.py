"""The engine's promises: one pass for many layers and classes, thread safety, hooks that never
outlive a call, flat memory, and perturbation shortcuts that give the plain computation's map."""

from __future__ import annotations

import copy
import gc
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain import ExplainError, Preprocess, TopK, compute_cams, guided_backprop, load_model
from explain.cams import upsample
from explain.cams.perturbation import ablation_weights


@pytest.fixture(scope="module")
def cifar_x(cifar_handle, cifar_files):
    paths, _ = cifar_files
    return cifar_handle.preprocess(paths[::100])  # 10 images, one per class


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
        for m in model.modules()
    )


def test_many_layers_in_one_pass_equal_one_layer_at_a_time(cifar_handle, cifar_x):
    layers = ["layer1", "layer2.1", "layer3", "layer3.2.conv2"]
    assert cifar_handle.layers  # the one-off dry run that lists layers is not counted
    calls = {"n": 0}
    hook = cifar_handle.model.conv1.register_forward_hook(
        lambda *_: calls.__setitem__("n", calls["n"] + 1)
    )
    try:
        together = compute_cams(cifar_handle, cifar_x, layers=layers, method="gradcampp")
    finally:
        hook.remove()
    assert calls["n"] == 1  # one forward pass for all four layers
    for layer in layers:
        alone = compute_cams(cifar_handle, cifar_x, layers=[layer], method="gradcampp")
        np.testing.assert_allclose(together.raw[layer], alone.raw[layer], rtol=1e-5, atol=1e-7)
        assert together.maps[layer].shape == (10, 32, 32)
        assert together.raw[layer].shape[1:] == cifar_handle.layer(layer).grid


def test_top_k_classes_share_the_pass_and_match_single_calls(cifar_handle, cifar_x):
    multi = compute_cams(cifar_handle, cifar_x, layers="layer3", method="gradcam", targets=TopK(3))
    assert multi.maps["layer3"].shape == (10, 3, 32, 32) and multi.targets.shape == (10, 3)
    np.testing.assert_array_equal(multi.targets, np.argsort(-multi.probs, axis=1)[:, :3])
    for k in range(3):
        single = compute_cams(
            cifar_handle,
            cifar_x,
            layers="layer3",
            method="gradcam",
            targets=multi.targets[:, k].tolist(),
        )
        np.testing.assert_allclose(
            multi.raw["layer3"][:, k], single.raw["layer3"], rtol=1e-5, atol=1e-7
        )


def test_batches_give_the_same_maps(cifar_handle, cifar_x):
    whole = compute_cams(cifar_handle, cifar_x, layers="layer3", method="layercam")
    split = compute_cams(cifar_handle, cifar_x, layers="layer3", method="layercam", batch_size=3)
    np.testing.assert_allclose(whole.maps["layer3"], split.maps["layer3"], atol=1e-6)
    np.testing.assert_array_equal(whole.targets, split.targets)


def test_concurrent_calls_equal_serial_calls(cifar_handle, cifar_x):
    jobs = [
        ("gradcam", "layer3"),
        ("hirescam", "layer2"),
        ("eigencam", "layer3"),
        ("layercam", "layer1"),
        ("gradcampp", "layer3"),
        ("scorecam", "layer3"),
    ] * 2
    serial = [
        compute_cams(cifar_handle, cifar_x[:2], layers=layer, method=m).maps[layer]
        for m, layer in jobs
    ]
    results: list[np.ndarray | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            m, layer = jobs[i]
            results[i] = compute_cams(cifar_handle, cifar_x[:2], layers=layer, method=m).maps[layer]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for expected, got in zip(serial, results, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert _no_hooks(cifar_handle.model)


def test_hooks_are_removed_when_a_call_fails(cifar_handle, cifar_x):
    def broken(_logits):
        raise RuntimeError("target function failed")

    with pytest.raises(RuntimeError, match="target function failed"):
        compute_cams(cifar_handle, cifar_x[:1], layers=["layer2", "layer3"], targets=broken)
    assert _no_hooks(cifar_handle.model)
    with pytest.raises(ExplainError, match="Unknown method"):
        compute_cams(cifar_handle, cifar_x[:1], method="gradcam+++")
    assert _no_hooks(cifar_handle.model)


def test_thousand_calls_leave_memory_flat(small_cnn):
    import tracemalloc

    handle = small_cnn
    x = torch.randn(2, 3, 16, 16)
    for _ in range(20):
        compute_cams(handle, x, layers=["1", "3"], method="gradcam")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        compute_cams(handle, x, layers=["1", "3"], method="gradcam")
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert growth < 1_000_000, f"Python memory grew by {growth} bytes over 1,000 calls"
    assert _no_hooks(handle.model)


class _WithConstantChannels(nn.Module):
    """A layer whose channels 1 and 3 are constant, so Score-CAM can share their forward pass."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.layer = nn.Identity()
        self.fc = nn.Linear(4, 3)
        torch.manual_seed(0)
        with torch.no_grad():
            self.conv.weight[1].zero_()
            self.conv.weight[3].zero_()

    def forward(self, x):
        a = self.layer(torch.relu(self.conv(x)))
        return self.fc(a.mean(dim=(2, 3)))


def test_score_cam_shortcut_equals_the_plain_computation():
    model = _WithConstantChannels().eval()
    handle = load_model(model, weights=None, device="cpu", preprocess=Preprocess((12, 12)))
    x = torch.randn(2, 3, 12, 12)
    result = compute_cams(handle, x, layers="layer", method="scorecam", targets=[0, 2])
    with torch.no_grad():
        acts = torch.relu(model.conv(x))
    for i, target in enumerate([0, 2]):
        # The plain computation, one forward pass per channel.
        up = upsample(acts[i], (12, 12), align_corners=True)
        scores = []
        for k in range(4):
            mask = (up[k] - up[k].min()) / (up[k].max() - up[k].min() + 1e-8)
            with torch.no_grad():
                scores.append(model(x[i : i + 1] * mask)[0, target])
        weights = torch.softmax(torch.stack(scores), dim=0)
        expected = torch.relu((weights[:, None, None] * acts[i]).sum(0))
        np.testing.assert_allclose(result.raw["layer"][i], expected.numpy(), rtol=1e-5, atol=1e-7)


class _ConcatAfterLayer(nn.Module):
    """DenseNet-like: an earlier tensor is concatenated after the layer, so the batch-1 shortcut
    of Ablation-CAM does not apply and must be detected."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        a = self.layer(s)
        return self.fc(torch.cat([s, a], dim=1).mean(dim=(2, 3)))


def _plain_ablation(model: nn.Module, layer: nn.Module, x1: torch.Tensor, target: int):
    with torch.no_grad():
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.update(a=o.clone()))
        original = model(x1)[0, target]
        h.remove()
        a = acts["a"]
        weights = []
        for k in range(a.shape[1]):
            ablated = a.clone()
            ablated[:, k] = 0
            h = layer.register_forward_hook(lambda m, i, o, ab=ablated: ab)
            weights.append((original - model(x1)[0, target]) / original)
            h.remove()
    w = torch.stack(weights)
    return torch.relu((w[:, None, None] * a[0]).sum(0))


@pytest.mark.parametrize("model_kind", ["resnet", "concat"])
def test_ablation_shortcut_is_exact_or_detected(cifar_handle, cifar_x, model_kind):
    if model_kind == "resnet":
        handle, x, layer_name = cifar_handle, cifar_x[:2], "layer3"
        expected_note = "only the layers after layer3"
    else:
        torch.manual_seed(1)
        handle = load_model(
            _ConcatAfterLayer().eval(), weights=None, device="cpu", preprocess=Preprocess((10, 10))
        )
        x, layer_name = torch.randn(2, 3, 10, 10), "layer"
        expected_note = "re-ran the whole network"
    result = compute_cams(
        handle, x, layers=layer_name, method="ablationcam", targets=[0, 1], perturbation_batch=16
    )
    assert any(expected_note in note for note in result.notes), result.notes
    layer = dict(handle.model.named_modules())[layer_name]
    for i, target in enumerate([0, 1]):
        expected = _plain_ablation(handle.model, layer, x[i : i + 1], target)
        # float32 sums in a batch are ordered differently than one by one: 1e-3 relative
        np.testing.assert_allclose(
            result.raw[layer_name][i], expected.numpy(), rtol=1e-3, atol=1e-5
        )


def test_ablation_skips_dead_channels(cifar_handle, cifar_x):
    info = cifar_handle.layer("layer3")
    acts = {}
    h = cifar_handle.model.layer3.register_forward_hook(lambda m, i, o: acts.update(a=o.clone()))
    with torch.no_grad():
        cifar_handle.model(cifar_x[:1])
    h.remove()
    dead = [k for k in range(64) if acts["a"][0, k].abs().max() == 0]
    weights, _ = ablation_weights(
        cifar_handle,
        cifar_x[:1],
        info,
        acts["a"],
        acts["a"][0],
        lambda z: z[:, [3]],
        64,
        None,
        lambda d, t: None,
    )
    assert all(float(weights[0, k]) == 0.0 for k in dead)


def test_fast_mode_perturbs_only_top_variance_channels(cifar_handle, cifar_x):
    result = compute_cams(
        cifar_handle, cifar_x[:2], layers="layer3", method="scorecam", max_channels=8
    )
    assert any("approximate" in n for n in result.notes)
    exact = compute_cams(cifar_handle, cifar_x[:2], layers="layer3", method="scorecam")
    corr = [
        np.corrcoef(a.ravel(), b.ravel())[0, 1]
        for a, b in zip(result.maps["layer3"], exact.maps["layer3"], strict=True)
    ]
    assert min(corr) > 0.5  # an approximation, but of the same map
    with pytest.raises(ExplainError, match="Score-CAM and Ablation-CAM only"):
        compute_cams(cifar_handle, cifar_x[:1], method="gradcam", max_channels=8)


def test_aug_smooth_is_the_average_over_flips_and_brightness(cifar_handle, cifar_x):
    x = cifar_x[:2]
    smooth = compute_cams(cifar_handle, x, layers="layer3", method="gradcam", aug_smooth=True)
    targets = smooth.targets.tolist()
    parts = []
    for scale in (1.0, 1.1):
        for flip in (False, True):
            xi = torch.flip(x, dims=[-1]) if flip else x
            raw = compute_cams(
                cifar_handle, xi * scale, layers="layer3", method="gradcam", targets=targets
            ).raw["layer3"]
            parts.append(np.flip(raw, axis=-1) if flip else raw)
    np.testing.assert_allclose(smooth.raw["layer3"], np.mean(parts, axis=0), rtol=1e-5, atol=1e-7)


def test_eigen_smooth_uses_the_first_component(cifar_handle, cifar_x):
    plain = compute_cams(cifar_handle, cifar_x[:3], layers="layer3", method="eigencam")
    smoothed = compute_cams(
        cifar_handle, cifar_x[:3], layers="layer3", method="hirescam", eigen_smooth=True
    )
    eigengrad = compute_cams(cifar_handle, cifar_x[:3], layers="layer3", method="eigengradcam")
    np.testing.assert_allclose(smoothed.raw["layer3"], eigengrad.raw["layer3"], atol=1e-6)
    assert not np.allclose(plain.raw["layer3"], eigengrad.raw["layer3"])


def test_guided_backprop_sees_functional_relus_and_leaves_the_model_alone(cifar_handle, cifar_x):
    # The CIFAR ResNet calls F.relu inside its blocks: module-swapping tools would miss those.
    before = [type(m) for m in cifar_handle.model.modules()]
    ours = guided_backprop(cifar_handle, cifar_x[:2], targets=[3, 5])
    assert [type(m) for m in cifar_handle.model.modules()] == before
    assert ours.shape == (2, 32, 32, 3)

    class GuidedReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g.clamp(min=0) * (x > 0)

    reference = copy.deepcopy(cifar_handle.model)
    original_relu = F.relu
    x = cifar_x[:2].clone().requires_grad_(True)
    try:
        F.relu = lambda t, inplace=False: GuidedReLU.apply(t)  # reference only, on a copy
        torch.relu = F.relu
        out = reference(x)
    finally:
        F.relu = original_relu
        torch.relu = torch._C._VariableFunctions.relu
    (out[0, 3] + out[1, 5]).backward()
    np.testing.assert_allclose(ours, x.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-7)


def test_hugging_face_token_layers(tmp_path):
    from hf_factory import make_hf_model

    hf_model, _ = make_hf_model("vit", tmp_path / "vit")
    handle = load_model(f"hf:{tmp_path / 'vit'}", device="cpu")
    x = torch.randn(2, 3, 64, 64)
    result = compute_cams(handle, x, method="gradcam", targets=[1, 2])
    layer = handle.default_layer
    assert result.raw[layer].shape == (2, 8, 8)
    # The same Grad-CAM by hand on the Hugging Face model's own hidden states.
    module = dict(hf_model.named_modules())[layer]
    store = {}
    h = module.register_forward_hook(lambda m, i, o: store.update(a=o))
    logits = hf_model(pixel_values=x).logits
    h.remove()
    grads = torch.autograd.grad(logits[0, 1] + logits[1, 2], store["a"])[0]
    a = store["a"][:, 1:].reshape(2, 8, 8, -1).permute(0, 3, 1, 2)
    g = grads[:, 1:].reshape(2, 8, 8, -1).permute(0, 3, 1, 2)
    expected = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    np.testing.assert_allclose(result.raw[layer], expected.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_guided_backprop_guides_relu6_units():
    # ReLU6 (MobileNet, EfficientNet-Lite) as a module, F.hardtanh(x, 0, 6) and F.relu6; where no
    # unit reaches 6 it must give exactly the guided gradients of the same net with ReLUs.
    class Net(nn.Module):
        def __init__(self, relu6: bool):
            super().__init__()
            self.relu6 = relu6
            self.conv1, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
            self.act = nn.ReLU6(inplace=True) if relu6 else nn.ReLU()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            x = self.act(self.conv1(x))
            if self.relu6:
                x = F.relu6(F.hardtanh(self.conv2(x), 0.0, 6.0))
            else:
                x = F.relu(self.conv2(x))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    relu, relu6 = Net(False).eval(), Net(True).eval()
    relu6.load_state_dict(relu.state_dict())
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert relu6.conv1(x).max() < 6  # the ReLU6 units behave as ReLUs here
    handles = [
        load_model(m, weights=None, device="cpu", labels=list("abc"), preprocess=Preprocess(12))
        for m in (relu, relu6)
    ]
    guided = [guided_backprop(h, x, targets=[0, 2]) for h in handles]
    np.testing.assert_allclose(guided[1], guided[0], rtol=1e-5, atol=1e-8)
    plain_x = x.clone().requires_grad_(True)
    out = relu6(plain_x)
    (out[0, 0] + out[1, 2]).backward()  # the plain gradient differs: guiding did something
    assert not np.allclose(guided[1], plain_x.grad.permute(0, 2, 3, 1).numpy(), atol=1e-6)


class _InPlaceAfterLayers(nn.Module):
    """Each recorded conv is followed by an in-place ReLU, as in VGG-style ``features``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x)) * 1.0  # out of place: conv1's output stays as it was
        x = self.conv2(x)
        x.relu_()  # in place: changes conv2's output after it was recorded
        return self.fc(x.mean(dim=(2, 3)))


def _by_hand_gradcam(model: _InPlaceAfterLayers, x: torch.Tensor, target: int):
    """Grad-CAM at conv1 and conv2 by hand, from explicit copies of their outputs."""
    a1 = model.conv1(x).detach().requires_grad_(True)
    h = F.relu(a1.clone()) * 1.0
    a2 = model.conv2(h)
    out = model.fc(torch.relu(a2.clone()).mean(dim=(2, 3)))
    g1, g2 = torch.autograd.grad(out[:, target].sum(), [a1, a2])
    maps = [
        torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1)) for a, g in ((a1, g1), (a2, g2))
    ]
    return [m.detach() for m in maps]


@pytest.mark.parametrize("layers", [["conv2"], ["conv1", "conv2"]])
def test_layers_changed_in_place_later_are_recorded_as_they_were(layers):
    """Recording without copies is checked: an in-place change of the graph's first leaf (conv2
    alone) or of a later recorded output (conv2 after conv1) is found and the pass redone."""
    model = _InPlaceAfterLayers().eval()
    handle = load_model(model, labels=list("abcd"), preprocess=Preprocess(input_size=(9, 11)))
    x = torch.randn(2, 3, 9, 11)
    result = compute_cams(handle, x, layers=layers, targets=2)
    by_hand = dict(zip(["conv1", "conv2"], _by_hand_gradcam(model, x, 2), strict=True))
    for name in layers:
        np.testing.assert_allclose(result.raw[name], by_hand[name].numpy(), rtol=1e-5, atol=1e-6)
    again = compute_cams(handle, x, layers=layers, targets=2)  # now recorded with copies at once
    for name in layers:
        np.testing.assert_array_equal(again.raw[name], result.raw[name])
