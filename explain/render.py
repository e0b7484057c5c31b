"""Pictures of maps: heatmaps, overlays, thresholded masks, contours and captioned grids.

RGB in and RGB out (never BGR), ``uint8`` arrays ``(H, W, 3)``; no OpenCV needed.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Colour maps offered everywhere (names of Plotly's colour scales, plus gray).
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "plasma", "hot", "gray")


@functools.cache
def colormap_lut(name: str) -> np.ndarray:
    """A ``(256, 3)`` uint8 lookup table for colour map ``name``."""
    key = name.lower()
    if key not in COLORMAPS:
        raise ValueError(f"Unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}.")
    if key == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp] * 3, axis=1)
    import plotly.colors as pc

    scale = getattr(pc.sequential, key.capitalize())
    samples = pc.sample_colorscale(
        pc.make_colorscale(scale), list(np.linspace(0, 1, 256)), colortype="tuple"
    )
    rgb = np.array([pc.unlabel_rgb(s) if isinstance(s, str) else s for s in samples], float)
    if rgb.max() <= 1.0:
        rgb = rgb * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def colormap_css(name: str, stops: int = 11) -> str:
    """The colour map as a CSS ``linear-gradient`` from low (left) to high (right)."""
    lut = colormap_lut(name)
    parts = []
    for k in range(stops):
        r, g, b = (int(v) for v in lut[round(k * 255 / (stops - 1))])
        parts.append(f"rgb({r},{g},{b}) {100 * k / (stops - 1):.0f}%")
    return "linear-gradient(90deg, " + ", ".join(parts) + ")"


def common_scale(raw: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Maps of several layers on one colour scale: each ``(h, w)`` raw map (negative parts
    cut to 0) is resized to ``size = (H, W)`` and divided by the largest value over all of
    them, so the same colour means the same strength in every layer.

    Returns:
        layer -> ``(H, W)`` float32 in [0, 1] (all zero when every map is zero).
    """
    resized = {
        k: np.clip(resize_map(np.asarray(v, np.float32), size), 0, None) for k, v in raw.items()
    }
    top = max((float(m.max(initial=0.0)) for m in resized.values()), default=0.0)
    if top <= 0 or not np.isfinite(top):
        return {k: np.zeros(size, np.float32) for k in resized}
    return {k: (m / top).astype(np.float32) for k, m in resized.items()}


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``(h, w)`` float map to ``size = (H, W)`` (NaN read as 0)."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)  # NaN would spread
    if heat.shape == tuple(size):
        return heat
    img = Image.fromarray(heat, mode="F")
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float32)


def colorize(heat: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A ``(H, W)`` map in [0, 1] as an RGB heatmap ``(H, W, 3)`` uint8 (NaN -> 0)."""
    values = np.clip(np.nan_to_num(np.asarray(heat, np.float32)), 0.0, 1.0)
    return colormap_lut(cmap)[np.rint(values * 255).astype(np.uint8)]


def _as_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """Any picture as ``(H, W, 3)`` uint8: gray is repeated, alpha composited on white, floats
    in [0, 1] scaled."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {arr.shape}.")
    if arr.dtype == np.uint8 and arr.shape[-1] == 3:
        return arr
    values = np.nan_to_num(arr.astype(np.float64))
    if np.issubdtype(arr.dtype, np.floating) and values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    if values.shape[-1] == 4:  # composite on white, as explain.images.to_rgb does
        alpha = np.clip(values[..., 3:] / 255.0, 0.0, 1.0)
        values = values[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def overlay(
    image: np.ndarray | Image.Image,
    heat: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "jet",
    weighted: bool = False,
) -> np.ndarray:
    """Blend a map over an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (or a PIL image).
        heat: ``(h, w)`` map in [0, 1]; resized to the image if needed.
        alpha: opacity of the heatmap, 0 (image only) to 1 (heatmap only).
        cmap: one of :data:`COLORMAPS`.
        weighted: scale the opacity by the map, so low values leave the image untouched.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}.")
    rgb = _as_rgb(image).astype(np.float32)
    heat = resize_map(np.asarray(heat, np.float32), rgb.shape[:2])
    colour = colorize(heat, cmap).astype(np.float32)
    a = alpha * (np.clip(np.nan_to_num(heat), 0, 1)[..., None] if weighted else 1.0)
    return np.clip(np.rint((1 - a) * rgb + a * colour), 0, 255).astype(np.uint8)


def threshold_mask(heat: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``(H, W)`` bool: where the map is at least ``threshold``."""
    return np.nan_to_num(np.asarray(heat, np.float32)) >= threshold


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask (inside pixels with an outside 4-neighbour)."""
    m = np.asarray(mask, bool)
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~inner


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean mask by one pixel (4-neighbourhood)."""
    p = np.pad(mask, 1)
    return mask | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def draw_contours(
    image: np.ndarray | Image.Image,
    heat: np.ndarray,
    levels: Sequence[float] = (0.5,),
    colour: tuple[int, int, int] = (255, 255, 255),
    thickness: int = 1,
) -> np.ndarray:
    """Outline the regions where the map exceeds each level, on a copy of the image."""
    out = _as_rgb(image).copy()
    heat = resize_map(np.asarray(heat, np.float32), out.shape[:2])
    for level in levels:
        edges = mask_edges(threshold_mask(heat, level))
        for _ in range(max(0, thickness - 1)):
            edges = _dilate(edges)
        out[edges] = colour
    return out


def masked_image(
    image: np.ndarray | Image.Image, heat: np.ndarray, threshold: float = 0.5, dim: float = 0.25
) -> np.ndarray:
    """Keep the image where the map is at least ``threshold``; dim the rest."""
    rgb = _as_rgb(image).astype(np.float32)
    keep = threshold_mask(resize_map(np.asarray(heat, np.float32), rgb.shape[:2]), threshold)
    return np.where(keep[..., None], rgb, np.rint(rgb * dim)).astype(np.uint8)


def gradient_image(gradients: np.ndarray) -> np.ndarray:
    """Pixel gradients ``(H, W, 3)`` (guided backprop) as a viewable uint8 image: centred,
    scaled to unit standard deviation, mapped to mid-grey +- 0.1 per deviation."""
    g = np.nan_to_num(np.asarray(gradients, np.float64))
    g = g - g.mean()
    std = g.std()
    g = g / std * 0.1 if std > 0 else g
    return np.clip(np.rint((g + 0.5) * 255), 0, 255).astype(np.uint8)


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def grid(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    columns: int | None = None,
    cell: int | None = None,
    padding: int = 6,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Lay images out side by side with a caption under each.

    Args:
        images: ``(H, W, 3)`` uint8 arrays (any sizes; each is fitted into a square cell).
        captions: one text per image (may contain a newline).
        columns: images per row (default: all in one row, up to 6).
        cell: side of each square cell in pixels (default: the largest image side, >= 96).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if not images:
        raise ValueError("grid() needs at least one image.")
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} images.")
    columns = columns or min(len(images), 6)
    rows = -(-len(images) // columns)
    cell = cell or max(96, max(max(np.asarray(i).shape[:2]) for i in images))
    font = _font(max(10, cell // 14))
    lines = max((c.count("\n") + 1 for c in captions), default=1) if any(captions) else 0
    line_h = (font.getbbox("Ag")[3] + 4) if lines else 0
    text_h = lines * line_h
    width = columns * cell + (columns + 1) * padding
    height = rows * (cell + text_h) + (rows + 1) * padding
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    for index, (img, caption) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(index, columns)
        x0 = padding + c * (cell + padding)
        y0 = padding + r * (cell + text_h + padding)
        tile = Image.fromarray(_as_rgb(img))
        scale = cell / max(tile.size)
        tile = tile.resize(
            (max(1, round(tile.width * scale)), max(1, round(tile.height * scale))),
            Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS,
        )
        canvas.paste(tile, (x0 + (cell - tile.width) // 2, y0 + (cell - tile.height) // 2))
        for j, line in enumerate(caption.split("\n") if caption else []):
            w = draw.textlength(line, font=font)
            draw.text(
                (x0 + max(0, (cell - w) / 2), y0 + cell + 2 + j * line_h),
                line,
                fill=(30, 30, 30),
                font=font,
            )
    return np.asarray(canvas)


def to_png(image: np.ndarray | Image.Image) -> bytes:
    """PNG bytes of an RGB image."""
    buf = io.BytesIO()
    Image.fromarray(_as_rgb(image)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
