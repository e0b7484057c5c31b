"""How well each layer separates the classes, how faithful its 2-D picture is, and how similar
layers are to each other (linear CKA).

Every per-layer metric is described in :data:`METRICS` with its direction ("higher is better")
and category, so a dashboard can show all of them without special cases. Metrics that need
labels skip unlabelled images (label -1) and give NaN when fewer than two classes remain.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from explain.metric_info import MetricInfo
from explain.progress import Progress, notify

from .datasets import stratified_indices

__all__ = [
    "METRICS",
    "MetricInfo",
    "cka_matrix",
    "knn_accuracy",
    "layer_metrics",
    "linear_cka",
    "linear_probe_accuracy",
    "silhouette",
    "trustworthiness",
]


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo(
            "silhouette",
            "Silhouette",
            "class separation",
            "higher",
            "How much closer images are to their own class than to the nearest other "
            "class (cosine distance on the pooled features).",
            decimals=2,
            value_range=(-1.0, 1.0),
            reference="Rousseeuw 1987, Silhouettes (J. Comput. Appl. Math.)",
        ),
        MetricInfo(
            "knn_accuracy",
            "k-NN accuracy",
            "class separation",
            "higher",
            "Cross-validated accuracy of a k-nearest-neighbour vote (cosine distance) on "
            "the pooled features.",
            unit="fraction",
            decimals=1,
            unit_label="% correct",
        ),
        MetricInfo(
            "linear_probe_accuracy",
            "Linear-probe accuracy",
            "linear separability",
            "higher",
            "Cross-validated accuracy of a logistic regression trained on the "
            "standardised pooled features.",
            unit="fraction",
            decimals=1,
            unit_label="% correct",
            reference="Alain & Bengio 2016, Understanding intermediate layers using linear "
            "classifier probes",
        ),
        MetricInfo(
            "trustworthiness",
            "Trustworthiness",
            "faithfulness",
            "higher",
            "How far the neighbours seen in the 2-D picture are true neighbours in the "
            "features (Venna & Kaski 2001); 1 = no false neighbours.",
            decimals=2,
            reference="Venna & Kaski 2001, Neighborhood preservation in nonlinear projection "
            "methods (ICANN)",
        ),
    )
}


def _labelled(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a label (>= 0)."""
    labels = np.asarray(labels)
    keep = labels >= 0
    return np.asarray(features)[keep], labels[keep]


def _sample(n: int, labels: np.ndarray | None, max_points: int | None, seed: int) -> np.ndarray:
    if max_points is None or n <= max_points:
        return np.arange(n)
    return stratified_indices(labels if labels is not None else np.zeros(n), max_points, seed)


def _folds(labels: np.ndarray, folds: int) -> int:
    """Folds usable for stratified cross-validation (0 when there are too few samples)."""
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:
        return 0
    n = min(folds, int(counts.min()))
    return n if n >= 2 else 0


def silhouette(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    metric: str = "cosine",
    max_points: int | None = 3000,
    seed: int = 0,
) -> float:
    """Mean silhouette coefficient of the classes.

    Args:
        features: ``(N, D)``; labels: ``(N,)`` (-1 rows ignored).
        metric: distance (``"cosine"``, ``"euclidean"``, ...).
        max_points: evaluate on a stratified sample of at most this many (it costs O(N^2)).

    Returns:
        In [-1, 1]; NaN with fewer than 2 classes.
    """
    from sklearn.metrics import silhouette_score

    x, y = _labelled(features, labels)
    rows = _sample(len(x), y, max_points, seed)
    x, y = x[rows], y[rows]
    if len(np.unique(y)) < 2 or len(np.unique(y)) >= len(y):
        return math.nan
    return float(silhouette_score(x, y, metric=metric))


def _cv_accuracy(
    make_model: Callable[[int], Any],
    features: np.ndarray,
    labels: np.ndarray,
    folds: int,
    seed: int,
) -> float:
    """Mean stratified k-fold accuracy of ``make_model(training size)`` on the labelled rows."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = _labelled(features, labels)
    n_folds = _folds(y, folds)
    if not n_folds:
        return math.nan
    splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    model = make_model(len(y) - len(y) // n_folds)
    return float(cross_val_score(model, x, y, cv=splits).mean())


def knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 10,
    folds: int = 5,
    metric: str = "cosine",
    seed: int = 0,
) -> float:
    """Stratified k-fold accuracy of a k-nearest-neighbour classifier.

    Args:
        features: ``(N, D)``; labels: ``(N,)`` (-1 rows ignored).
        k: neighbours that vote; folds: cross-validation folds (fewer when a class is small).

    Returns:
        Mean accuracy over the folds, in [0, 1]; NaN when cross-validation is impossible.
    """
    from sklearn.neighbors import KNeighborsClassifier

    def make(n_train: int) -> Any:
        neighbours = max(1, min(k, n_train - 1))
        return KNeighborsClassifier(n_neighbors=neighbours, metric=metric, algorithm="brute")

    return _cv_accuracy(make, features, labels, folds, seed)


def linear_probe_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    C: float = 1.0,
    max_iter: int = 500,
    seed: int = 0,
) -> float:
    """Stratified k-fold accuracy of a logistic regression on standardised features.

    Returns:
        Mean accuracy over the folds, in [0, 1]; NaN when cross-validation is impossible.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(_n_train: int) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))

    with warnings.catch_warnings():
        # A probe that has not fully converged still measures separability well enough.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _cv_accuracy(make, features, labels, folds, seed)


def trustworthiness(
    features: np.ndarray,
    layout: np.ndarray,
    *,
    n_neighbors: int = 10,
    metric: str = "euclidean",
    max_points: int | None = 3000,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> float:
    """Trustworthiness of a low-dimensional layout of ``features`` (sklearn's definition).

    Args:
        features: ``(N, D)``; layout: ``(N, k)`` of the same rows.
        n_neighbors: neighbourhood size compared.
        metric: distance in the feature space (the layout always uses Euclidean distance).
        max_points: evaluate on a (stratified, when ``labels`` are given) sample of at most
            this many rows (it costs O(N^2)).

    Returns:
        In [0, 1]; 1 means every neighbour in the picture is a neighbour in the features.
    """
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    features, layout = np.asarray(features), np.asarray(layout)
    rows = _sample(len(features), labels, max_points, seed)
    x, emb = features[rows], layout[rows]
    n_neighbors = min(n_neighbors, (len(x) - 1) // 2)
    if n_neighbors < 1:
        return math.nan
    return float(sk_trustworthiness(x, emb, n_neighbors=n_neighbors, metric=metric))


# -- representational similarity ----------------------------------------------------------------
def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def _hsic(x: np.ndarray, y: np.ndarray) -> float:
    """``||y^T x||_F^2`` for centred ``x`` (N, Dx) and ``y`` (N, Dy), by the cheaper route."""
    n, dx, dy = len(x), x.shape[1], y.shape[1]
    if n * dx * dy <= n * n * (dx + dy):
        return float(np.sum((y.T @ x) ** 2))
    return float(np.sum((x @ x.T) * (y @ y.T)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations.

    ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` with columns centred; invariant
    to orthogonal transforms and isotropic scaling of either side.

    Args:
        x: ``(N, Dx)``; y: ``(N, Dy)``, the same N examples in the same order.

    Returns:
        In [0, 1]; NaN when either side is constant.
    """
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same examples on both sides, got {len(x)} and {len(y)}.")
    xc, yc = _centred(x), _centred(y)
    denominator = math.sqrt(_hsic(xc, xc) * _hsic(yc, yc))
    return _hsic(xc, yc) / denominator if denominator > 0 else math.nan


def cka_matrix(features: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Linear CKA between every pair of layers.

    Args:
        features: layer -> ``(N, D)`` (``acts.features``).

    Returns:
        (layer names, ``(L, L)`` float64 symmetric matrix with ones on the diagonal).
    """
    names = list(features)
    centred = [_centred(features[name]) for name in names]
    self_hsic = [_hsic(c, c) for c in centred]
    matrix = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            denominator = math.sqrt(self_hsic[i] * self_hsic[j])
            value = _hsic(centred[i], centred[j]) / denominator if denominator > 0 else math.nan
            matrix[i, j] = matrix[j, i] = value
    for i, value in enumerate(self_hsic):
        if value <= 0:
            matrix[i, i] = math.nan
    return names, matrix


# -- per-layer table ------------------------------------------------------------------------------
def layer_metrics(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    layouts: Mapping[str, np.ndarray] | None = None,
    *,
    k: int = 10,
    folds: int = 5,
    seed: int = 0,
    metrics: Sequence[str] = tuple(METRICS),
    trust_metric: str = "euclidean",
    progress: Progress | None = None,
) -> Any:
    """One row per layer (depth order) with the chosen :data:`METRICS`.

    Args:
        features: layer -> ``(N, D)`` pooled features (``acts.features``).
        labels: ``(N,)`` class per row, -1 where unknown (``acts.labels``).
        layouts: layer -> ``(N, 2|3)`` projection, for trustworthiness (NaN without).
        k, folds, seed: for the k-NN and linear-probe cross-validation.
        metrics: which columns to compute.
        trust_metric: feature-space distance of trustworthiness (the projection's metric).
        progress: ``progress(done, total, message)`` after each layer
            (:data:`explain.progress.Progress`).

    Returns:
        ``pandas.DataFrame`` with columns ``layer``, ``depth`` (0 = shallowest), ``dim`` and one
        per metric.
    """
    import pandas as pd

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}; known: {list(METRICS)}.")
    labels = np.asarray(labels)
    rows = []
    for depth, (name, x) in enumerate(features.items()):
        row: dict[str, Any] = {"layer": name, "depth": depth, "dim": int(x.shape[1])}
        if "silhouette" in metrics:
            row["silhouette"] = silhouette(x, labels, seed=seed)
        if "knn_accuracy" in metrics:
            row["knn_accuracy"] = knn_accuracy(x, labels, k=k, folds=folds, seed=seed)
        if "linear_probe_accuracy" in metrics:
            row["linear_probe_accuracy"] = linear_probe_accuracy(x, labels, folds=folds, seed=seed)
        if "trustworthiness" in metrics:
            layout = None if layouts is None else layouts.get(name)
            row["trustworthiness"] = (
                math.nan
                if layout is None
                else trustworthiness(x, layout, metric=trust_metric, labels=labels, seed=seed)
            )
        rows.append(row)
        notify(progress, depth + 1, len(features), f"layer metrics: {name}")
    return pd.DataFrame(
        rows, columns=["layer", "depth", "dim", *[m for m in METRICS if m in metrics]]
    )
