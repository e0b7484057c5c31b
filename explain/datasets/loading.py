"""``load_dataset``: whatever a user gives (a folder, a zip, a file list, ``"builtin:shapes"``,
images with annotations) -> an :class:`~explain.datasets.base.ImageDataset`."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .annotated import AnnotatedDataset
from .archives import ZipDataset
from .base import ImageDataset
from .builtin import builtin_dataset, is_builtin_spec
from .folders import FileListDataset, ImageFolderDataset
from .layout import HELP_LAYOUT


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
        source: an :class:`ImageDataset`; a folder (class sub-folders, or flat); a ``.zip``
            path, its bytes or a file object; a list of image paths; one image path; or
            ``"builtin:shapes"`` (``"builtin:shapes:class"`` for the marked variant: held-out
            images, generator seed ``HELD_OUT_SEED + seed``, ``max_images`` of them or
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
    elif isinstance(source, ImageDataset):
        dataset = source
    elif is_builtin_spec(source):
        dataset = builtin_dataset(source, max_images, seed)
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if path.is_dir():
            dataset = ImageFolderDataset(path)
        elif path.is_file() and zipfile.is_zipfile(path):
            dataset = ZipDataset(path)
        elif path.is_file():
            dataset = FileListDataset([path])
        else:
            raise DatasetError(f"Dataset not found: {path}", hint=HELP_LAYOUT)
    elif isinstance(source, bytes | bytearray) or hasattr(source, "read"):
        dataset = ZipDataset(bytes(source) if isinstance(source, bytearray) else source)
    elif isinstance(source, Sequence | np.ndarray):
        dataset = FileListDataset(list(source))
    else:
        raise DatasetError(
            f"A dataset cannot be made from {type(source).__name__}.", hint=HELP_LAYOUT
        )
    if len(dataset) == 0:
        found = "; ".join(f"{name}: {why}" for name, why in dataset.skipped[:5])
        more = f" (and {len(dataset.skipped) - 5} more)" if len(dataset.skipped) > 5 else ""
        raise DatasetError(
            f"No images in {dataset.description}"
            + (f": {len(dataset.skipped)} files skipped, {found}{more}." if found else "."),
            hint=HELP_LAYOUT,
        )
    return dataset.subsample(max_images, seed)
