"""Maps as a captioned grid: one row per image, its picture first, then one overlay per
method, layer and class, each captioned with the class (and its probability), the layer and
the method."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..cams.base import METHOD_INFO
from ..cams.core import CamResult
from ..errors import ExplainError
from ..render import colorize, grid, overlay, to_png
from .page import MUTED, View, data_uri, heading, notes_list

#: Images shown by default (a result may hold a whole batch).
MAX_IMAGES = 8


def method_title(name: str) -> str:
    """``"gradcam"`` -> ``"Grad-CAM"`` (the name itself for an unknown method)."""
    return METHOD_INFO[name].title if name in METHOD_INFO else name


def image_names(images: Any) -> list[str] | None:
    """File stems of images given as paths (or objects with a ``path``), else None."""
    items = [images] if isinstance(images, str | os.PathLike) else images
    if not isinstance(items, list | tuple):
        return None
    paths = [getattr(item, "path", item) for item in items]
    if not all(isinstance(p, str | os.PathLike) for p in paths):
        return None
    return [Path(p).stem for p in paths]


def _fit(picture: np.ndarray, size: int) -> np.ndarray:
    """A picture scaled so its longer side is ``size`` (pixels kept sharp when enlarged)."""
    image = Image.fromarray(picture)
    scale = size / max(image.size)
    if scale == 1:
        return picture
    new = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    mode = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    return np.asarray(image.resize(new, mode))


def _pictures(results: Sequence[CamResult], images: Any) -> np.ndarray | None:
    if images is None:
        return results[0].images
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8:
        return images
    if isinstance(images, np.ndarray) and images.ndim == 3:
        return images[None].astype(np.uint8)
    if isinstance(images, list | tuple) and all(isinstance(i, np.ndarray) for i in images):
        return np.stack([np.asarray(i, dtype=np.uint8) for i in images])
    raise ExplainError(
        "images= takes the pictures the maps were made from, (N, H, W, 3) uint8.",
        hint="pass handle.prepare(files), or leave it out: compute_cams keeps the pictures.",
    )


def _target(result: CamResult, i: int, k: int) -> tuple[str, float | None]:
    """Name and probability of the class of map ``k`` of image ``i``."""
    multi = result.targets.ndim == 2
    index = int(result.targets[i, k] if multi else result.targets[i])
    names = result.target_names[i] if i < len(result.target_names) else []
    name = names[k] if k < len(names) else (str(index) if index >= 0 else "target")
    prob = float(result.probs[i, index]) if 0 <= index < result.probs.shape[1] else None
    return name, prob


def cam_view(
    results: CamResult | Sequence[CamResult],
    images: Any = None,
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    max_images: int = MAX_IMAGES,
    size: int = 160,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> View:
    """Maps of one or more results (e.g. one per method, same images) as a captioned grid.

    Args:
        results: a :class:`~explain.CamResult`, or several made from the same images.
        images: the pictures, ``(N, H, W, 3)`` uint8 (default: the result's own ``images``;
            without pictures the maps are shown as heatmaps).
        names: a name per image (default ``image 1``, ...).
        labels: the model's class names, to caption each picture with the top-1 class.
        max_images: images shown (the first ones).
        size: side of each picture in pixels.
        alpha, cmap: the overlay's opacity and colour map (:func:`explain.render.overlay`).

    Returns:
        A :class:`View`: HTML figures with captions, and one PNG of the whole grid.
    """
    results = [results] if isinstance(results, CamResult) else list(results)
    if not results:
        raise ExplainError("Nothing to show: no results.")
    n = len(results[0].targets)
    if any(len(r.targets) != n for r in results):
        raise ExplainError("The results to show side by side are of different numbers of images.")
    pictures = _pictures(results, images)
    if pictures is not None and len(pictures) != n:
        raise ExplainError(f"{len(pictures)} pictures were given for {n} images.")
    names = list(names) if names is not None else [f"image {i + 1}" for i in range(n)]
    shown = min(n, max_images)
    tiles: list[np.ndarray] = []
    captions: list[tuple[str, str]] = []
    text = []
    for i in range(shown):
        if pictures is not None:
            top = ""
            if labels is not None:
                best = int(results[0].probs[i].argmax())
                top = f"top-1 {labels[best]} {results[0].probs[i, best]:.0%}"
            tiles.append(_fit(pictures[i], size))
            captions.append((names[i], top))
        for result in results:
            for layer, maps in result.maps.items():
                per_target = maps[i] if maps.ndim == 4 else maps[i][None]
                for k, heat in enumerate(per_target):
                    name, prob = _target(result, i, k)
                    picture = (
                        overlay(pictures[i], heat, alpha=alpha, cmap=cmap)
                        if pictures is not None
                        else colorize(heat, cmap)
                    )
                    tiles.append(_fit(picture, size))
                    what = f"{name} {prob:.0%}" if prob is not None else name
                    captions.append((what, f"{layer} · {method_title(result.method)}"))
                    text.append(f"{names[i]}: {what} at {layer} ({result.method})")
    columns = len(tiles) // shown
    png = to_png(grid(tiles, [f"{a}\n{b}" for a, b in captions], columns=columns, cell=size))
    figures = "".join(
        f'<figure style="margin: 0; width: {size}px">'
        f'<img src="{data_uri(tile)}" style="width: {size}px; height: auto; display: block" '
        f'alt="{html.escape(a)}">'
        f'<figcaption style="font-size: 0.8em; line-height: 1.25; text-align: center">'
        f"<b>{html.escape(a)}</b><br><span style='{MUTED}'>{html.escape(b)}</span>"
        "</figcaption></figure>"
        for tile, (a, b) in zip(tiles, captions, strict=True)
    )
    cells = (
        f'<div style="display: grid; grid-template-columns: repeat({columns}, {size}px); '
        f'gap: 8px; overflow-x: auto">{figures}</div>'
    )
    methods = ", ".join(dict.fromkeys(method_title(r.method) for r in results))
    layers = ", ".join(dict.fromkeys(layer for r in results for layer in r.maps))
    detail = f"{n} image(s), layers {layers}"
    notes = [note for r in results for note in r.notes]
    if shown < n:
        notes.append(f"Showing the first {shown} of {n} images (max_images={max_images}).")
    parts = [heading(methods, detail) + cells + notes_list(notes)]
    summary = "\n".join([f"{methods}: {detail}", *text, *notes])
    return View(parts, summary, png)


def images_view(
    images: Any, captions: Sequence[str] | None = None, *, size: int = 160, columns: int = 6
) -> View:
    """Pictures side by side, with optional captions (``(N, H, W, 3)`` uint8 or a list)."""
    pictures = [np.asarray(p, dtype=np.uint8) for p in images]
    if not pictures:
        raise ExplainError("Nothing to show: no pictures.")
    captions = list(captions) if captions is not None else [""] * len(pictures)
    tiles = [_fit(p, size) for p in pictures]
    figures = "".join(
        f'<figure style="margin: 0; width: {size}px"><img src="{data_uri(t)}" '
        f'style="width: {size}px; height: auto; display: block" alt="{html.escape(c)}">'
        f'<figcaption style="font-size: 0.8em; text-align: center">{html.escape(c)}'
        "</figcaption></figure>"
        for t, c in zip(tiles, captions, strict=True)
    )
    cols = min(columns, len(tiles))
    body = (
        f'<div style="display: grid; grid-template-columns: repeat({cols}, {size}px); '
        f'gap: 8px">{figures}</div>'
    )
    png = to_png(grid(tiles, captions if any(captions) else None, columns=cols, cell=size))
    return View([body], f"{len(tiles)} picture(s)", png)
