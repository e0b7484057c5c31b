"""COCO segmentations as masks, without pycocotools: polygons, uncompressed and compressed RLE.

- RLE: ``{"size": [H, W], "counts": ...}``; runs of 0s and 1s alternating, starting with 0s,
  over the pixels in column-major order (down each column, then the next column).
- Compressed RLE: ``counts`` is a string, each run in 5-bit groups (least significant first)
  stored as ``chr(48 + group)``, ``0x20`` marking "more groups follow" and ``0x10`` in the last
  group the sign; from the third run on, a run is stored as its difference from the run two
  before.
- Polygons: ``[[x1, y1, x2, y2, ...], ...]`` in pixel-edge coordinates; a pixel is inside when
  its centre is (as pycocotools' rasterisation, up to a few pixels on the outline). Several
  polygons of one object are joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ExplainError


def decode_counts(counts: str | bytes) -> list[int]:
    """The run lengths encoded in a compressed COCO RLE string."""
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    p = 0
    while p < len(text):
        value, shift, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ExplainError("A compressed RLE string ends in the middle of a number.")
            group = ord(text[p]) - 48
            if not 0 <= group < 64:
                raise ExplainError(f"{text[p]!r} cannot appear in a compressed RLE string.")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            p += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # sign-extend from the last group
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def encode_counts(runs: Sequence[int]) -> str:
    """Run lengths -> a compressed COCO RLE string (the inverse of :func:`decode_counts`)."""
    out = []
    for i, run in enumerate(runs):
        value = int(run) - (int(runs[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            # Stop once the rest is pure sign and the sign bit of this group agrees with it.
            more = not ((value == 0 and not group & 0x10) or (value == -1 and group & 0x10))
            if more:
                group |= 0x20
            out.append(chr(group + 48))
    return "".join(out)


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """An uncompressed or compressed RLE ``{"size": [H, W], "counts": ...}`` -> ``(H, W)`` bool."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ExplainError(f"An RLE needs 'size': [H, W] and 'counts'; got {rle!r:.80}.") from exc
    runs = decode_counts(counts) if isinstance(counts, str | bytes) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise ExplainError(
            f"An RLE's runs add up to {sum(runs)} pixels, not {h} x {w} = {h * w}.",
            hint="check the mask's 'size' (COCO gives [height, width]).",
        )
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()  # column-major


def polygons_to_mask(polygons: Sequence[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    """COCO polygons (pixel-edge coordinates) -> ``(H, W)`` bool, ``size`` = ``(H, W)``: the
    pixels whose centre is inside a polygon (even-odd rule), filled row by row."""
    h, w = size
    mask = np.zeros((h, w), dtype=bool)
    centres_x = np.arange(w) + 0.5
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 3:
            continue
        x0, y0 = xy[:, 0], xy[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        for row in range(max(0, int(np.floor(y0.min()))), min(h, int(np.ceil(y0.max())) + 1)):
            yc = row + 0.5
            # Half-open in y so a vertex on the scan line counts once.
            crosses = (y0 <= yc) != (y1 <= yc)
            if not crosses.any():
                continue
            t = (yc - y0[crosses]) / (y1[crosses] - y0[crosses])
            xs = np.sort(x0[crosses] + t * (x1[crosses] - x0[crosses]))
            inside = np.searchsorted(xs, centres_x, side="right") % 2 == 1
            mask[row] ^= inside
    return mask


def segmentation_to_mask(segmentation: Any, size: tuple[int, int]) -> np.ndarray:
    """Any COCO ``segmentation`` (polygons, RLE, compressed RLE) -> ``(H, W)`` bool."""
    if isinstance(segmentation, dict):
        mask = rle_to_mask(segmentation)
        if mask.shape != tuple(size):
            raise ExplainError(
                f"An RLE mask is {mask.shape[0]}x{mask.shape[1]}, its image {size[0]}x{size[1]}."
            )
        return mask
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, size)
    raise ExplainError(
        f"Unknown COCO segmentation of type {type(segmentation).__name__}.",
        hint="give polygons [[x, y, ...]] or an RLE {'size': [H, W], 'counts': ...}.",
    )
