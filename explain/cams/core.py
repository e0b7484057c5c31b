"""Shared pieces of every CAM method: the result type, normalisation, upsampling and the
first-principal-component projection used by the Eigen variants."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Why a map can come out constant (normalised to all zero), most specific first.
_ZERO_ACTS = "the layer's activations are all zero for these images (a ReLU that never fires?)"
_FLAT_ACTS = "the layer's activations are the same at every position"
_ZERO_GRAD = (
    "the gradient of the target score at this layer is zero: the score is saturated or does "
    "not depend on the layer"
)
_NEGATIVE = (
    "the weighted sum of the channels is <= 0 at every position, so the ReLU leaves nothing: "
    "the activations count against the class (often a layer before its ReLU) or every channel "
    "weight is zero"
)


def constant_causes(
    raw: torch.Tensor, acts: torch.Tensor, grads: torch.Tensor | None = None
) -> dict[str, int]:
    """``likely cause -> count`` of the constant maps among ``raw`` ``(n, K, h, w)``.

    Args:
        acts: ``(n, C, h, w)`` the layer's activations.
        grads: ``(n, K, C, h, w)`` the gradients the maps were made from, if any.
    """
    flat = raw.float().flatten(2)
    counts: dict[str, int] = {}
    if not bool(torch.isfinite(flat).all()):  # NaN and inf are shown as zero
        flat = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)
    constant = (flat.amax(dim=-1) - flat.amin(dim=-1)) <= 0  # (n, K); amin/amax: fast on CPU
    if not bool(constant.any()):
        return counts
    for i, k in constant.nonzero().tolist():
        a = acts[i]
        if not a.any():
            cause = _ZERO_ACTS
        elif bool((a == a.flatten(1)[:, :1, None]).all()):
            cause = _FLAT_ACTS
        elif grads is not None and not grads[i, k].any():
            cause = _ZERO_GRAD
        else:
            cause = _NEGATIVE
        counts[cause] = counts.get(cause, 0) + 1
    return counts


def normalize_maps(
    maps: torch.Tensor, *, finite: bool = False, inplace: bool = False
) -> torch.Tensor:
    """Min-max scale each map to [0, 1] over its last two axes; NaN/inf-safe.

    A constant map (all zero, say) becomes all zero, never NaN.

    Args:
        maps: ``(..., H, W)`` float tensor.
        finite: the caller knows every value is finite (the check is skipped).
        inplace: scale ``maps`` itself (a float32 tensor the caller owns).
    """
    maps = maps.float()
    if not finite and not bool(torch.isfinite(maps).all()):
        maps, inplace = torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0), True
    if maps.numel() == 0:
        return maps if inplace else maps.clone()
    flat = maps.flatten(-2)
    low, high = flat.amin(dim=-1), flat.amax(dim=-1)  # ~20x faster than aminmax(dim) on CPU
    span = (high - low)[..., None, None]
    low = low[..., None, None]
    # A constant map is all ``low``: it becomes (maps - low) / 1 = 0 exactly.
    out = maps.sub_(low) if inplace else maps - low
    return out.div_(torch.where(span > 0, span, 1.0))


def upsample(
    maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False
) -> torch.Tensor:
    """Bilinear upsampling of ``(..., h, w)`` maps to ``(..., H, W)`` (half-pixel centres
    unless ``align_corners``).

    Small maps on the CPU (a 7x7 or 14x14 CNN map to 224x224) are upsampled as two matrix
    products ``R_h @ map @ R_w^T`` with the interpolation matrices: the same bilinear weights
    as ``F.interpolate`` (equal to it within float rounding), several times faster there.
    """
    size = (int(size[0]), int(size[1]))
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    if (h, w) == size:
        return maps.float().reshape(*lead, *size)
    if maps.device.type == "cpu" and _SMALL * max(h, w) <= min(size):
        rows = _interpolation_matrix(h, size[0], align_corners)
        cols = _interpolation_matrix(w, size[1], align_corners)
        return (rows @ maps.float() @ cols.T).reshape(*lead, *size)
    flat = maps.reshape(-1, 1, h, w).float()
    flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=align_corners)
    return flat.reshape(*lead, *size)


#: Upsampling by matrix products pays off up to maps this many times smaller than the output.
_SMALL = 6


def upsample_normalized(
    maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False
) -> torch.Tensor:
    """Finite ``(..., h, w)`` maps upsampled to ``size`` and min-max scaled to [0, 1], each
    on its own; a constant map comes out all zero.

    ``normalize_maps(upsample(maps))`` but for constant maps: upsampled in float, a constant
    map gains rounding ripples (0.70000005 next to 0.7) that scaling would blow up to a
    speckle of zeros and ones, so constant maps are zeroed first (zero upsamples to zero).
    """
    maps = maps.float()
    flat = maps.flatten(-2)
    constant = flat.amax(dim=-1) <= flat.amin(dim=-1)
    if bool(constant.any()):
        maps = torch.where(constant[..., None, None], 0.0, maps)
    resized = tuple(maps.shape[-2:]) != (int(size[0]), int(size[1]))  # a new tensor then
    return normalize_maps(upsample(maps, size, align_corners), finite=True, inplace=resized)


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(n_in: int, n_out: int, align_corners: bool) -> torch.Tensor:
    """``(n_out, n_in)`` bilinear weights along one axis, as ``F.interpolate`` computes them:
    source coordinate ``(i + 0.5) * n_in / n_out - 0.5`` clamped at 0 (``i * (n_in - 1) /
    (n_out - 1)`` with ``align_corners``), split between its two neighbours."""
    # In float32 arithmetic, as PyTorch's CPU kernel computes its weights for float maps.
    i = torch.arange(n_out, dtype=torch.float32)
    if align_corners:
        scale = torch.tensor((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0, dtype=torch.float32)
        source = i * scale
    else:
        scale = torch.tensor(n_in, dtype=torch.float32) / n_out
        source = ((i + 0.5) * scale - 0.5).clamp(min=0.0)
    low = source.long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    frac = (source - low).clamp(0.0, 1.0)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float32)
    matrix.index_put_((torch.arange(n_out), low), 1.0 - frac, accumulate=True)
    matrix.index_put_((torch.arange(n_out), high), frac, accumulate=True)
    return matrix


def first_component(contributions: torch.Tensor) -> torch.Tensor:
    """Project each position's channel vector onto the first principal component.

    ``(B, C, h, w) -> (B, h, w)``: centre the ``h*w`` vectors of length C, take the top right
    singular vector, project. SVD leaves the sign open; it is chosen so that the larger
    magnitude is positive (the salient region comes out positive).
    """
    b, c, h, w = contributions.shape
    x = torch.nan_to_num(contributions.float()).reshape(b, c, h * w).transpose(1, 2)
    x = x - x.mean(dim=1, keepdim=True)
    if h * w == 1:
        return torch.zeros(b, h, w, device=contributions.device)
    _, _, vh = torch.linalg.svd(x.double(), full_matrices=False)
    projection = (x.double() @ vh[:, 0, :, None])[..., 0].float()
    flip = projection.min(dim=1).values.abs() > projection.max(dim=1).values.abs()
    projection = torch.where(flip[:, None], -projection, projection)
    return projection.reshape(b, h, w)


@dataclass
class CamResult:
    """Maps for a batch of images at one or more layers.

    Attributes:
        maps: layer -> ``(N, H, W)`` float32 in [0, 1], upsampled to the input size
            (``(N, K, H, W)`` when several targets per image were asked for).
        raw: layer -> ``(N, h, w)`` float32 at the layer's resolution, before normalisation
            (``(N, K, h, w)`` likewise).
        targets: ``(N,)`` class index explained (``(N, K)`` for several; -1 for a callable).
        probs: ``(N, num_classes)`` softmax of the model's output.
        method: the method's name.
        target_names: what each map explains, ``N`` lists of ``K`` names.
        pixels: layer -> ``(N, H, W, 3)`` pixel-level attributions (guided methods only).
        timings: seconds spent, by step.
        notes: anything a user should know about how the maps were made.
        images: ``(N, H, W, 3)`` uint8, the inputs as the model saw them (for overlays), or
            None; ``compute_cams`` leaves them to be made on first use (:meth:`defer_images`).

    In Jupyter a result shows itself as a captioned grid of overlays (:meth:`view`).
    """

    maps: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    targets: np.ndarray
    probs: np.ndarray
    method: str
    target_names: list[list[str]] = field(default_factory=list)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    images: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        n = len(self.targets)
        return f"CamResult({self.method!r}, {n} image(s), layers {self.layers})"

    @property
    def layers(self) -> list[str]:
        return list(self.maps)

    def defer_images(self, make: Callable[[], np.ndarray]) -> None:
        """Make :attr:`images` with ``make()`` when they are first read (most callers never
        read them: a batch of maps should not pay for its pictures)."""
        self.__dict__.pop("_images", None)
        self.__dict__["_make_images"] = make

    def __getstate__(self) -> dict[str, Any]:  # pickled (caches, workers) with its pictures
        _get_images(self)
        return dict(self.__dict__)

    def view(self, images: Any = None, **options: Any) -> Any:
        """The maps as overlays on the images, one row per image (a
        :class:`~explain.display.View`; options of :func:`~explain.display.cam_view`)."""
        from ..display import cam_view

        return cam_view(self, images, **options)

    def _repr_html_(self) -> str:
        return self.view().html()

    def _repr_png_(self) -> bytes | None:
        return self.view().png

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description (no arrays but the targets)."""
        return {
            "method": self.method,
            "layers": self.layers,
            "targets": self.targets.tolist(),
            "target_names": self.target_names,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": self.notes,
        }


def _get_images(self: CamResult) -> np.ndarray | None:
    make = self.__dict__.pop("_make_images", None)
    if make is not None:
        self.__dict__["_images"] = make()
    return self.__dict__.get("_images")


def _set_images(self: CamResult, value: np.ndarray | None) -> None:
    self.__dict__.pop("_make_images", None)
    self.__dict__["_images"] = value


# ``images`` is a dataclass field (a constructor argument like the others) read through a
# property, so that it can be made on first use.
CamResult.images = property(_get_images, _set_images, doc="The inputs as pictures, or None.")  # type: ignore[assignment]


def weighted_maps(weights: torch.Tensor, acts: torch.Tensor, eigen: bool = False) -> torch.Tensor:
    """``ReLU(sum_c w_kc A_c)`` for channel weights ``(n, K, C)`` and activations
    ``(n, C, h, w)`` -> ``(n, K, h, w)``; with ``eigen``, ``ReLU`` of the first principal
    component of the weighted channels ``w_kc A_c`` instead of their sum."""
    if eigen:
        return summed_maps(weights[..., None, None] * acts[:, None], eigen=True)
    n, c, h, w = acts.shape
    return torch.relu(torch.bmm(weights, acts.reshape(n, c, h * w))).reshape(n, -1, h, w)


def summed_maps(contributions: torch.Tensor, eigen: bool = False) -> torch.Tensor:
    """``ReLU(sum over channels)`` of contributions ``(n, K, C, h, w)`` -> ``(n, K, h, w)``;
    with ``eigen``, ``ReLU`` of their first principal component."""
    if not eigen:
        return torch.relu(contributions.sum(dim=2))
    n, k = contributions.shape[:2]
    flat = contributions.reshape(n * k, *contributions.shape[2:])
    return torch.relu(first_component(flat)).reshape(n, k, *contributions.shape[-2:])
