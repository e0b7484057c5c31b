"""Projections: shapes, reproducibility with a seed, caching, and Procrustes alignment of
layouts across layers (a rotated, mirrored, scaled, shifted copy aligns back exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings import ProjectionError, align_layouts, procrustes_align, project, project_layers
from embeddings.projection import clear_memory_cache, layouts_agree, reduce_pca


def _blobs(n_per=60, centres=3, dim=80, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(centres, dim))
    x = np.concatenate([m + rng.normal(size=(n_per, dim)) for m in means]).astype(np.float32)
    return x, np.repeat(np.arange(centres), n_per)


def _rotation(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def test_pca_is_the_top_principal_components():
    x, _ = _blobs()
    xy = project(x, "pca", dim=2)
    assert xy.shape == (180, 2) and xy.dtype == np.float32
    centred = x - x.mean(0)
    *_, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    expected = centred @ vt[:2].T
    # Same axes up to sign.
    signs = np.sign((xy * expected).sum(0))
    np.testing.assert_allclose(xy * signs, expected, rtol=1e-3, atol=1e-3)
    assert project(x, "pca", dim=3).shape == (180, 3)


def test_tsne_shapes_seed_and_cache(tmp_path):
    x, labels = _blobs(n_per=40)
    clear_memory_cache()
    a = project(x, "tsne", dim=2, seed=0, cache_dir=tmp_path)
    assert a.shape == (120, 2) and a.dtype == np.float32
    a[0] = 1e9  # the caller's copy: the cache never aliases
    clear_memory_cache()
    b = project(x, "tsne", dim=2, seed=0, cache_dir=tmp_path)  # from disk
    assert len(list(tmp_path.glob("tsne-*.npz"))) == 1 and b[0, 0] != 1e9
    clear_memory_cache()
    recomputed = project(x, "tsne", dim=2, seed=0)  # no cache: really reproducible
    np.testing.assert_array_equal(recomputed, b)
    assert project(x, "tsne", dim=3, seed=0).shape == (120, 3)
    # Clusters stay clusters: each point's nearest layout neighbour has its class.
    d = np.linalg.norm(b[:, None] - b[None], axis=-1) + np.eye(len(b)) * 1e9
    assert (labels[d.argmin(1)] == labels).mean() > 0.95


def test_umap_shapes_seed_and_cosine_default():
    x, labels = _blobs(n_per=50)
    clear_memory_cache()
    a = project(x, "umap", dim=2, seed=0)
    clear_memory_cache()
    b = project(x, "umap", dim=2, seed=0)
    assert a.shape == (150, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(project(x, "umap", dim=2, seed=1), a)
    c = project(x, "umap", dim=3, seed=0, n_neighbors=10)
    assert c.shape == (150, 3) and np.isfinite(c).all()
    d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.eye(len(a)) * 1e9
    assert (labels[d.argmin(1)] == labels).mean() > 0.95


def test_pca_step_before_tsne_and_umap():
    x, _ = _blobs(dim=120)
    assert reduce_pca(x, 50).shape == (180, 50)
    assert reduce_pca(x, None) is x
    assert reduce_pca(x[:, :30], 50).shape == (180, 30)


def test_bad_input():
    x, _ = _blobs()
    with pytest.raises(ProjectionError, match="Unknown projection method"):
        project(x, "isomap")
    with pytest.raises(ProjectionError, match="dim must be 2 or 3"):
        project(x, "pca", dim=4)
    with pytest.raises(ProjectionError, match="at least 5 points"):
        project(x[:3], "tsne")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ProjectionError, match="NaN"):
        project(bad, "pca")
    with pytest.raises(ProjectionError, match=r"2-D array"):
        project(x[0], "pca")


@pytest.mark.parametrize("dim", [2, 3])
def test_procrustes_aligns_a_transformed_copy_back(dim):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(50, dim)) * [3.0, 1.0, 0.5][:dim]
    mirror = np.diag([-1.0] + [1.0] * (dim - 1))
    moved = reference @ _rotation(dim, 1) @ mirror * 4.2 + rng.normal(size=dim) * 10
    aligned = procrustes_align(moved, reference)
    np.testing.assert_allclose(aligned, reference, atol=1e-4)
    assert layouts_agree(moved, reference) == pytest.approx(1.0, abs=1e-6)
    # On shared points only: rows 0..29 of a layout whose extra rows are elsewhere.
    extra = np.concatenate([moved[:30], rng.normal(size=(5, dim))])
    pairs = np.stack([np.arange(30), np.arange(30)], axis=1)
    np.testing.assert_allclose(
        procrustes_align(extra, reference, shared=pairs)[:30], reference[:30], atol=1e-4
    )


def test_align_layouts_chain_keeps_the_anchor():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 2))
    layouts = {
        "layer1": base @ _rotation(2, 3) * 2 + 5,
        "layer2": base @ _rotation(2, 4),
        "layer3": base.copy(),
    }
    aligned = align_layouts(layouts)
    assert list(aligned) == ["layer1", "layer2", "layer3"]
    np.testing.assert_array_equal(aligned["layer3"], base.astype(np.float32))
    for name in ("layer1", "layer2"):
        np.testing.assert_allclose(aligned[name], base, atol=1e-4)
    first = align_layouts(layouts, anchor="first")
    np.testing.assert_array_equal(first["layer1"], layouts["layer1"].astype(np.float32))


def test_project_layers_aligns_neighbours():
    x, _ = _blobs()
    q = _rotation(x.shape[1], 5).astype(np.float32)
    # Two "layers" that differ by a rotation of the features: PCA layouts differ by a sign
    # flip or rotation at most, and alignment removes it.
    out = project_layers({"a": x @ q, "b": x}, method="pca", seed=0)
    np.testing.assert_allclose(out["a"], out["b"], atol=1e-2 * np.abs(out["b"]).max())
    raw = project_layers({"a": x @ q, "b": x}, method="pca", align=False)
    assert layouts_agree(raw["a"], raw["b"]) > 0.999
