"""Exact numbers for every evaluation metric on hand-made cases, and agreement with
pytorch-grad-cam's ROAD and confidence-change metrics.

The hand-made model sees an 8 x 8 image whose object is the left half (columns 0-3). Its
probability of class 0 is exactly the mean of channel 0 over the object, ``s``: the logits are
``log(s)`` and ``log(1 - s)``. With the object at 1 and everything removed set to 0, a curve's
probability is the share of object pixels still present, so every area can be worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from explain import ExplainError, Preprocess, load_model
from explain.evaluation import (
    METRICS,
    auc,
    boxes_to_masks,
    confidence_change,
    deletion,
    energy_pointing_game,
    gaussian_maps,
    get_metric,
    insertion,
    metrics_table,
    noisy_linear_impute,
    pointing_game,
    random_maps,
    road,
    spearman,
    ssim,
)
from explain.evaluation.faithfulness import imputation_system, pixel_ranks

OBJECT = np.zeros((8, 8), dtype=bool)
OBJECT[:, :4] = True


class ObjectShare(nn.Module):
    """p(class 0) = mean of channel 0 over the object (columns 0-3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, :, :4].mean(dim=(1, 2)).clamp(1e-12, 1 - 1e-12)
        return torch.stack([s.log(), (1 - s).log()], dim=1)


@pytest.fixture(scope="module")
def toy():
    return load_model(
        ObjectShare(),
        weights=None,
        device="cpu",
        labels=["object", "rest"],
        preprocess=Preprocess(input_size=(8, 8)),
    )


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    x = torch.zeros(1, 3, 8, 8)
    x[0, 0][torch.from_numpy(OBJECT)] = 1.0
    return x


MAPS = {
    "exact": OBJECT.astype(np.float32),  # covers the object exactly
    "miss": (~OBJECT).astype(np.float32),  # everywhere but the object
    "constant": np.full((8, 8), 0.5, dtype=np.float32),  # no order: raster order
}


# -- faithfulness -------------------------------------------------------------------------------
# Deletion, 8 steps of 8 pixels, pixels -> 0:
#   exact:    p = 1, .75, .5, .25, 0, 0, 0, 0, 0  (object first)    -> AUC = 0.25
#   miss:     p = 1, 1, 1, 1, 1, .75, .5, .25, 0  (object last)     -> AUC = 0.75
#   constant: raster rows hold 4 object pixels each: p = 1 - k/8    -> AUC = 0.5
DELETION = {"exact": 0.25, "miss": 0.75, "constant": 0.5}
DELETION_CURVES = {
    "exact": [1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0],
    "miss": [1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0],
    "constant": [1 - k / 8 for k in range(9)],
}
# Insertion from zeros: the mirror images.
INSERTION = {"exact": 0.75, "miss": 0.25, "constant": 0.5}


@pytest.mark.parametrize("case", list(MAPS))
def test_deletion_exact(toy, image, case):
    curves = deletion(toy, image, MAPS[case][None], [0], steps=8, baseline="zero")
    np.testing.assert_allclose(curves.x, np.arange(9) / 8)
    np.testing.assert_allclose(curves.values[0], DELETION_CURVES[case], atol=1e-6)
    assert curves.scores[0] == pytest.approx(DELETION[case], abs=1e-6)


@pytest.mark.parametrize("case", list(MAPS))
def test_insertion_exact(toy, image, case):
    curves = insertion(toy, image, MAPS[case][None], [0], steps=8, baseline="zero")
    assert curves.scores[0] == pytest.approx(INSERTION[case], abs=1e-6)
    assert curves.values[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert curves.values[0, -1] == pytest.approx(1.0, abs=1e-6)


def test_batching_changes_nothing(toy, image):
    x = image.repeat(3, 1, 1, 1)
    maps = np.stack(list(MAPS.values()))
    one = deletion(toy, x, maps, [0, 0, 0], steps=8, batch_size=1)
    many = deletion(toy, x, maps, [0, 0, 0], steps=8, batch_size=64)
    np.testing.assert_array_equal(one.values, many.values)
    np.testing.assert_allclose(one.scores, [0.25, 0.75, 0.5], atol=1e-6)


def test_auc_is_the_trapezoid_rule():
    x = np.array([0.0, 0.5, 1.0])
    assert auc(x, np.array([[1.0, 1.0, 1.0]]))[0] == pytest.approx(1.0)
    assert auc(x, np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(0.25)
    assert auc(x, np.array([[0.0, 1.0, 0.0]]))[0] == pytest.approx(0.5)


def test_pixel_ranks_are_stable_on_ties():
    ranks = pixel_ranks(np.array([[[0.5, 0.5], [0.9, 0.5]]]))
    np.testing.assert_array_equal(ranks[0], [1, 2, 0, 3])


# Average Drop: the model sees x * map.
#   exact: object intact, p_map = 1 -> drop 0;   miss: p_map = 0 -> drop 100;
#   constant 0.5: p_map = 0.5 -> drop 50.  Increase in Confidence: never (0).
@pytest.mark.parametrize(("case", "drop"), [("exact", 0.0), ("miss", 100.0), ("constant", 50.0)])
def test_average_drop_exact(toy, image, case, drop):
    cc = confidence_change(toy, image, MAPS[case][None], [0])
    assert cc.average_drop[0] == pytest.approx(drop, abs=1e-6)
    assert cc.increase_in_confidence[0] == 0.0


# -- ROAD imputation ----------------------------------------------------------------------------
GRID = np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3)  # 1 2 3 / 4 5 6 / 7 8 9


def test_imputation_of_the_centre_is_the_weighted_neighbour_mean():
    removed = np.zeros((3, 3), dtype=bool)
    removed[1, 1] = True
    out = noisy_linear_impute(GRID, removed, noise=0.0)
    # 1/6 (2 + 4 + 6 + 8) + 1/12 (1 + 3 + 7 + 9) = 20/6 + 20/12 = 5
    assert out[0, 1, 1] == pytest.approx(5.0)
    np.testing.assert_array_equal(out[0][~removed], GRID[0][~removed])


def test_imputation_of_a_corner_uses_the_neighbours_inside():
    removed = np.zeros((3, 3), dtype=bool)
    removed[0, 0] = True
    out = noisy_linear_impute(GRID, removed, noise=0.0)
    # (1/6 * 2 + 1/6 * 4 + 1/12 * 5) / (1/6 + 1/6 + 1/12) = (17/12) / (5/12) = 3.4
    assert out[0, 0, 0] == pytest.approx(3.4)


def test_imputation_of_two_linked_pixels_solves_the_system():
    removed = np.zeros((3, 3), dtype=bool)
    removed[0, 0] = removed[1, 1] = True
    out = noisy_linear_impute(GRID, removed, noise=0.0)
    # 5 v00 - v11 = 12 and 12 v11 - v00 = 59  ->  v00 = 203/59, v11 = 307/59
    assert out[0, 0, 0] == pytest.approx(203 / 59)
    assert out[0, 1, 1] == pytest.approx(307 / 59)
    np.testing.assert_array_equal(out[0][~removed], GRID[0][~removed])


def test_imputation_system_is_symmetric():
    removed = np.random.default_rng(0).random((6, 7)) < 0.5
    _, a, _ = imputation_system(removed)
    assert abs(a - a.T).max() < 1e-15


def test_imputation_noise_touches_only_removed_pixels():
    rng = np.random.default_rng(1)
    image = rng.random((3, 10, 10)).astype(np.float32)
    removed = rng.random((10, 10)) < 0.4
    clean = noisy_linear_impute(image, removed, noise=0.0)
    noisy = noisy_linear_impute(image, removed, noise=0.1, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(noisy[:, ~removed], image[:, ~removed])
    diff = (noisy - clean)[:, removed]
    assert 0.05 < diff.std() < 0.15 and np.abs(diff).min() > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 warns inside the oracle
def test_imputation_matches_pytorch_grad_cam():
    road_module = pytest.importorskip("pytorch_grad_cam.metrics.road")
    rng = np.random.default_rng(3)
    image = rng.random((3, 16, 16)).astype(np.float32)
    removed = rng.random((16, 16)) < 0.6
    ours = noisy_linear_impute(image, removed, noise=0.0)
    imputer = road_module.NoisyLinearImputer(noise=0.0)
    keep = torch.from_numpy((~removed).astype(np.float32))  # theirs: 1 = kept
    theirs = imputer(torch.from_numpy(image), keep).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_road_matches_pytorch_grad_cam(small_cnn):
    perturbation = pytest.importorskip("pytorch_grad_cam.metrics.perturbation_confidence")
    road_module = pytest.importorskip("pytorch_grad_cam.metrics.road")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 16, 16, generator=gen)
    maps = np.random.default_rng(4).random((3, 16, 16)).astype(np.float32)
    targets = [0, 2, 3]
    p = small_cnn.predict(x)[np.arange(3), targets]
    for fraction, percentile in ((0.5, 50), (0.8, 20)):
        # Theirs removes pixels at or above the percentile: the same 128 / 205 of 256 pixels.
        assert (maps >= np.percentile(maps, percentile, axis=(1, 2), keepdims=True)).sum() == (
            3 * round(fraction * 256)
        )
        metric = perturbation.PerturbationConfidenceMetric(
            perturbation.RemoveMostRelevantFirst(
                percentile, road_module.NoisyLinearImputer(noise=0.0)
            )
        )
        theirs = metric(
            x, maps, [ClassifierOutputSoftmaxTarget(t) for t in targets], small_cnn.model
        )
        ours = road(small_cnn, x, maps, targets, order="morf", fractions=[fraction], noise=0.0)
        np.testing.assert_allclose(ours.values[:, 0] - p, theirs, atol=1e-5)


def test_road_is_deterministic_and_batch_independent(small_cnn):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    maps = np.random.default_rng(5).random((2, 16, 16))
    a = road(small_cnn, x, maps, [1, 1], order="lerf", fractions=[0.3, 0.7], seed=7, batch_size=1)
    b = road(small_cnn, x, maps, [1, 1], order="lerf", fractions=[0.3, 0.7], seed=7, batch_size=8)
    np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    np.testing.assert_allclose(a.scores, a.values.mean(axis=1))


def test_confidence_change_matches_pytorch_grad_cam(small_cnn):
    cam_mult = pytest.importorskip("pytorch_grad_cam.metrics.cam_mult_image")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, 16, 16, generator=gen)
    maps = np.random.default_rng(6).random((6, 16, 16)).astype(np.float32)
    targets = [0, 1, 2, 3, 0, 1]
    wrapped = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    ours = confidence_change(small_cnn, x, maps, targets)
    drop = cam_mult.DropInConfidence()(x, maps, wrapped, small_cnn.model)  # p - p_map, >= 0
    increase = cam_mult.IncreaseInConfidence()(x, maps, wrapped, small_cnn.model)
    np.testing.assert_allclose(ours.average_drop * ours.p / 100, drop, atol=1e-5)
    np.testing.assert_array_equal(ours.increase_in_confidence / 100, increase)


# -- localisation -------------------------------------------------------------------------------
def test_pointing_game_and_energy_exact():
    masks = np.stack([OBJECT] * 3)
    maps = np.stack(list(MAPS.values()))  # exact, miss, constant
    np.testing.assert_allclose(pointing_game(maps, masks), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(energy_pointing_game(maps, masks), [1.0, 0.0, 0.5])


def test_pointing_game_tolerance_in_pixels():
    peak = np.zeros((1, 8, 8))
    peak[0, 4, 5] = 1.0  # two columns right of the object's edge (column 3)
    mask = OBJECT[None]
    assert pointing_game(peak, mask, tolerance=1.0)[0] == 0.0
    assert pointing_game(peak, mask, tolerance=2.0)[0] == 1.0


def test_localisation_of_undefined_cases_is_nan():
    empty = np.zeros((1, 8, 8), dtype=bool)
    assert np.isnan(pointing_game(np.ones((1, 8, 8)), empty)[0])
    assert np.isnan(energy_pointing_game(np.zeros((1, 8, 8)), OBJECT[None])[0])


def test_boxes_to_masks():
    masks = boxes_to_masks([(1, 2, 4, 3), None], (5, 6))
    assert masks.shape == (2, 5, 6)
    assert masks[0].sum() == 3 and masks[0, 2, 1:4].all() and not masks[1].any()


# -- randomisation similarity -------------------------------------------------------------------
def test_spearman_matches_scipy_and_constant_maps_give_zero():
    rng = np.random.default_rng(7)
    a = rng.random((4, 10, 10))
    b = a + rng.random((4, 10, 10))
    b[0] = np.round(b[0], 1)  # ties
    expected = [spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(4)]
    np.testing.assert_allclose(spearman(a, b), expected, atol=1e-12)
    assert spearman(a[:1], np.ones((1, 10, 10)))[0] == 0.0


YY, XX = np.mgrid[0:24, 0:24] / 23
SSIM_A = 0.5 + 0.5 * np.sin(6 * XX) * np.cos(4 * YY)


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        # scikit-image 0.26 structural_similarity(data_range=1, gaussian_weights=True,
        # sigma=1.5, use_sample_covariance=False) on these maps:
        (np.clip(SSIM_A + 0.2 * np.cos(9 * XX + 5 * YY), 0, 1), 0.5816986175168019),
        (SSIM_A**2, 0.7117410309888208),
        (1 - SSIM_A, -0.6670669505929865),
        (SSIM_A, 1.0),
    ],
)
def test_ssim_matches_scikit_image(other, expected):
    assert ssim(SSIM_A[None], other[None])[0] == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_scikit_image_live():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(8)
    a, b = rng.random((2, 20, 30))
    ref = metrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(a[None], b[None])[0] == pytest.approx(ref, abs=1e-10)


# -- baselines and metadata ---------------------------------------------------------------------
def test_baseline_maps():
    a = random_maps(3, (5, 6), seed=1)
    assert a.shape == (3, 5, 6) and a.dtype == np.float32
    np.testing.assert_allclose(a.min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(a.max(axis=(1, 2)), 1.0)
    np.testing.assert_array_equal(a, random_maps(3, (5, 6), seed=1))
    np.testing.assert_array_equal(a[2], random_maps(1, (5, 6), seed=1, start=2)[0])
    assert not np.array_equal(a, random_maps(3, (5, 6), seed=2))
    pixels = random_maps(2, (4, 4), seed=1, grid=None)  # independent noise per pixel
    assert pixels.shape == (2, 4, 4) and pixels.min() >= 0 and pixels.max() < 1
    smooth = random_maps(4, (28, 28), seed=0)  # 7 x 7 noise, bilinear: 4 pixels per cell
    noisy = random_maps(4, (28, 28), seed=0, grid=None)
    assert np.abs(np.diff(smooth, axis=2)).mean() < np.abs(np.diff(noisy, axis=2)).mean() / 3
    g = gaussian_maps(2, (4, 4), sigma=0.25)
    np.testing.assert_allclose(g[0], g[0].T)
    # centre pixels at distance sqrt(0.5) from the centre, s = 1: exp(-0.25); max scaled to 1.
    np.testing.assert_allclose(g[0, 1, 1], 1.0)
    np.testing.assert_allclose(g[0, 0, 0], np.exp(-(2 * 1.5**2 - 0.5) / 2))


def test_every_metric_declares_category_and_direction():
    table = metrics_table()
    assert list(table["name"]) == list(METRICS)
    assert set(table["category"]) == {"faithfulness", "localisation", "randomisation"}
    assert set(table["direction"]) <= {"higher", "lower"}
    assert all(len(d) > 40 for d in table["description"])
    assert get_metric("Deletion").direction == "lower"
    assert get_metric("pointing-game").needs_masks
    with pytest.raises(ExplainError, match="Unknown metric"):
        get_metric("accuracy")
