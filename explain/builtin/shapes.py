"""Seeded synthetic "coloured shapes" images, with ground-truth masks and a planted-bias marker.

Each image shows one filled geometric shape (the class) at a random position, size, rotation and
colour, on a cluttered background (smooth colour gradient, stripes, soft blotches, thin lines,
dots, squiggles and pixel noise). Distractors are drawn behind the object and are all thin or tiny,
so none of them can pass for a class shape.

A small solid marker square can be planted in the bottom-right corner; its colour encodes a class
(``MARKER_COLOURS``). Training on images whose marker always matches the label produces a model
that takes the shortcut, which is what the explanation methods should reveal.

Sample ``i`` of a dataset with seed ``s`` depends only on ``(s, i, parameters)``: it is drawn from
``np.random.default_rng([s, i])``, so any sample can be regenerated on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "hexagon")
NUM_CLASSES = len(CLASSES)

#: One distinct, saturated marker colour per class (RGB), in ``CLASSES`` order.
MARKER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),  # circle: red
    (0, 255, 0),  # square: green
    (0, 0, 255),  # triangle: blue
    (255, 255, 0),  # star: yellow
    (255, 0, 255),  # cross: magenta
    (0, 255, 255),  # hexagon: cyan
)

#: Marker modes: no marker; marker of the true class; marker of a uniformly random class
#: (uncorrelated with the label); marker of a random class other than the true one.
MARKER_MODES: tuple[str, ...] = ("none", "class", "random", "other")

#: Object size range, as the diameter of its circumscribed circle over the image side.
SIZE_RANGE: tuple[float, float] = (0.3, 0.6)

MIN_SIZE = 24
MAX_SIZE = 1024

# Extra clear pixels between the object's circumscribed circle and the marker area.
_MARKER_GAP = 2.0
# Minimum RGB distance between the object colour and the mean background under it.
_MIN_CONTRAST = 100.0


@dataclass(frozen=True)
class ShapeSample:
    """One generated image.

    Attributes:
        image: (H, W, 3) uint8 RGB image.
        label: Class index into ``CLASSES``.
        mask: (H, W) bool, exactly the object's pixels.
        marker_box: (x0, y0, x1, y1) of the marker, exclusive x1/y1, or None without a marker.
        marker_label: Class whose colour the marker has, or None without a marker.
        colour: The object's RGB fill colour before pixel noise.
    """

    image: np.ndarray
    label: int
    mask: np.ndarray
    marker_box: tuple[int, int, int, int] | None
    marker_label: int | None = None
    colour: tuple[int, int, int] = (0, 0, 0)


@dataclass
class ShapesData:
    """Arrays over N samples.

    Attributes:
        images: (N, H, W, 3) uint8 RGB images.
        labels: (N,) int64 class indices.
        masks: (N, H, W) bool object masks.
        marker_boxes: N entries, (x0, y0, x1, y1) or None.
        marker_labels: (N,) int64 marker class per sample, -1 where there is no marker.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    marker_boxes: list
    marker_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def marker_geometry(size: int) -> tuple[int, int]:
    """Return (marker side, margin to the image border) in pixels for an image side ``size``."""
    side = max(3, round(size * 6 / 64))
    margin = max(1, round(size * 2 / 64))
    return side, margin


def marker_box_for(size: int) -> tuple[int, int, int, int]:
    """Return the marker's (x0, y0, x1, y1) box (exclusive x1/y1) in the bottom-right corner."""
    side, margin = marker_geometry(size)
    end = size - margin
    return (end - side, end - side, end, end)


def _check_args(
    size: int, marker: str, marker_class: int | None, seed: int, index: int | None = None
) -> None:
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an int in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    if marker not in MARKER_MODES:
        raise ValueError(f"marker must be one of {MARKER_MODES}, got {marker!r}")
    if marker_class is not None:
        if not isinstance(marker_class, (int, np.integer)) or not 0 <= marker_class < NUM_CLASSES:
            raise ValueError(
                f"marker_class must be None or an int in [0, {NUM_CLASSES}), got {marker_class!r}"
            )
        if marker == "none":
            raise ValueError('marker_class needs a marker: use marker="class" with it, not "none"')
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if index is not None and (not isinstance(index, (int, np.integer)) or index < 0):
        raise ValueError(f"index must be a non-negative int, got {index!r}")


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 x and y pixel-centre coordinates scaled to [0, 1]."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(coords, coords)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(H, W, 3) float32 textured background: gradient + stripes + soft blotches."""
    xx, yy = _grid(size)
    c0, c1 = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    phi = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(phi) + yy * math.sin(phi)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    bg = c0 + (c1 - c0) * t[..., None]

    # Stripes: a tinted sinusoid in a random direction.
    psi = rng.uniform(0, math.pi)
    freq = rng.uniform(2.0, 9.0)
    wave = np.sin(
        2 * math.pi * freq * (xx * math.cos(psi) + yy * math.sin(psi)) + rng.uniform(0, 6.3)
    )
    bg += rng.uniform(8, 28) * wave[..., None] * rng.uniform(0.4, 1.0, size=3).astype(np.float32)

    # Blotches: a few translucent ellipses, blended in numpy.
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(0.08, 0.25, 2) * size
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(rng.integers(60, 150)))
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    blotch = rng.uniform(30, 225, size=3).astype(np.float32)
    return bg * (1 - alpha) + blotch * alpha


def _draw_distractors(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int) -> None:
    """Thin lines, tiny dots and squiggles: clutter that cannot be mistaken for a class shape."""

    def colour() -> tuple[int, int, int]:
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    for _ in range(int(rng.integers(1, 4))):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line([(x0, y0), (x1, y1)], fill=colour(), width=1)
    # Dots are 2x2 blocks at 64 px: a tiny PIL ellipse would render as a "+" (a mini cross).
    side = max(1, round(2 * size / 64))
    for _ in range(int(rng.integers(3, 9))):
        x, y = rng.integers(0, size - side + 1, 2)
        draw.rectangle([int(x), int(y), int(x) + side - 1, int(y) + side - 1], fill=colour())
    for _ in range(int(rng.integers(1, 3))):
        steps = rng.normal(0, size / 10, size=(int(rng.integers(4, 8)), 2))
        pts = np.cumsum(steps, axis=0) + rng.uniform(0, size, 2)
        draw.line([tuple(p) for p in pts], fill=colour(), width=1, joint="curve")


def _regular_polygon(n: int, r: float, theta: float, r_inner: float | None = None) -> np.ndarray:
    """(k, 2) vertices around the origin; with ``r_inner``, a star alternating r and r_inner."""
    if r_inner is None:
        angles = theta + 2 * math.pi * np.arange(n) / n
        radii = np.full(n, r)
    else:
        angles = theta + math.pi * np.arange(2 * n) / n
        radii = np.where(np.arange(2 * n) % 2 == 0, r, r_inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def shape_polygon(label: int, cx: float, cy: float, r: float, theta: float) -> np.ndarray | None:
    """(k, 2) polygon vertices of class ``label`` with circumradius ``r``; None for the circle."""
    name = CLASSES[label]
    if name == "circle":
        return None
    if name == "square":
        pts = _regular_polygon(4, r, theta)
    elif name == "triangle":
        pts = _regular_polygon(3, r, theta)
    elif name == "star":
        pts = _regular_polygon(5, r, theta, r_inner=0.45 * r)
    elif name == "hexagon":
        pts = _regular_polygon(6, r, theta)
    elif name == "cross":
        # A plus sign whose arm half-width is a third of its reach; corners at radius r.
        a = r / math.sqrt(1 + 9)
        b = 3 * a
        base = np.array(
            [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b),
             (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]
        )  # fmt: skip
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pts = base @ rot.T
    else:  # pragma: no cover - CLASSES and this function must agree
        raise AssertionError(name)
    return pts + np.array([cx, cy])


def _place_object(rng: np.random.Generator, size: int) -> tuple[float, float, float]:
    """Return (cx, cy, r): a circumscribed circle inside the image and clear of the marker area."""
    r = rng.uniform(*SIZE_RANGE) * size / 2
    x0, y0, _, _ = marker_box_for(size)
    lo, hi = r + 1.0, size - 1.0 - r
    for _ in range(64):
        cx, cy = rng.uniform(lo, hi, 2)
        # Distance from the centre to the marker box (which extends to the image corner).
        dx, dy = max(x0 - cx, 0.0), max(y0 - cy, 0.0)
        if math.hypot(dx, dy) >= r + _MARKER_GAP:
            return float(cx), float(cy), float(r)
    return lo, lo, float(r)  # top-left corner always clears the bottom-right marker


def _object_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A random colour far enough from ``under`` (mean RGB of the background it covers)."""
    best, best_d = None, -1.0
    for _ in range(16):
        c = rng.integers(0, 256, 3)
        d = float(np.linalg.norm(c - under))
        if d >= _MIN_CONTRAST:
            return tuple(int(v) for v in c)
        if d > best_d:
            best, best_d = c, d
    return tuple(int(v) for v in best)


def _marker_label(rng: np.random.Generator, label: int, marker: str, marker_class: int | None):
    if marker == "none":
        return None
    if marker_class is not None:
        return int(marker_class)
    if marker == "class":
        return label
    if marker == "random":
        return int(rng.integers(NUM_CLASSES))
    return int((label + rng.integers(1, NUM_CLASSES)) % NUM_CLASSES)  # "other"


def make_sample(
    index: int,
    seed: int = 0,
    size: int = 64,
    marker: str = "none",
    marker_class: int | None = None,
    *,
    noise: bool = True,
) -> ShapeSample:
    """Generate sample ``index`` of the dataset with ``seed``.

    Args:
        index: Sample index (>= 0); the label is ``index % NUM_CLASSES``.
        seed: Dataset seed (>= 0); datasets with different seeds are independent.
        size: Image side in pixels (square images).
        marker: One of ``MARKER_MODES``.
        marker_class: Force the marker to this class's colour (needs a marker mode other than
            "none"; overrides the mode's choice of colour).
        noise: Add per-pixel noise (set False for a clean rendering, e.g. to test masks; all
            other content is identical).

    Returns:
        The sample; the object never overlaps the marker area, even when there is no marker.
    """
    _check_args(size, marker, marker_class, seed, index)
    rng = np.random.default_rng([int(seed), int(index)])
    label = int(index) % NUM_CLASSES

    bg = _background(rng, size)
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    _draw_distractors(rng, ImageDraw.Draw(canvas), size)

    cx, cy, r = _place_object(rng, size)
    theta = rng.uniform(0, 2 * math.pi)
    mask_img = Image.new("1", (size, size), 0)
    poly = shape_polygon(label, cx, cy, r, theta)
    if poly is None:
        ImageDraw.Draw(mask_img).ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        ImageDraw.Draw(mask_img).polygon([tuple(p) for p in poly], fill=1)
    mask = np.asarray(mask_img, dtype=bool)

    image = np.asarray(canvas, dtype=np.float32)
    colour = _object_colour(rng, image[mask].mean(axis=0))
    image[mask] = colour
    sigma = rng.uniform(3.0, 10.0)
    pixel_noise = rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    if noise:
        image += pixel_noise
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    m_label = _marker_label(rng, label, marker, marker_class)
    box = None
    if m_label is not None:
        box = marker_box_for(size)
        x0, y0, x1, y1 = box
        image[y0:y1, x0:x1] = MARKER_COLOURS[m_label]
    return ShapeSample(image, label, mask, box, m_label, colour)


def make_dataset(
    n: int,
    seed: int = 0,
    size: int = 64,
    marker: str = "none",
    marker_class: int | None = None,
    start: int = 0,
    *,
    noise: bool = True,
) -> ShapesData:
    """Generate samples ``start .. start + n - 1`` of the dataset with ``seed``.

    Labels cycle through the classes, so class counts differ by at most one.

    Returns:
        ``ShapesData`` with (N, H, W, 3) uint8 images, (N,) int64 labels, (N, H, W) bool masks.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}")
    _check_args(size, marker, marker_class, seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    labels = np.empty(n, dtype=np.int64)
    marker_labels = np.full(n, -1, dtype=np.int64)
    boxes: list = []
    for i in range(n):
        s = make_sample(start + i, seed, size, marker, marker_class, noise=noise)
        images[i], masks[i], labels[i] = s.image, s.mask, s.label
        if s.marker_label is not None:
            marker_labels[i] = s.marker_label
        boxes.append(s.marker_box)
    return ShapesData(images, labels, masks, boxes, marker_labels)
