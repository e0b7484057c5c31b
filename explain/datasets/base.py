"""What every dataset is: an ordered list of :class:`Item` (name, class, where it lives, what is
known about it) plus the class names and the files skipped while listing.

Pixels are read one image at a time (:meth:`ImageDataset.load`), so a dataset never holds more
than its file list.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DatasetError
from ..images import ImageSource, LoadedImage, load_image

if TYPE_CHECKING:
    from .annotations import ImageAnnotation

#: File extensions treated as images when listing folders and archives (lower case).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".bmp",
        ".gif",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".ico",
    }
)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (see :data:`IMAGE_EXTENSIONS`)."""
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Item:
    """One image of a dataset.

    Attributes:
        name: display name, the path inside the dataset (``"cat/001.jpg"``).
        label: index into the dataset's ``label_names``; -1 when the dataset has no labels.
        location: where it lives, for reports (a file path, ``"archive.zip/cat/001.jpg"``, ...).
        ref: what the dataset reads the pixels from (a path, an archive member, an index).
        key: what the cache key records of it (name, size, modification time or CRC).
        truth: its ground truth in the image's own pixels (objects with boxes and classes, or
            a mask), or None; evaluation scores localisation on it, embeddings ignore it.
    """

    name: str
    label: int
    location: str
    ref: Any
    key: tuple
    truth: ImageAnnotation | None = field(default=None, compare=False)

    @property
    def path(self) -> str:
        """Where the image lives (same as ``location``)."""
        return self.location


class ImageDataset:
    """An ordered list of images with optional class labels and ground truth.

    Attributes:
        items: the images, in a fixed order (sorted paths, or generation order).
        label_names: class names; ``items[i].label`` indexes into them. Empty when unlabelled.
        skipped: ``(name, reason)`` for files left out while listing (not images, hidden, ...).
        description: one line saying what the dataset is, for reports.
        notes: anything worth telling the user about how it was read.
    """

    kind = "images"

    def __init__(
        self,
        items: Sequence[Item],
        label_names: Sequence[str],
        skipped: Sequence[tuple[str, str]] = (),
        description: str = "",
    ):
        self.items = list(items)
        self.label_names = [str(n) for n in label_names]
        self.skipped = list(skipped)
        self.description = description or f"{len(self.items)} images"
        self.notes: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        classes = f", {len(self.label_names)} classes" if self.label_names else ""
        return f"{type(self).__name__}({len(self)} images{classes}: {self.description})"

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 class indices, -1 where unknown."""
        return np.array([item.label for item in self.items], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    @property
    def paths(self) -> list[str]:
        """Where each image lives (file paths for folders, ``archive/member`` for zips)."""
        return [item.location for item in self.items]

    @property
    def has_labels(self) -> bool:
        return bool(self.label_names) and any(item.label >= 0 for item in self.items)

    @property
    def has_truth(self) -> bool:
        """Whether any image carries ground truth (boxes, classes or a mask)."""
        return any(item.truth is not None for item in self.items)

    def read(self, ref: Any) -> ImageSource:
        """What :func:`explain.images.load_image` reads for an item's ``ref`` (the ref itself
        here; archives and generators override it)."""
        return ref

    def relative_path(self, index: int) -> str:
        """Image ``index``'s path inside the dataset as stored (wrapper folders included),
        for matching annotations; its name where there is no such path."""
        return self.items[index].name

    def source(self, index: int) -> ImageSource:
        """What :func:`explain.images.load_image` reads for image ``index``."""
        return self.read(self.items[index].ref)

    def load(self, index: int) -> LoadedImage:
        """Image ``index`` as RGB; raises :class:`~explain.ImageLoadError` when unreadable."""
        return load_image(self.source(index))

    def signature(self) -> dict[str, Any]:
        """Everything the pixels depend on, for cache keys (no pixel is read; ground truth is
        not part of it)."""
        return {
            "kind": self.kind,
            "labels": self.label_names,
            "items": [[item.name, item.label, *item.key] for item in self.items],
        }

    def subset(self, indices: Iterable[int]) -> ImageDataset:
        """The same dataset restricted to ``indices`` (in that order)."""
        other = copy.copy(self)
        other.items = [self.items[int(i)] for i in indices]
        other.skipped = list(self.skipped)
        other.notes = list(self.notes)
        other.description = (
            f"{len(other.items)} of {len(self.items)} images from {self.description}"
        )
        return other

    def subsample(self, n: int | None, seed: int = 0) -> ImageDataset:
        """At most ``n`` images, stratified by class, the same ones for the same seed."""
        if n is None or n >= len(self):
            return self
        return self.subset(stratified_indices(self.labels, n, seed))


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Pick ``n`` of ``len(labels)`` indices, each class in proportion to its size.

    Quotas follow the largest-remainder rule; every class keeps at least one image when ``n``
    allows it. Deterministic for a given ``seed``; the result is sorted.

    Args:
        labels: ``(N,)`` class per sample (any integers; -1 is a class like the others).
        n: how many to keep.
        seed: seeds the choice within each class.

    Returns:
        ``(min(n, N),)`` int64 sorted indices.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n < 0:
        raise DatasetError(f"max_images must be positive, got {n}.")
    if n >= total:
        return np.arange(total, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / total
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    if n >= len(classes):
        for empty in np.flatnonzero(quota == 0):
            quota[int(np.argmax(quota))] -= 1
            quota[empty] = 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:q]
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
