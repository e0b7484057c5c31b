"""Which dataset reads what a user gives: a folder, a zip archive (path, bytes or an upload), a
list of files, one file, or a ``"builtin:"`` name -> the :class:`~explain.datasets.base.
ImageDataset` of its images (ground truth aside: see :func:`~explain.datasets.load_dataset`)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .archives import ZipDataset
from .base import ImageDataset
from .builtin import builtin_dataset, is_builtin_spec
from .folders import FileListDataset, ImageFolderDataset
from .layout import HELP_LAYOUT


def open_dataset(source: Any, count: int | None = None, seed: int = 0) -> ImageDataset:
    """The dataset of ``source``, whole (no sub-sampling).

    Args:
        source: an :class:`ImageDataset` (returned as is); a folder (class sub-folders, or
            flat); a ``.zip`` path, its bytes or a file object; a list of image paths; one
            image path; or ``"builtin:shapes"`` / ``"builtin:shapes:<marker>"``.
        count: images to generate for a built-in dataset (its default when None).
        seed: a built-in dataset's run seed (images from ``HELD_OUT_SEED + seed``).

    Raises:
        DatasetError: the source does not exist, is not understood, or holds no image.
    """
    if isinstance(source, ImageDataset):
        dataset = source
    elif is_builtin_spec(source):
        dataset = builtin_dataset(source, count, seed)
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
    return dataset
