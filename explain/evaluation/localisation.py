"""Localisation: does the map point at the object, where ground-truth masks or boxes exist?

- Pointing game (Zhang et al. 2018): a hit when the map's maximum falls on the object, or
  within ``tolerance`` pixels of it (Euclidean distance).
- Energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's mass that
  lies on the object, ``sum(map * mask) / sum(map)``.

Masks and boxes are in the model-input geometry (the pixels of ``handle.prepare(images)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..errors import ExplainError

Box = tuple[int, int, int, int]


def boxes_to_masks(boxes: Sequence[Box | None] | Box, size: tuple[int, int], n: int | None = None):
    """Boxes ``(x0, y0, x1, y1)`` (exclusive ``x1``, ``y1``, pixels) -> ``(N, H, W)`` bool.

    Args:
        boxes: one box per image (``None`` gives an empty mask), or a single box for all.
        size: ``(H, W)``.
        n: number of images when a single box is given.
    """
    h, w = size
    single = len(boxes) == 4 and all(isinstance(v, int | np.integer) for v in boxes)
    if single:
        if n is None:
            raise ExplainError("Give the number of images n with a single box.")
        boxes = [boxes] * n
    masks = np.zeros((len(boxes), h, w), dtype=bool)
    for i, box in enumerate(boxes):
        if box is None:
            continue
        x0, y0, x1, y1 = (int(v) for v in box)
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ExplainError(
                f"Box {box} does not fit inside a {w}x{h} image.",
                hint="give (x0, y0, x1, y1) in pixels of the model input, x1 and y1 exclusive.",
            )
        masks[i, y0:y1, x0:x1] = True
    return masks


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ExplainError(
            f"Maps {maps.shape} and masks {masks.shape} must both be (N, H, W) and match.",
            hint="give masks in the model-input geometry (as the maps).",
        )
    return maps, masks


def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Pointing game per image (higher is better).

    A hit when the map's maximum lies on the object or within ``tolerance`` pixels of it.
    When several pixels share the maximum (a constant map, say), the score is the share of
    them that hit, i.e. the expected hit of a random pick among them.

    Args:
        maps: ``(N, H, W)``.
        masks: ``(N, H, W)`` bool, the object.
        tolerance: pixels; 15 in Zhang et al. at ImageNet resolution.

    Returns:
        ``(N,)`` float64 in [0, 1]; NaN where the mask is empty.
    """
    maps, masks = _check(maps, masks)
    out = np.full(len(maps), np.nan)
    for i, (m, obj) in enumerate(zip(maps, masks, strict=True)):
        if not obj.any():
            continue
        zone = obj if tolerance <= 0 else ndimage.distance_transform_edt(~obj) <= tolerance
        peak = m == m.max()
        out[i] = float(zone[peak].sum()) / float(peak.sum())
    return out


def energy_pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of the map's mass on the object per image: ``sum(map * mask) / sum(map)``
    (higher is better; a uniform map scores the object's area fraction).

    Args:
        maps: ``(N, H, W)`` non-negative.
        masks: ``(N, H, W)`` bool.

    Returns:
        ``(N,)`` float64 in [0, 1]; NaN where the map sums to 0 or the mask is empty.
    """
    maps, masks = _check(maps, masks)
    if (maps < 0).any():
        raise ExplainError("The energy pointing game needs non-negative maps.")
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    valid = (total > 0) & masks.any(axis=(1, 2))
    return np.where(valid, inside / np.where(total > 0, total, 1.0), np.nan)
