"""A method whose map comes out constant says so in the result's notes, with the likely cause;
hand-made models where each cause really happens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explain import Preprocess, compute_cams, load_model


def _handle(conv_bias: float, after: nn.Module) -> object:
    """conv(3 -> 4, bias ``conv_bias``) -> ``after`` -> global pool -> linear, 16x16 inputs."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), after, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    with torch.no_grad():
        model[0].weight.mul_(0.01)
        model[0].bias.fill_(conv_bias)
    return load_model(
        model.eval(), weights=None, device="cpu", labels=list("abc"), preprocess=Preprocess(16)
    )


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _constant_notes(res) -> list[str]:
    return [n for n in res.notes if "constant map" in n]


def test_score_cam_on_negative_activations(x):
    # No ReLU after the conv and a bias of -5: every activation is negative, Score-CAM's
    # weights are a softmax (positive), so the weighted sum is negative and the ReLU zeroes it.
    handle = _handle(-5.0, nn.Identity())
    res = compute_cams(handle, x, "0", "scorecam")
    assert np.all(res.maps["0"] == 0) and np.ptp(res.raw["0"]) == 0
    (note,) = _constant_notes(res)
    assert note.startswith("Score-CAM gave a constant map (shown as all zero) at 0 for 2 of 2 maps")
    assert "<= 0 at every position" in note


def test_grad_cam_on_a_dead_relu(x):
    # A bias of -5 before the ReLU: the ReLU's output is zero everywhere.
    handle = _handle(-5.0, nn.ReLU())
    res = compute_cams(handle, x, "1", "gradcam", targets=[0, 2])
    assert np.all(res.maps["1"] == 0)
    (note,) = _constant_notes(res)
    assert "at 1 for 2 of 2 maps" in note and "activations are all zero" in note


def test_grad_cam_before_a_dead_relu_has_no_gradient(x):
    # The conv's output is negative and varies, but the dead ReLU after it passes no gradient.
    handle = _handle(-5.0, nn.ReLU())
    res = compute_cams(handle, x, "0", "gradcam")
    assert np.all(res.maps["0"] == 0)
    (note,) = _constant_notes(res)
    assert "Grad-CAM gave a constant map" in note and "gradient of the target score" in note


def test_informative_maps_have_no_such_note(cifar_handle, cifar_files):
    paths, labels = cifar_files
    picks = [paths[i] for i in range(0, 1000, 250)]
    for method in ("gradcam", "scorecam"):
        res = compute_cams(cifar_handle, picks, "layer3", method, targets=labels[::250].tolist())
        assert np.ptp(res.maps["layer3"], axis=(1, 2)).min() > 0
        assert _constant_notes(res) == []
