"""``load_dataset``: whatever a user gives (a folder, a zip, a file list, ``"builtin:shapes"``,
images with annotations) -> an :class:`~explain.datasets.base.ImageDataset`."""

from __future__ import annotations

from typing import Any

from ..errors import DatasetError
from .annotated import AnnotatedDataset
from .base import ImageDataset
from .builtin import is_builtin_spec
from .sources import open_dataset


def load_dataset(
    source: Any,
    max_images: int | None = None,
    seed: int = 0,
    *,
    annotations: Any = None,
    one_based: bool = True,
    include_difficult: bool = True,
) -> ImageDataset:
    """Turn what a user gives into an :class:`ImageDataset`, sub-sampled to ``max_images``.

    Args:
        source: see :func:`~explain.datasets.sources.open_dataset`: an :class:`ImageDataset`;
            a folder (class sub-folders, or flat); a ``.zip`` path, its bytes or a file
            object; a list of image paths; one image path; or ``"builtin:shapes"``
            (``"builtin:shapes:class"`` for the marked variant: held-out images, generator
            seed ``HELD_OUT_SEED + seed``, ``max_images`` of them or
            :data:`~explain.datasets.builtin.DEFAULT_SHAPES`).
        max_images: keep at most this many images, stratified by class (deterministic).
        seed: seeds the sub-sampling (and the shapes generator).
        annotations: ground truth for the images (see
            :class:`~explain.datasets.annotated.AnnotatedDataset`): the result is annotated.
        one_based, include_difficult: how to read ``annotations``.

    Returns:
        The dataset; ``dataset.skipped`` lists the files left out and why.

    Raises:
        DatasetError: the source does not exist, is not understood, or holds no image.
    """
    if max_images is not None and max_images < 1:
        raise DatasetError(f"max_images must be at least 1, got {max_images}.")
    if annotations is not None:
        if is_builtin_spec(source):
            raise DatasetError(
                "Annotations describe your own images, not a built-in dataset.",
                hint="give the folder, archive or files the annotations belong to.",
            )
        dataset: ImageDataset = AnnotatedDataset(
            source, annotations, one_based=one_based, include_difficult=include_difficult
        )
    else:
        dataset = open_dataset(source, max_images, seed)
    return dataset.subsample(max_images, seed)
