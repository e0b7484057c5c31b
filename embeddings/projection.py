"""2-D / 3-D projections of pooled features (PCA, t-SNE, UMAP), and aligning them across layers.

t-SNE and UMAP first reduce the features with PCA to ``pca_dim`` (50) dimensions: it removes
noise and makes them several times faster. UMAP uses the cosine metric by default (pooled CNN
features differ more in direction than in length). Every method is reproducible with ``seed``;
results are memoised in memory, and on disk when a ``cache_dir`` is given.

Layouts of several layers are made comparable with orthogonal Procrustes: each layer's layout is
rotated (or mirrored), scaled and shifted onto its neighbour's, on the points they share, so a
cluster keeps its place from panel to panel.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes

from explain.progress import Progress, notify

from .cache import load_npz, save_npz_atomic
from .errors import ProjectionError

METHODS = ("pca", "tsne", "umap")
#: Default metric of each method (after the PCA step).
DEFAULT_METRIC = {"pca": "euclidean", "tsne": "euclidean", "umap": "cosine"}
#: t-SNE runs single-threaded below this many points (faster there, and robust to busy CPUs).
TSNE_SERIAL_BELOW = 500
#: Fewest points each method accepts.
MIN_POINTS = {"pca": 2, "tsne": 5, "umap": 5}

_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
_MEMORY_SIZE = 64


def _check_features(features: Any, method: str, dim: int) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ProjectionError(f"Features must be a 2-D array (N, D), got shape {x.shape}.")
    if method not in METHODS:
        raise ProjectionError(
            f"Unknown projection method {method!r}.", hint=f"use one of {', '.join(METHODS)}."
        )
    if dim not in (2, 3):
        raise ProjectionError(f"dim must be 2 or 3, got {dim}.")
    if len(x) < MIN_POINTS[method]:
        raise ProjectionError(
            f"{method} needs at least {MIN_POINTS[method]} points, got {len(x)}.",
            hint="collect activations of more images.",
        )
    if x.shape[1] < dim and method == "pca":
        raise ProjectionError(
            f"PCA to {dim} dimensions needs at least {dim} features, got {x.shape[1]}."
        )
    if not np.isfinite(x).all():
        raise ProjectionError(
            "The features contain NaN or infinite values.",
            hint="check the model's outputs at this layer.",
        )
    return np.ascontiguousarray(x)


def reduce_pca(x: np.ndarray, n_components: int | None, seed: int = 0) -> np.ndarray:
    """PCA to ``n_components`` when the features have more dimensions (and points) than that.

    Args:
        x: ``(N, D)`` float32.
        n_components: target width; ``None`` or ``0`` keeps ``x`` as is.

    Returns:
        ``(N, min(D, n_components))`` float32.
    """
    if not n_components or x.shape[1] <= n_components or len(x) <= n_components:
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=n_components, random_state=seed).fit_transform(x).astype(np.float32)


def _pca(x: np.ndarray, dim: int, seed: int, **_: Any) -> np.ndarray:
    from sklearn.decomposition import PCA

    n = min(dim, x.shape[1], len(x))
    out = PCA(n_components=n, random_state=seed).fit_transform(x)
    return np.pad(out, ((0, 0), (0, dim - n))) if n < dim else out


def _tsne(
    x: np.ndarray,
    dim: int,
    seed: int,
    metric: str,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    **_: Any,
) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3))
    tsne = TSNE(
        n_components=dim,
        perplexity=perplexity,
        metric=metric,
        init="pca",
        learning_rate="auto",
        max_iter=max_iter,
        random_state=seed,
    )
    # Each of the 1,000 iterations is one OpenMP region; for small N its barrier costs more
    # than the work, and 20x more on a busy machine (measured: 120 points 0.4 s vs 7 s).
    with threadpool_limits(1 if len(x) < TSNE_SERIAL_BELOW else None, user_api="openmp"):
        return tsne.fit_transform(x)


def _umap(
    x: np.ndarray,
    dim: int,
    seed: int,
    metric: str,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    **_: Any,
) -> np.ndarray:
    try:
        import umap  # slow to import (numba): only when a UMAP projection runs
    except ImportError as exc:
        raise ProjectionError(
            "UMAP projections need the umap-learn package, which is not installed.",
            hint='pip install "gradcam-explorer[embeddings]", or use method="pca" or "tsne".',
        ) from exc

    reducer = umap.UMAP(
        n_components=dim,
        n_neighbors=max(2, min(n_neighbors, len(x) - 1)),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1,
        init="spectral" if len(x) > dim + 2 else "random",
    )
    with warnings.catch_warnings():
        # A seed makes UMAP single-threaded and say so; spectral init may warn on tiny graphs.
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        return reducer.fit_transform(x)


_RUNNERS: dict[str, Callable[..., np.ndarray]] = {"pca": _pca, "tsne": _tsne, "umap": _umap}


def projection_key(x: np.ndarray, params: Mapping[str, Any]) -> str:
    """Hash of the features' bytes and shape and the projection's parameters."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"shape": x.shape, **params}, sort_keys=True, default=str).encode())
    digest.update(memoryview(x).cast("B"))
    return digest.hexdigest()


def project(
    features: np.ndarray,
    method: str = "umap",
    dim: int = 2,
    seed: int = 0,
    *,
    pca_dim: int | None = 50,
    metric: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options: Any,
) -> np.ndarray:
    """Project ``(N, D)`` features to ``(N, dim)`` with PCA, t-SNE or UMAP.

    Args:
        features: ``(N, D)`` pooled features (any float dtype).
        method: ``"umap"``, ``"tsne"`` or ``"pca"``.
        dim: 2 or 3.
        seed: the random state; the same seed gives the same layout.
        pca_dim: before t-SNE and UMAP, reduce to this many dimensions with PCA (``None``:
            never).
        metric: distance for t-SNE / UMAP (default: ``"cosine"`` for UMAP, ``"euclidean"``
            for t-SNE).
        cache_dir: also keep results on disk in this folder (memory only by default).
        **options: passed on: ``n_neighbors``, ``min_dist`` (UMAP); ``perplexity``,
            ``max_iter`` (t-SNE).

    Returns:
        ``(N, dim)`` float32 coordinates (a fresh array; caching never aliases).

    Raises:
        ProjectionError: unknown method, too few points, non-finite features.
    """
    x = _check_features(features, method, dim)
    metric = metric or DEFAULT_METRIC[method]
    params = {
        "method": method,
        "dim": dim,
        "seed": seed,
        "metric": metric,
        **options,
        "pca_dim": None if method == "pca" else pca_dim,
    }
    key = projection_key(x, params)
    with _MEMORY_LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key].copy()
    path = Path(cache_dir).expanduser() / f"{method}-{key}.npz" if cache_dir else None
    stored = load_npz(path) if path is not None and path.is_file() else None
    if stored is not None:
        out = stored["xy"]
    else:
        reduced = x if method == "pca" else reduce_pca(x, pca_dim, seed)
        out = np.asarray(
            _RUNNERS[method](reduced, dim, seed, metric=metric, **options), dtype=np.float32
        )
        if path is not None:
            save_npz_atomic(path, {"xy": out})
    with _MEMORY_LOCK:
        _MEMORY[key] = out
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return out.copy()


def clear_memory_cache() -> None:
    """Forget the projections memoised in this process."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


# -- alignment --------------------------------------------------------------------------------
def procrustes_align(
    layout: np.ndarray, reference: np.ndarray, shared: np.ndarray | None = None
) -> np.ndarray:
    """Rotate or mirror, scale and shift ``layout`` onto ``reference`` (orthogonal Procrustes).

    The transform ``y = s (x - m_x) R + m_ref`` minimises ``||y - reference||_F`` over the
    shared points with ``R`` orthogonal; ``s`` matches the spread (RMS radius) of the
    reference, so aligned panels share a scale.

    Args:
        layout: ``(N, k)`` coordinates to move.
        reference: ``(M, k)`` coordinates to match.
        shared: ``(P, 2)`` int pairs ``(row in layout, row in reference)`` of the same points;
            ``None`` when both have the same rows.

    Returns:
        ``(N, k)`` float32, the whole ``layout`` moved.
    """
    layout = np.asarray(layout, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if shared is None:
        if layout.shape != reference.shape:
            raise ProjectionError(
                f"Layouts of shapes {layout.shape} and {reference.shape} "
                "cannot be aligned without the rows they share."
            )
        a, b = layout, reference
    else:
        pairs = np.asarray(shared, dtype=np.int64).reshape(-1, 2)
        a, b = layout[pairs[:, 0]], reference[pairs[:, 1]]
    if len(a) < 2:
        return layout.astype(np.float32)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - mean_a, b - mean_b
    norm_a, norm_b = np.linalg.norm(a0), np.linalg.norm(b0)
    if norm_a == 0 or norm_b == 0:
        return (layout - mean_a + mean_b).astype(np.float32)
    rotation, _ = orthogonal_procrustes(a0 / norm_a, b0 / norm_b)
    return ((layout - mean_a) @ rotation * (norm_b / norm_a) + mean_b).astype(np.float32)


def align_layouts(layouts: Mapping[str, np.ndarray], anchor: str = "last") -> dict[str, np.ndarray]:
    """Align a sequence of layouts (same points, in depth order) neighbour to neighbour.

    Args:
        layouts: layer -> ``(N, k)`` coordinates, in depth order.
        anchor: ``"last"`` keeps the deepest layer's layout as is and aligns backwards (the
            panel users read first stays the canonical one); ``"first"`` the other way.

    Returns:
        layer -> ``(N, k)`` float32, in the same order.
    """
    names = list(layouts)
    order = names[::-1] if anchor == "last" else names
    aligned: dict[str, np.ndarray] = {}
    previous = None
    for name in order:
        current = np.asarray(layouts[name], dtype=np.float32)
        aligned[name] = current if previous is None else procrustes_align(current, previous)
        previous = aligned[name]
    return {name: aligned[name] for name in names}


def project_layers(
    features: Mapping[str, np.ndarray],
    method: str = "umap",
    dim: int = 2,
    seed: int = 0,
    *,
    align: bool = True,
    progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """Project every layer's features and align the layouts neighbour to neighbour.

    Args:
        features: layer -> ``(N, D)``, in depth order (``acts.features``).
        method, dim, seed, kwargs: as for :func:`project`.
        align: Procrustes-align the layouts (:func:`align_layouts`).
        progress: ``progress(done, total, message)`` after each layer
            (:data:`explain.progress.Progress`).

    Returns:
        layer -> ``(N, dim)`` float32.
    """
    out = {}
    for i, (name, x) in enumerate(features.items()):
        out[name] = project(x, method=method, dim=dim, seed=seed, **kwargs)
        notify(progress, i + 1, len(features), f"{method} projection: {name}")
    return align_layouts(out) if align else out


def layouts_agree(a: np.ndarray, b: np.ndarray) -> float:
    """How well two layouts of the same points agree after alignment: ``1 - residual / spread``
    (1 = the same picture up to rotation, mirroring, scale and shift)."""
    moved = procrustes_align(a, b).astype(np.float64)
    b = np.asarray(b, dtype=np.float64)
    spread = np.linalg.norm(b - b.mean(axis=0))
    return float(1.0 - np.linalg.norm(moved - b) / spread) if spread else 1.0
