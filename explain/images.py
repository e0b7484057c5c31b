"""Reading images safely: any file a user may upload becomes an RGB PIL image, or a clear error.

Handled: EXIF orientation; grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and
float images; huge images (JPEGs are decoded at reduced scale, others refused above a pixel limit
before any pixel is decoded); tiny images; files that are not images at all.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, ImageTooLargeError, ImageTooSmallError

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image | np.ndarray

#: Longest side kept after loading; larger images are downscaled (no model needs more).
MAX_SIDE = 4096
#: Images with more pixels than this are refused unless their format decodes at reduced scale.
MAX_PIXELS = 64_000_000
#: Images with a side shorter than this are refused: there is nothing to explain in them.
MIN_SIDE = 8

# PIL's decompression-bomb check is process-wide; we replace it with our own limits above, and
# only lift it for the (lazy, header-only) open call.
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedImage:
    """An image read from a source, with what happened on the way (for reports)."""

    image: Image.Image
    name: str
    original_size: tuple[int, int]  # (width, height) as stored in the file
    notes: tuple[str, ...] = ()


def _name_of(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return Path(name).name
    return type(source).__name__


def _open_lazily(source: Any) -> Image.Image:
    """Open the header only, with PIL's own pixel limit lifted (ours is applied after)."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"Image file not found: {path}")
        if path.is_dir():
            raise ImageLoadError(f"{path} is a folder, not an image file.")
    with _OPEN_LOCK:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source)
        except UnidentifiedImageError as exc:
            raise ImageLoadError(
                f"{_name_of(source)} is not an image file that can be read "
                "(supported: JPEG, PNG, WebP, BMP, TIFF, GIF, ...).",
            ) from exc
        except OSError as exc:
            raise ImageLoadError(f"{_name_of(source)} is truncated or corrupt: {exc}") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, max_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images: scale to 8 bits instead of clipping to white."""
    arr = np.asarray(img, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    if img.mode == "F" and top <= 1.0:
        arr = arr * 255.0
    elif top > 255.0:
        arr = arr * (255.0 / (65535.0 if top <= 65535.0 else top))
    arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([gray] * 3, axis=-1), mode="RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_rgb(img)
    if (mode == "P" and "transparency" in img.info) or mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"Images in PIL mode {mode!r} cannot be converted to RGB.") from exc


def _from_array(arr: np.ndarray) -> Image.Image:
    """(H, W), (H, W, 1|3|4) arrays; uint8, or float in [0, 1]."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}."
        )
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.nan_to_num(arr.astype(np.float64))
            if arr.max(initial=0.0) <= 1.0:
                arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.shape[-1] if arr.ndim == 3 else 2]
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def load_image(
    source: ImageSource,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """Read one image from a path, bytes, file object, PIL image or array as 8-bit RGB.

    Args:
        source: what to read.
        max_side: longer side after loading; bigger images are downscaled (aspect kept).
        max_pixels: refuse images above this many pixels unless they decode at reduced scale
            (JPEG), so a 20,000 x 20,000 file never exhausts memory.
        min_side: refuse images whose shorter side is below this.

    Returns:
        A :class:`LoadedImage` whose ``image`` is an RGB PIL image with EXIF rotation applied.

    Raises:
        ImageLoadError: not an image, truncated, unsupported mode, too small or too large.
    """
    name = _name_of(source)
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        img = _open_lazily(source)
    original = img.size
    w, h = original
    if min(w, h) < min_side:
        raise ImageTooSmallError(
            f"{name} is {w}x{h} pixels; images need at least {min_side} pixels on each side.",
        )
    if w * h > max_pixels:
        target = _fit((w, h), max_side)
        if img.format == "JPEG":
            # JPEG decodes at 1/2, 1/4 or 1/8 scale without ever holding the full image.
            img.draft("RGB", target)
            notes.append(f"decoded at reduced scale {img.size[0]}x{img.size[1]}")
        if img.size[0] * img.size[1] > max_pixels:
            raise ImageTooLargeError(
                f"{name} is {w}x{h} pixels ({w * h / 1e6:.0f} MP); the limit is "
                f"{max_pixels / 1e6:.0f} MP for {img.format or 'this'} images.",
                hint="downscale the image (for example to 4,000 pixels on the longer side) "
                "or save it as JPEG.",
            )
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        img = to_rgb(img)
    except ImageLoadError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"{name} is truncated or corrupt: {exc}") from exc
    if max(img.size) > max_side:
        img = img.resize(_fit(img.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        notes.append(f"downscaled to {img.size[0]}x{img.size[1]}")
    return LoadedImage(image=img, name=name, original_size=original, notes=tuple(notes))


def as_rgb_images(images: ImageSource | Sequence[ImageSource]) -> list[Image.Image]:
    """Normalise one image or a sequence of images (any accepted source) to RGB PIL images."""
    if isinstance(images, np.ndarray):
        images = list(images) if images.ndim == 4 else [images]
    elif isinstance(images, str | os.PathLike | bytes | Image.Image):
        images = [images]
    return [load_image(item).image for item in images]


def load_images(
    sources: Iterable[ImageSource], **limits: int
) -> tuple[list[LoadedImage], list[tuple[str, str]]]:
    """Read many images; unreadable ones are reported, never fatal.

    Returns:
        (loaded images in input order, [(name, reason), ...] for the ones skipped).
    """
    loaded: list[LoadedImage] = []
    skipped: list[tuple[str, str]] = []
    for source in sources:
        try:
            loaded.append(load_image(source, **limits))
        except ImageLoadError as exc:
            skipped.append((_name_of(source), str(exc)))
    return loaded, skipped
