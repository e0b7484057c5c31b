"""Baseline maps that know nothing about the model, so every metric has something to compare
with: a seeded random map and a centred Gaussian map.

Both are model-independent by construction: they fail the randomisation sanity check (their
correlation with themselves stays 1), as an explanation that ignores the model should.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..cams import normalize_maps, upsample

#: Names of the baseline maps, as they appear in the ``method`` column of result tables.
BASELINES: tuple[str, ...] = ("random", "gaussian")


def random_maps(
    n: int,
    size: tuple[int, int],
    seed: int = 0,
    start: int = 0,
    grid: int | None = 7,
    ids: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Random maps: uniform noise on a ``grid x grid`` lattice, bilinearly upsampled to ``size``
    and min-max scaled to [0, 1], as smooth as a CAM of a 7 x 7 layer.

    A smooth random map differs from a CAM in where it points, not in how smooth it is:
    independent noise per pixel (``grid=None``) scatters deletions over the whole image, which
    pushes the model off its data and makes deletion look good for the wrong reason.
    Image ``i`` draws from ``np.random.default_rng([seed, start + i])``, so its map does not
    depend on how many images are evaluated or in which batches.

    Args:
        n: number of maps.
        size: ``(H, W)``.
        seed: base seed.
        start: index of the first image (for maps of a slice of a dataset).
        grid: cells per side of the noise lattice; None for independent noise per pixel.
        ids: the index of each image (overrides ``start``): image ``i`` then draws from
            ``default_rng([seed, ids[i]])``, whatever block of a dataset it comes in.

    Returns:
        ``(n, H, W)`` float32 in [0, 1].
    """
    h, w = size
    shape = (h, w) if grid is None else (int(grid), int(grid))
    index = np.arange(start, start + n) if ids is None else np.asarray(ids, dtype=np.int64)
    noise = np.stack(
        [np.random.default_rng([int(seed), int(index[i])]).random(shape) for i in range(n)]
    ).astype(np.float32)
    if grid is None:
        return noise.reshape(n, h, w)
    return normalize_maps(upsample(torch.from_numpy(noise), (h, w))).numpy()


def gaussian_maps(n: int, size: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A centred isotropic Gaussian bump, the same for every image.

    ``g(y, x) = exp(-((y - cy)^2 + (x - cx)^2) / (2 s^2))`` with pixel centres ``y + 0.5``,
    ``cy = H / 2`` and ``s = sigma * min(H, W)``; its maximum (at the centre) is 1.

    Args:
        n: number of maps.
        size: ``(H, W)``.
        sigma: standard deviation as a fraction of the shorter side.

    Returns:
        ``(n, H, W)`` float32 in (0, 1].
    """
    h, w = size
    s = sigma * min(h, w)
    yy = np.arange(h, dtype=np.float64)[:, None] + 0.5 - h / 2
    xx = np.arange(w, dtype=np.float64)[None, :] + 0.5 - w / 2
    bump = np.exp(-(yy**2 + xx**2) / (2 * s * s))
    bump = bump / bump.max()
    return np.broadcast_to(bump.astype(np.float32), (n, h, w)).copy()


def baseline_maps(
    name: str,
    n: int,
    size: tuple[int, int],
    seed: int = 0,
    ids: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """The baseline map called ``name`` (one of :data:`BASELINES`), ``(n, H, W)`` float32;
    ``ids`` seed the random maps per image (see :func:`random_maps`)."""
    if name == "random":
        return random_maps(n, size, seed, ids=ids)
    if name == "gaussian":
        return gaussian_maps(n, size)
    raise ValueError(f"Unknown baseline map {name!r}; choose from {', '.join(BASELINES)}.")
