"""Exact numbers on a hand-made model, worked out by hand from each method's formula.

The model's layer ``features`` outputs two 2x2 activation maps A0, A1 (copied from the input),
and the class score is a linear function of them, so the gradients are known constants:

    A0 = [[1, 2], [0, 3]]     G0 = dS/dA0 = [[1, -1], [2, 0]]
    A1 = [[2, 3], [1, 1]]     G1 = dS/dA1 = [[0.5, 1], [-1, 2]]
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explain import Classes, Contrast, Preprocess, TargetError, compute_cams, load_model

A = torch.tensor([[[1.0, 2.0], [0.0, 3.0]], [[2.0, 3.0], [1.0, 1.0]]])
G_CLASS0 = torch.tensor([[[1.0, -1.0], [2.0, 0.0]], [[0.5, 1.0], [-1.0, 2.0]]])
G_CLASS1 = -G_CLASS0


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Linear(8, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.stack([G_CLASS0.flatten(), G_CLASS1.flatten()]))

    def forward(self, x):
        return self.head(self.features(x[:, :2]).flatten(1))


@pytest.fixture(scope="module")
def tiny():
    return load_model(
        Tiny(),
        weights=None,
        device="cpu",
        labels=["zero", "one"],
        preprocess=Preprocess(input_size=(2, 2)),
    )


@pytest.fixture(scope="module")
def x():
    return torch.cat([A, torch.zeros(1, 2, 2)])[None]


# Worked out by hand:
# Grad-CAM:   w = mean(G) = (0.5, 0.625)             -> 0.5 A0 + 0.625 A1
# Grad-CAM++: a = G^2 / (2G^2 + sum(A) G^3) where G != 0; w = sum a ReLU(G)
#             w0 = 1/8 + 2/14 = 0.2678571,  w1 = 0.5*0.25/1.375 + 1/9 + 2*4/64 = 0.3270202
# XGrad-CAM:  w = sum(G A) / sum(A) = (-1/6, 5/7)
# HiResCAM:   ReLU(G0 A0 + G1 A1) = ReLU([[2, 1], [-1, 2]])
# LayerCAM:   ReLU(G0) A0 + ReLU(G1) A1 = [[2, 3], [0, 2]]
# element-wise: ReLU(G0 A0) + ReLU(G1 A1) = [[2, 3], [0, 2]]
EXPECTED = {
    "gradcam": [[1.75, 2.875], [0.625, 2.125]],
    "gradcampp": [[0.9218975, 1.5167749], [0.3270202, 1.1305916]],
    "xgradcam": [[1.2619048, 1.8095238], [0.7142857, 0.2142857]],
    "hirescam": [[2.0, 1.0], [0.0, 2.0]],
    "layercam": [[2.0, 3.0], [0.0, 2.0]],
    "gradcam-elementwise": [[2.0, 3.0], [0.0, 2.0]],
}


@pytest.mark.parametrize("method", list(EXPECTED))
def test_exact_raw_maps(tiny, x, method):
    result = compute_cams(tiny, x, layers=["features"], method=method, targets=0)
    np.testing.assert_allclose(result.raw["features"][0], EXPECTED[method], rtol=1e-5, atol=1e-6)
    expected = np.array(EXPECTED[method])
    scaled = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(result.maps["features"][0], scaled, rtol=1e-5, atol=1e-6)
    assert result.targets.tolist() == [0]


def test_other_class_flips_the_gradient(tiny, x):
    # Class 1's gradients are -G: Grad-CAM weights (-0.5, -0.625) give an all-negative map,
    # which ReLU turns to zero; the normalised map must stay zero, not NaN.
    result = compute_cams(tiny, x, layers=["features"], method="gradcam", targets=1)
    np.testing.assert_array_equal(result.raw["features"][0], np.zeros((2, 2)))
    np.testing.assert_array_equal(result.maps["features"][0], np.zeros((2, 2)))


def test_top1_and_several_classes_in_one_call(tiny, x):
    scores = torch.stack([(G_CLASS0 * A).sum(), (G_CLASS1 * A).sum()])  # 4 and -4
    top = compute_cams(tiny, x, layers="features", method="layercam")
    assert top.targets.tolist() == [int(scores.argmax())]
    both = compute_cams(tiny, x, layers="features", method="layercam", targets=Classes([0, 1]))
    assert both.raw["features"].shape == (1, 2, 2, 2) and both.targets.tolist() == [[0, 1]]
    np.testing.assert_allclose(both.raw["features"][0, 0], EXPECTED["layercam"])
    # For class 1, ReLU(-G0) A0 + ReLU(-G1) A1 = [[0, 2], [0, 0]] + [[0, 0], [1, 0]]
    np.testing.assert_allclose(both.raw["features"][0, 1], [[0, 2], [1, 0]])
    assert both.target_names == [["zero", "one"]]


def test_contrast_and_callable_targets(tiny, x):
    # d(S0 - S1)/dA = 2 G: the HiResCAM map doubles.
    contrast = compute_cams(
        tiny, x, layers="features", method="hirescam", targets=Contrast("zero", "one")
    )
    np.testing.assert_allclose(contrast.raw["features"][0], 2 * np.array(EXPECTED["hirescam"]))
    assert contrast.target_names == [["zero rather than one"]]
    custom = compute_cams(
        tiny, x, layers="features", method="hirescam", targets=lambda z: 3 * z[:, 0]
    )
    np.testing.assert_allclose(custom.raw["features"][0], 3 * np.array(EXPECTED["hirescam"]))


def test_target_errors(tiny, x):
    with pytest.raises(TargetError, match="out of range"):
        compute_cams(tiny, x, layers="features", targets=2)
    with pytest.raises(TargetError, match="3 targets were given for 1 images"):
        compute_cams(tiny, x, layers="features", targets=[0, 1, 0])
    with pytest.raises(TargetError, match="shape"):
        compute_cams(tiny, x, layers="features", targets=lambda z: z.sum())
