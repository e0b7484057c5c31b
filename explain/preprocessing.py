"""Image preprocessing: the geometry a model sees (resize, crop) and its normalisation.

Every preprocessor has two steps, exposed separately so overlays line up with the model's input:
``prepare(images) -> (N, H, W, 3) uint8`` (the resized / cropped pictures) and
``__call__(images) -> (N, 3, H, W) float32`` (the normalised tensor the model takes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from .images import ImageSource, as_rgb_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


@dataclass(frozen=True)
class Preprocess:
    """Resize (and optionally centre-crop) then normalise, as torchvision's classification presets.

    Args:
        input_size: (H, W) of the tensor the model takes.
        resize: shorter side to resize to before a centre crop to ``input_size``; ``None`` resizes
            straight to ``input_size`` (aspect not kept, no crop).
        mean, std: per-channel normalisation of values in [0, 1].
        interpolation: "bilinear", "bicubic" or "nearest".
    """

    input_size: tuple[int, int]
    resize: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", _pair(self.input_size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std all positive.")
        if min(self.input_size) < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}.")

    @classmethod
    def from_torchvision(cls, transform: Any) -> Preprocess:
        """From a torchvision ``ImageClassification`` preset (``weights.transforms()``)."""
        crop = _pair(transform.crop_size)
        resize = transform.resize_size
        resize = int(resize[0]) if isinstance(resize, list | tuple) else int(resize)
        mode = transform.interpolation
        return cls(
            input_size=crop,
            resize=resize,
            mean=tuple(transform.mean),
            std=tuple(transform.std),
            interpolation=mode.value if isinstance(mode, InterpolationMode) else str(mode),
        )

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> Preprocess:
        """From ``{"input_size": ..., "resize": ..., "mean": ..., "std": ...}``; fields left out
        take ImageNet's defaults (see :func:`with_overrides`)."""
        return with_overrides(IMAGENET_DEFAULT, meta)

    def geometry(self, image: Image.Image) -> Image.Image:
        """Resize / crop one RGB image to ``input_size`` (what the model sees)."""
        mode = InterpolationMode(self.interpolation)
        if self.resize is None:
            out = TF.resize(image, list(self.input_size), interpolation=mode, antialias=True)
        else:
            out = TF.resize(image, [self.resize], interpolation=mode, antialias=True)
            out = TF.center_crop(out, list(self.input_size))
        return out

    def prepare(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        """Images -> (N, H, W, 3) uint8, resized and cropped as the model sees them."""
        rgb = as_rgb_images(images)
        return np.stack([np.asarray(self.geometry(img), dtype=np.uint8) for img in rgb])

    def normalize(self, pixels: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised, contiguous."""
        # contiguous(): a permuted (channels-last) tensor breaks models that call x.view(...)
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std

    def __call__(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        return self.normalize(self.prepare(images))

    def describe(self) -> str:
        h, w = self.input_size
        how = (
            f"resize to {h}x{w}"
            if self.resize is None
            else (f"resize shorter side to {self.resize}, centre-crop {h}x{w}")
        )
        return f"{how}, {self.interpolation}, normalise mean={self.mean} std={self.std}"


#: What a model of unknown origin gets: resize the shorter side to 256, centre-crop 224x224,
#: ImageNet mean and std.
IMAGENET_DEFAULT = Preprocess(input_size=(224, 224), resize=256)
_FIELDS = ("input_size", "resize", "mean", "std", "interpolation")


def with_overrides(base: Any, overrides: dict[str, Any]) -> Preprocess:
    """``base`` preprocessing with some fields replaced.

    Args:
        base: a :class:`Preprocess` (or any preprocessor with ``input_size``, whose other fields
            then take ImageNet's defaults).
        overrides: any of ``input_size``, ``resize``, ``mean``, ``std``, ``interpolation``, and
            ``crop_fraction`` (the centre crop as a fraction of the resized shorter side, e.g.
            0.875 for 224 from 256). Given an ``input_size`` but no ``resize`` or
            ``crop_fraction``, images are resized straight to it (no crop): a new input size
            makes the old crop meaningless.

    Returns:
        A new :class:`Preprocess`.
    """
    fields = {k: v for k, v in overrides.items() if k in _FIELDS and v is not None}
    if "resize" in overrides and overrides["resize"] is None:
        fields["resize"] = None  # an explicit "no crop"
    fraction = overrides.get("crop_fraction")
    if "input_size" in fields and "resize" not in overrides and fraction is None:
        fields["resize"] = None
    if not isinstance(base, Preprocess):
        base = replace(IMAGENET_DEFAULT, input_size=_pair(base.input_size), resize=None)
    out = replace(base, **fields)
    if fraction is not None:
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {fraction}.")
        out = replace(out, resize=round(min(out.input_size) / float(fraction)))
    return out


@dataclass(frozen=True)
class HFPreprocess:
    """A Hugging Face image processor behind the same interface as :class:`Preprocess`."""

    processor: Any
    input_size: tuple[int, int] = field(default=(224, 224))

    def _pixels(self, images: list[Image.Image], **overrides: Any) -> torch.Tensor:
        out = self.processor(images=images, return_tensors="pt", **overrides)
        return out["pixel_values"].float()

    def prepare(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        rgb = as_rgb_images(images)
        raw = self._pixels(rgb, do_normalize=False, do_rescale=False)
        return raw.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()

    def __call__(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        return self._pixels(as_rgb_images(images)).contiguous()

    def describe(self) -> str:
        return f"Hugging Face {type(self.processor).__name__}"


@dataclass(frozen=True)
class CallablePreprocess:
    """A user's own ``PIL image -> (3, H, W) tensor`` function.

    ``prepare`` resizes to ``input_size`` for display, which matches the tensor exactly when the
    function itself only resizes (no crop).
    """

    fn: Callable[[Image.Image], torch.Tensor]
    input_size: tuple[int, int]

    def prepare(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        h, w = self.input_size
        return np.stack(
            [
                np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
                for img in as_rgb_images(images)
            ]
        )

    def __call__(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        return torch.stack([self.fn(img) for img in as_rgb_images(images)]).float().contiguous()

    def describe(self) -> str:
        return f"user function {getattr(self.fn, '__name__', type(self.fn).__name__)}"


Preprocessor = Preprocess | HFPreprocess | CallablePreprocess


def input_pictures(x: torch.Tensor, preprocessor: Any) -> np.ndarray:
    """The pictures a model input shows: ``(N, 3, H, W)`` tensor -> ``(N, H, W, 3)`` uint8.

    The inverse of the normalisation where it is known: a :class:`Preprocess` (its mean and
    std; exact, the same pixels as ``prepare``) or a Hugging Face processor (its
    ``image_mean``, ``image_std`` and ``rescale_factor``). Otherwise each image is stretched
    to [0, 255] (right up to contrast and brightness).
    """
    x = x.detach().float().cpu()
    mean, std, scale = _normalisation(preprocessor)
    if mean is None:
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        span = (x.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
        values = (x - low) / span
    else:
        values = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
        values = values * scale
    pixels = (values * 255.0).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).numpy())


def _normalisation(preprocessor: Any) -> tuple[Any, Any, float]:
    """``(mean, std, scale)`` with ``x * std + mean`` times ``scale`` in [0, 1]; mean None when
    the preprocessor does not say."""
    if isinstance(preprocessor, Preprocess):
        return preprocessor.mean, preprocessor.std, 1.0
    processor = getattr(preprocessor, "processor", None)
    if processor is None or not hasattr(processor, "image_mean"):
        return None, None, 1.0
    normalise = getattr(processor, "do_normalize", True)
    mean = _triple(processor.image_mean) if normalise else (0.0, 0.0, 0.0)
    std = _triple(processor.image_std) if normalise else (1.0, 1.0, 1.0)
    rescale = float(getattr(processor, "rescale_factor", 1 / 255))
    scale = 1.0 / (rescale * 255.0) if getattr(processor, "do_rescale", True) else 1.0 / 255.0
    return mean, std, scale


def _triple(values: Any) -> tuple[float, float, float]:
    values = [float(v) for v in (values if isinstance(values, list | tuple) else [values])]
    return tuple(values * 3)[:3] if len(values) == 1 else tuple(values[:3])
