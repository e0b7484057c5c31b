"""Layer metrics on data with known answers, and linear CKA's defining properties checked
numerically (against a direct implementation of Kornblith et al. 2019, eq. for linear HSIC)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embeddings import (
    METRICS,
    cka_matrix,
    knn_accuracy,
    layer_metrics,
    linear_cka,
    linear_probe_accuracy,
    silhouette,
    trustworthiness,
)


def _orthogonal(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def _hsic_cka(x, y):
    """CKA from centred Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return np.sum(k * l_) / math.sqrt(np.sum(k * k) * np.sum(l_ * l_))


@pytest.fixture(scope="module")
def reps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 30))
    y = np.tanh(x @ rng.normal(size=(30, 20))) + 0.3 * rng.normal(size=(120, 20))
    z = rng.normal(size=(120, 50))
    return x, y, z


def test_linear_cka_against_the_gram_matrix_formula(reps):
    x, y, z = reps
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-10)
    assert linear_cka(x, z) == pytest.approx(_hsic_cka(x, z), rel=1e-10)
    # Few examples, many features: the Gram route is taken; same value.
    assert linear_cka(x[:10], z[:10]) == pytest.approx(_hsic_cka(x[:10], z[:10]), rel=1e-10)


def test_cka_invariances(reps):
    x, y, _ = reps
    base = linear_cka(x, y)
    assert linear_cka(x @ _orthogonal(30, 1), y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, y @ _orthogonal(20, 2)) == pytest.approx(base, abs=1e-12)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x + 100.0, y) == pytest.approx(base, abs=1e-10)  # centred
    # Not invariant to an arbitrary invertible linear map (that is what makes it linear CKA).
    stretch = np.diag(np.linspace(0.1, 10, 30))
    assert abs(linear_cka(x @ stretch, y) - base) > 1e-3


def test_cka_matrix(reps):
    x, y, z = reps
    names, matrix = cka_matrix({"x": x, "y": y, "z": z, "xrot": 3 * x @ _orthogonal(30, 4)})
    assert names == ["x", "y", "z", "xrot"] and matrix.shape == (4, 4)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-12)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert matrix[0, 3] == pytest.approx(1.0, abs=1e-12)
    assert matrix[0, 1] == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert matrix.min() >= 0 and matrix.max() <= 1 + 1e-12
    # Independent random features: low similarity (their expected CKA shrinks with N).
    assert matrix[0, 2] < 0.35
    assert math.isnan(cka_matrix({"const": np.ones((10, 3)), "x": x[:10]})[1][0, 0])


def _clusters(separation, n_per=40, classes=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim)) * separation
    x = np.concatenate([m + rng.normal(size=(n_per, dim)) for m in means])
    return x, np.repeat(np.arange(classes), n_per)


def test_separation_metrics_know_easy_from_impossible():
    easy, labels = _clusters(separation=20.0)
    noise = np.random.default_rng(1).normal(size=easy.shape)
    assert knn_accuracy(easy, labels) == 1.0
    assert linear_probe_accuracy(easy, labels) == 1.0
    assert silhouette(easy, labels, metric="euclidean") > 0.8
    assert knn_accuracy(noise, labels) < 0.45  # chance is 0.25
    assert linear_probe_accuracy(noise, labels) < 0.45
    assert abs(silhouette(noise, labels)) < 0.05


def test_metrics_ignore_unlabelled_rows_and_give_nan_without_classes():
    x, labels = _clusters(separation=20.0)
    partly = labels.copy()
    partly[::3] = -1
    assert knn_accuracy(x, partly) == 1.0
    none = np.full(len(x), -1)
    assert math.isnan(knn_accuracy(x, none))
    assert math.isnan(silhouette(x, none))
    assert math.isnan(linear_probe_accuracy(x, np.zeros(len(x), dtype=int)))


def test_trustworthiness():
    x, _ = _clusters(separation=3.0, dim=2)
    assert trustworthiness(x, x) == pytest.approx(1.0)
    assert trustworthiness(x, x @ _orthogonal(2, 0) * 5) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(x)
    assert trustworthiness(x, shuffled) < 0.7
    big = np.random.default_rng(1).normal(size=(400, 5))
    sampled = trustworthiness(big, big[:, :2], max_points=200)
    assert abs(sampled - trustworthiness(big, big[:, :2])) < 0.05


def test_layer_metrics_table():
    easy, labels = _clusters(separation=20.0)
    noise = np.random.default_rng(3).normal(size=easy.shape)
    table = layer_metrics({"early": noise, "late": easy}, labels, layouts={"late": easy[:, :2]})
    assert list(table.columns) == ["layer", "depth", "dim", *METRICS]
    assert table["layer"].tolist() == ["early", "late"] and table["dim"].tolist() == [16, 16]
    late = table.set_index("layer").loc["late"]
    assert late["knn_accuracy"] == 1.0 and late["linear_probe_accuracy"] == 1.0
    assert math.isnan(table.set_index("layer").loc["early", "trustworthiness"])
    assert 0 < late["trustworthiness"] <= 1
    assert all(METRICS[name].higher_is_better for name in METRICS)
    with pytest.raises(ValueError, match="Unknown metrics"):
        layer_metrics({"a": easy}, labels, metrics=["accuracy"])
