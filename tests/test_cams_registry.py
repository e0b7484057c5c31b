"""A new method is one registry entry: methods defined here, in a test file, run through
``compute_cams`` on several layers in one pass, with no change to the engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from explain import METHODS, ExplainError, compute_cams
from explain.cams import (
    METHOD_INFO,
    CamMethod,
    RawMaps,
    WeightedActivations,
    check_method,
    register_method,
    run_pass,
    unregister_method,
)


@dataclass(frozen=True)
class ActivationNorm(CamMethod):
    """A toy strategy of its own: the L2 norm of each position's channel vector."""

    def raw_maps(self, request, x, targets) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=False)
        maps = {name: acts.norm(dim=1)[:, None] for name, acts in p.acts.items()}
        return RawMaps(p.logits, p.targets, maps)


def _absolute_gradient_weights(acts, grads):
    return grads.abs().mean(dim=(-2, -1))


TOYS = (
    ActivationNorm(
        "activation-norm", "Activation norm", "activation", False, "toy", "||A||_2", "test"
    ),
    WeightedActivations(
        "abs-gradcam",
        "Absolute Grad-CAM",
        "gradient",
        True,
        "toy",
        "ReLU(sum_k mean|G_k| A_k)",
        "test",
        weights=_absolute_gradient_weights,
    ),
)


@pytest.fixture()
def toys():
    for toy in TOYS:
        register_method(toy)
    yield
    for toy in TOYS:
        unregister_method(toy.name)


def _reference(small_cnn, x, layers):
    """Activations and gradients of the top-1 score, with plain hooks and autograd."""
    modules = dict(small_cnn.model.named_modules())
    store = {}
    handles = [
        modules[name].register_forward_hook(lambda m, i, o, n=name: store.update({n: o}))
        for name in layers
    ]
    try:
        with torch.enable_grad():
            logits = small_cnn.model(x)
            top = logits.argmax(dim=1)
            score = logits.gather(1, top[:, None]).sum()
            grads = torch.autograd.grad(score, [store[n] for n in layers])
    finally:
        for h in handles:
            h.remove()
    return {n: store[n].detach() for n in layers}, dict(zip(layers, grads, strict=True))


def test_registered_methods_run_on_several_layers_in_one_pass(small_cnn, toys):
    assert "activation-norm" in METHODS and "abs-gradcam" in METHODS
    assert check_method("Absolute Grad-CAM").name == "abs-gradcam"
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    layers = ["0", "2"]  # both convolutions of the tiny CNN
    small_cnn.layers  # noqa: B018 - the dry run that finds the layers happens first
    calls = []
    counter = small_cnn.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        norm = compute_cams(small_cnn, x, layers=layers, method="activation-norm")
        assert len(calls) == 1  # one forward pass for both layers
        calls.clear()
        absolute = compute_cams(small_cnn, x, layers=layers, method="abs-gradcam")
        assert len(calls) == 1
    finally:
        counter.remove()
    acts, grads = _reference(small_cnn, x, layers)
    for name in layers:
        np.testing.assert_allclose(norm.raw[name], acts[name].norm(dim=1).numpy(), rtol=1e-5)
        w = grads[name].abs().mean(dim=(2, 3))
        expected = torch.relu((w[:, :, None, None] * acts[name]).sum(1)).numpy()
        np.testing.assert_allclose(absolute.raw[name], expected, rtol=1e-4, atol=1e-6)
        assert absolute.maps[name].shape == (3, 16, 16)
        assert absolute.maps[name].max() == pytest.approx(1.0)
    assert norm.method == "activation-norm"


def test_registry_refuses_duplicates_and_unknown_kinds(toys):
    with pytest.raises(ExplainError, match="already registered"):
        register_method(TOYS[0])
    odd = ActivationNorm("odd", "Odd", "telepathy", False, "", "", "")
    with pytest.raises(ExplainError, match="Unknown method kind"):
        register_method(odd)
    assert "odd" not in METHOD_INFO


def test_unregistered_method_is_gone(small_cnn):
    assert "activation-norm" not in METHODS
    with pytest.raises(ExplainError, match="Unknown method 'activation-norm'"):
        compute_cams(small_cnn, torch.zeros(1, 3, 16, 16), method="activation-norm")
