"""Ground truth follows the image through the model's preprocessing: a box or a mask drawn on a
photo lands on the same pixels of the model input as the photo itself.

Coordinates are pixel edges: pixel ``i`` spans ``[i, i + 1)``, so a box ``(x0, y0, x1, y1)``
with ``x1``, ``y1`` exclusive covers ``x1 - x0`` columns. A resize and a centre crop map them
as ``x' = sx * x + tx`` and ``y' = sy * y + ty``:

- :class:`~explain.preprocessing.Preprocess`: worked out from torchvision's own rules (shorter
  side to ``resize`` and the longer to ``int(resize * long / short)``, or straight to the
  input size; crop offset ``round((H - h) / 2)``; zero padding when the crop is larger).
- Any other preprocessor (a Hugging Face image processor, a user's function): measured. Ramp
  images go through it and a straight line is fitted per axis; a preprocessing that is not a
  resize and a crop (a flip, a rotation) is refused with a clear error.

Masks are replayed through the preprocessor itself (the same interpolation as the image) and
thresholded at one half; boxes become masks by the pixel-centre rule (a pixel is on the box
when its centre is inside it), which is what that threshold gives on a drawn box.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import ExplainError
from ..preprocessing import Preprocess


@dataclass(frozen=True)
class InputGeometry:
    """Where the pixels of one image size end up in the model input.

    Attributes:
        image_size: ``(W, H)`` of the image the boxes are drawn on.
        input_size: ``(H, W)`` of the model input.
        scale: ``(sx, sy)``, model-input pixels per image pixel.
        offset: ``(tx, ty)``, in model-input pixels.
        measured: True when fitted on probe images rather than worked out.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]
    measured: bool = False

    def map_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Image-pixel boxes ``(K, 4)`` -> model-input boxes ``(K, 4)`` float64, clipped to the
        input frame (a box the crop cuts away entirely gets zero width or height)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        (sx, sy), (tx, ty) = self.scale, self.offset
        h, w = self.input_size
        out = np.stack([b[:, 0] * sx + tx, b[:, 1] * sy + ty, b[:, 2] * sx + tx, b[:, 3] * sy + ty])
        out = out.T
        out[:, [0, 2]] = out[:, [0, 2]].clip(0.0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0.0, h)
        return out


def _resized_size(image_size: tuple[int, int], pre: Preprocess) -> tuple[int, int]:
    """``(W, H)`` after the resize step, by torchvision's rule for a single size."""
    w, h = image_size
    if pre.resize is None:
        return pre.input_size[1], pre.input_size[0]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = pre.resize, int(pre.resize * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def _crop_offset(size: int, crop: int) -> int:
    """Pixels removed before the first kept one by torchvision's centre crop (negative: padded)."""
    if crop > size:
        pad_before = (crop - size) // 2
        return -pad_before
    return round((size - crop) / 2.0)  # Python rounds halves to even, as torchvision


def preprocess_geometry(pre: Preprocess, image_size: tuple[int, int]) -> InputGeometry:
    """The exact :class:`InputGeometry` of a :class:`Preprocess` for images of ``(W, H)``."""
    w, h = image_size
    new_w, new_h = _resized_size(image_size, pre)
    ch, cw = pre.input_size
    left = _crop_offset(new_w, cw) if pre.resize is not None else 0
    top = _crop_offset(new_h, ch) if pre.resize is not None else 0
    return InputGeometry(
        (w, h), (ch, cw), (new_w / w, new_h / h), (-float(left), -float(top)), measured=False
    )


def _unit_outputs(preprocessor, images: list[Image.Image]) -> np.ndarray:
    """Images through ``preprocessor`` -> ``(K, 3, H, W)`` back in [0, 1] pixel units.

    The per-channel normalisation is undone with a black and a white image of the same size;
    where both give the same value (padding) the result is NaN.
    """
    size = images[0].size
    refs = [Image.new("RGB", size, (0, 0, 0)), Image.new("RGB", size, (255, 255, 255))]
    out = preprocessor([*refs, *images])
    out = out.detach().cpu().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    black, white, rest = out[0], out[1], out[2:]
    span = white - black
    flat = np.abs(span) < 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = (rest - black) / np.where(flat, 1.0, span)
    unit[:, flat] = np.nan
    return unit


def _fit_axis(source: np.ndarray, extent: int) -> tuple[float, float, float]:
    """Fit ``source position = a * (j + 0.5) + b`` on one axis of the probe.

    Args:
        source: ``(M,)`` source position (image pixels) seen at each output pixel, NaN where
            padded.
        extent: the image's size along that axis, in pixels.

    Returns:
        ``(a, b, worst residual in image pixels)``.
    """
    centres = np.arange(len(source)) + 0.5
    ok = np.isfinite(source)
    # Resampling is clamped at the image border: fit on what maps well inside it.
    inner = ok & (source > 2.0) & (source < extent - 2.0)
    if inner.sum() < 2:
        inner = ok
    if inner.sum() < 2:
        raise ExplainError("The preprocessing leaves too little of the image to follow boxes.")
    a, b = np.polyfit(centres[inner], source[inner], 1)
    residual = float(np.abs(a * centres[inner] + b - source[inner]).max())
    return float(a), float(b), residual


def measured_geometry(preprocessor, image_size: tuple[int, int]) -> InputGeometry:
    """Measure how ``preprocessor`` maps images of ``(W, H)``: a horizontal and a vertical
    ramp go through it and a line is fitted per axis.

    Raises:
        ExplainError: the preprocessing is not a resize and a crop (the fit does not hold).
    """
    w, h = image_size
    # Randomly dithered 8-bit ramps: unbiased, so averaging over a row or column of the
    # output recovers the position far more finely than one 8-bit step.
    rng = np.random.default_rng(0)
    fx = np.broadcast_to(255.0 * (np.arange(w) + 0.5) / w, (h, w))
    fy = np.broadcast_to(255.0 * (np.arange(h)[:, None] + 0.5) / h, (h, w))
    ramp = np.zeros((h, w, 3), dtype=np.uint8)
    ramp[..., 0] = np.floor(fx + rng.random((h, w))).clip(0, 255)
    ramp[..., 1] = np.floor(fy + rng.random((h, w))).clip(0, 255)
    unit = _unit_outputs(preprocessor, [Image.fromarray(ramp)])[0]
    out_h, out_w = unit.shape[-2:]
    with warnings.catch_warnings():  # all-NaN rows and columns are the padding
        warnings.simplefilter("ignore", RuntimeWarning)
        xs = np.nanmean(unit[0], axis=0) * w  # (W',) source column of each output column
        ys = np.nanmean(unit[1], axis=1) * h
    ax, bx, rx = _fit_axis(xs, w)
    ay, by, ry = _fit_axis(ys, h)
    # An 8-bit step of the ramp, plus a pixel of slack.
    if not (rx < 1.0 + w / 255.0 and ry < 1.0 + h / 255.0 and ax > 0 and ay > 0):
        raise ExplainError(
            "This model's preprocessing is not a plain resize and crop, so boxes cannot be "
            "followed through it.",
            hint="give boxes and masks in the model-input geometry (the pixels of "
            "handle.prepare(images)), or load the model with an explain.Preprocess.",
        )
    return InputGeometry(
        (w, h), (int(out_h), int(out_w)), (1.0 / ax, 1.0 / ay), (-bx / ax, -by / ay), measured=True
    )


def input_geometry(preprocessor, image_size: tuple[int, int]) -> InputGeometry:
    """How images of ``(W, H)`` map onto the model input of ``preprocessor`` (exact for
    :class:`~explain.preprocessing.Preprocess`, measured otherwise)."""
    if isinstance(preprocessor, Preprocess):
        return preprocess_geometry(preprocessor, image_size)
    return measured_geometry(preprocessor, image_size)


def replay_masks(preprocessor, masks: np.ndarray) -> np.ndarray:
    """Masks at image resolution through the preprocessor's own resize and crop.

    Args:
        preprocessor: the model's preprocessor.
        masks: ``(K, H, W)`` bool, all of one image's size.

    Returns:
        ``(K, h, w)`` bool in the model-input geometry: where the resampled mask is at least
        one half.
    """
    masks = np.asarray(masks, dtype=bool)
    if len(masks) == 0:
        h, w = preprocessor.input_size
        return np.zeros((0, h, w), dtype=bool)
    if isinstance(preprocessor, Preprocess):
        out = [
            np.asarray(preprocessor.geometry(Image.fromarray(m.astype(np.uint8) * 255))) >= 128
            for m in masks
        ]
        return np.stack(out)
    pictures = [Image.fromarray(m.astype(np.uint8) * 255).convert("RGB") for m in masks]
    unit = _unit_outputs(preprocessor, pictures)
    return np.nan_to_num(unit.mean(axis=1), nan=0.0) >= 0.5


def boxes_to_mask(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Union of boxes ``(K, 4)`` (pixel edges, floats allowed) as an ``(H, W)`` bool mask:
    the pixels whose centre lies inside a box."""
    h, w = size
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c0, c1 = max(0, math.ceil(x0 - 0.5)), min(w, math.ceil(x1 - 0.5))
        r0, r1 = max(0, math.ceil(y0 - 0.5)), min(h, math.ceil(y1 - 0.5))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask
