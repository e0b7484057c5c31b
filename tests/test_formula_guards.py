"""Tests aimed at plausible wrong formulas that the other tests would let through.

Each case was built so that one specific mistake changes the answer a lot: a reversed sign rule
in Eigen-CAM, ROAD's least-relevant-first ranking the most relevant pixels first, a silhouette
that ignores its metric, a k-NN that counts a point as its own neighbour, and Grad-CAM with a
ReLU on the channel weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from embeddings import knn_accuracy, silhouette
from explain import Preprocess, compute_cams, load_model
from explain.evaluation import road


class _Identity(nn.Module):
    """``features`` is the input itself; the head is a fixed linear map of it."""

    def __init__(self, head: torch.Tensor):
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Linear(head.shape[1], head.shape[0], bias=False)
        with torch.no_grad():
            self.head.weight.copy_(head)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _handle(head: torch.Tensor, size: tuple[int, int]):
    return load_model(
        _Identity(head),
        weights=None,
        device="cpu",
        labels=[f"c{i}" for i in range(head.shape[0])],
        preprocess=Preprocess(input_size=size),
    )


# -- Eigen-CAM: the salient blob must come out positive ------------------------------------------
def test_eigencam_peaks_on_the_one_strong_blob():
    rng = np.random.default_rng(0)
    acts = 0.05 * rng.standard_normal((3, 12, 12)).astype(np.float32)
    acts[:, 3:6, 7:10] += np.array([3.0, 2.0, 2.5], dtype=np.float32)[:, None, None]
    blob = np.zeros((12, 12), bool)
    blob[3:6, 7:10] = True
    handle = _handle(torch.zeros(2, 3 * 12 * 12), (12, 12))
    result = compute_cams(
        handle, torch.from_numpy(acts)[None], layers="features", method="eigencam"
    )
    raw = result.raw["features"][0]
    assert blob[np.unravel_index(raw.argmax(), raw.shape)]
    # The reversed sign rule would zero the blob and light everything else.
    assert raw[blob].min() > 10 * max(raw[~blob].max(), 1e-6)


# -- Grad-CAM: a channel with a negative mean gradient must subtract -----------------------------
def test_gradcam_keeps_negative_channel_weights():
    # Channel 2 has mean gradient -1 and activation 4 at the top-left corner: Grad-CAM's sum
    # 0.5 A0 + 0.625 A1 - A2 is negative there (ReLU -> 0). A ReLU on the weights would drop
    # the third term and give 1.75 instead.
    a = torch.tensor(
        [
            [[1.0, 2.0], [0.0, 3.0]],
            [[2.0, 3.0], [1.0, 1.0]],
            [[4.0, 0.0], [0.0, 0.0]],
        ]
    )
    g = torch.tensor(
        [
            [[1.0, -1.0], [2.0, 0.0]],
            [[0.5, 1.0], [-1.0, 2.0]],
            [[-1.0, -1.0], [-1.0, -1.0]],
        ]
    )
    handle = _handle(torch.stack([g.flatten(), -g.flatten()]), (2, 2))
    result = compute_cams(handle, a[None], layers="features", method="gradcam", targets=0)
    np.testing.assert_allclose(result.raw["features"][0], [[0.0, 2.875], [0.625, 2.125]], atol=1e-6)


# -- ROAD least-relevant-first -------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 warns inside the oracle
def test_road_lerf_matches_pytorch_grad_cam(small_cnn):
    perturbation = pytest.importorskip("pytorch_grad_cam.metrics.perturbation_confidence")
    road_module = pytest.importorskip("pytorch_grad_cam.metrics.road")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 16, 16, generator=gen)
    maps = np.random.default_rng(6).random((3, 16, 16)).astype(np.float32)
    targets = [1, 0, 3]
    p = small_cnn.predict(x)[np.arange(3), targets]
    # Theirs, least relevant first at percentile P, removes the (100 - P) % lowest pixels.
    for fraction, percentile in ((0.3, 70), (0.6, 40)):
        metric = perturbation.PerturbationConfidenceMetric(
            perturbation.RemoveLeastRelevantFirst(
                percentile, road_module.NoisyLinearImputer(noise=0.0)
            )
        )
        theirs = metric(
            x, maps, [ClassifierOutputSoftmaxTarget(t) for t in targets], small_cnn.model
        )
        ours = road(small_cnn, x, maps, targets, order="lerf", fractions=[fraction], noise=0.0)
        np.testing.assert_allclose(ours.values[:, 0] - p, theirs, atol=1e-5)
        morf = road(small_cnn, x, maps, targets, order="morf", fractions=[fraction], noise=0.0)
        # A reversed ranking would give MoRF's values, far outside the tolerance above.
        assert np.abs(morf.values - ours.values).max() > 1e-4


def test_road_lerf_removes_exactly_the_least_relevant_pixels():
    # A model whose score is the mean of the top-left 2x2 block of channel 0: LeRF at 75 %
    # removes the 12 pixels outside the block (least relevant), which leaves the score as is;
    # MoRF removes the block and imputes it from its (zero) neighbours.
    head = torch.zeros(2, 3 * 4 * 4)
    block = torch.zeros(3, 4, 4)
    block[0, :2, :2] = 0.25
    head[0] = block.flatten()
    handle = _handle(head, (4, 4))
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0, :2, :2] = 8.0
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :2, :2] = 1.0
    maps[0] += np.arange(16).reshape(4, 4) * 1e-3  # a strict order, same top four
    before = handle.predict(x)[0, 0]
    lerf = road(handle, x, maps, [0], order="lerf", fractions=[0.75], noise=0.0)
    morf = road(handle, x, maps, [0], order="morf", fractions=[0.25], noise=0.0)
    assert lerf.values[0, 0] == pytest.approx(before, abs=1e-6)  # logits 8 vs 0
    assert morf.values[0, 0] < before - 0.4


# -- embeddings metrics --------------------------------------------------------------------------
def test_silhouette_uses_its_metric():
    # Two classes that differ by direction, not by length: cosine separates them perfectly,
    # Euclidean distance mostly sees the lengths.
    rng = np.random.default_rng(1)
    lengths = rng.uniform(0.2, 10.0, size=200)
    angles = np.where(np.arange(200) < 100, 0.0, np.pi / 6) + rng.normal(0, 0.02, 200)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None]
    y = (np.arange(200) >= 100).astype(int)
    from sklearn.metrics import silhouette_score

    cosine = silhouette(x, y, metric="cosine", max_points=None)
    euclidean = silhouette(x, y, metric="euclidean", max_points=None)
    assert cosine == pytest.approx(silhouette_score(x, y, metric="cosine"), abs=1e-12)
    assert euclidean == pytest.approx(silhouette_score(x, y, metric="euclidean"), abs=1e-12)
    assert cosine > 0.95 and euclidean < 0.4


def test_knn_accuracy_never_counts_a_point_as_its_own_neighbour():
    # Random labels: a 1-NN that may find the point itself would score 1.0; held-out points
    # score at chance (1/10).
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 16))
    y = rng.integers(0, 10, size=400)
    accuracy = knn_accuracy(x, y, k=1, metric="euclidean")
    assert 0.0 <= accuracy < 0.25
