"""Localisation: does the map point at the object, where ground-truth masks or boxes exist?

- Pointing game (Zhang et al. 2018): a hit when the map's maximum falls on the object, or
  within ``tolerance`` pixels of it (Euclidean distance).
- Energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's mass that
  lies on the object, ``sum(map * mask) / sum(map)``.
- Weakly-supervised localisation (Zhou et al. 2016, CAM; Selvaraju et al. 2017, Grad-CAM):
  keep the pixels at or above a fraction of the map's maximum (15 % in Grad-CAM), draw a box
  around the largest connected region, and count a success when that box overlaps a
  ground-truth box with IoU >= 0.5. The top-1 localisation error counts an image as wrong
  when the top-1 class is wrong or the box misses.

Masks and boxes are in the model-input geometry (the pixels of ``handle.prepare(images)``);
boxes are ``(x0, y0, x1, y1)`` pixel edges, ``x1`` and ``y1`` exclusive.
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


def component_boxes(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Bounding boxes ``(K, 4)`` float64 of the connected regions of an ``(H, W)`` bool mask,
    in the order :func:`scipy.ndimage.label` numbers them (``connectivity`` 4 or 8)."""
    labelled, count = ndimage.label(
        np.asarray(mask, dtype=bool), structure=_structure(connectivity)
    )
    boxes = [
        (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        for sl in ndimage.find_objects(labelled, count)
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (4, 8):
        raise ExplainError(f"connectivity must be 4 or 8, got {connectivity}.")
    return ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def largest_component_box(
    cam: np.ndarray, fraction: float = 0.15, connectivity: int = 8
) -> tuple[int, int, int, int]:
    """The box around the largest connected region of ``cam >= fraction * cam.max()``.

    Args:
        cam: ``(H, W)`` map, non-negative (as :func:`explain.compute_cams` gives).
        fraction: threshold as a fraction of the map's maximum (0.15 in Grad-CAM).
        connectivity: 8 (diagonal neighbours join regions, as contour tracing does) or 4.

    Returns:
        ``(x0, y0, x1, y1)`` pixel edges. Ties in area go to the region :func:`scipy.ndimage.label`
        numbers first (the first in row-major order); a map without a positive value gives the
        whole image (nothing singles out a region).
    """
    cam = np.asarray(cam, dtype=np.float64)
    if not 0.0 <= fraction <= 1.0:
        raise ExplainError(f"The threshold fraction must be in [0, 1], got {fraction}.")
    h, w = cam.shape
    peak = cam.max()
    if not np.isfinite(peak) or peak <= 0:
        return 0, 0, w, h
    labelled, count = ndimage.label(cam >= fraction * peak, structure=_structure(connectivity))
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    best = int(np.argmax(sizes)) + 1  # argmax keeps the first of equal sizes
    rows, cols = ndimage.find_objects(labelled, best)[best - 1]
    return cols.start, rows.start, cols.stop, rows.stop


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` ``(K, 4)`` with every box in ``b``
    ``(M, 4)`` -> ``(K, M)`` float64 (boxes as pixel edges; an empty union gives 0)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    iw = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(min=0)
    ih = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]).clip(min=0) * (a[..., 3] - a[..., 1]).clip(min=0)
    area_b = (b[..., 2] - b[..., 0]).clip(min=0) * (b[..., 3] - b[..., 1]).clip(min=0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_localisation(
    maps: np.ndarray,
    boxes: Sequence[np.ndarray],
    fraction: float = 0.15,
    connectivity: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM's weakly-supervised localisation, per image: the largest-region box of the
    thresholded map and its best IoU with the image's ground-truth boxes.

    Args:
        maps: ``(N, H, W)``.
        boxes: per image, ``(K, 4)`` ground-truth boxes (model-input pixels).
        fraction: threshold as a fraction of each map's maximum.
        connectivity: 8 or 4.

    Returns:
        ``(predicted boxes (N, 4) float64, best IoU (N,) float64)``; the IoU is NaN for an
        image without ground-truth boxes.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or len(boxes) != len(maps):
        raise ExplainError(
            f"Give (N, H, W) maps and one box array per map; got maps {maps.shape} and "
            f"{len(boxes)} box arrays."
        )
    predicted = np.array(
        [largest_component_box(m, fraction, connectivity) for m in maps], dtype=np.float64
    ).reshape(-1, 4)
    best = np.full(len(maps), np.nan)
    for i, truth in enumerate(boxes):
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        if len(truth):
            best[i] = box_iou(predicted[i], truth).max()
    return predicted, best


def localisation_error(
    iou: np.ndarray, correct: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
    """Top-1 localisation error per image, in percent (lower is better): 100 when the top-1
    class is wrong or the box's IoU is below ``iou_threshold``, else 0.

    Args:
        iou: ``(N,)`` best IoU of the map's box (NaN: no ground truth).
        correct: ``(N,)`` whether the top-1 class is the true class; NaN or a negative value
            where the true class is unknown.

    Returns:
        ``(N,)`` float64 in {0, 100}; NaN where the IoU or the true class is unknown.
    """
    iou = np.asarray(iou, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    known = np.isfinite(iou) & np.isfinite(correct) & (correct >= 0)
    hit = (correct > 0) & (np.nan_to_num(iou, nan=-1.0) >= iou_threshold)
    return np.where(known, np.where(hit, 0.0, 100.0), np.nan)
