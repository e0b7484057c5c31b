"""Datasets of images for activation collection: the one dataset package of the project,
:mod:`explain.datasets` (folders, file lists, zip uploads, the built-in shapes, annotated
images), under the names ``embeddings`` has always offered.

Annotated datasets work here too; their ground truth is simply not used.
"""

from explain.datasets import (
    DEFAULT_SHAPES,
    HELD_OUT_SEED,
    IMAGE_EXTENSIONS,
    MAX_ZIP_BYTES,
    MAX_ZIP_ENTRIES,
    AnnotatedDataset,
    FileListDataset,
    ImageDataset,
    ImageFolderDataset,
    Item,
    ShapesDataset,
    ZipDataset,
    is_image_name,
    load_dataset,
    stratified_indices,
)
from explain.errors import DatasetError

__all__ = [
    "DEFAULT_SHAPES",
    "HELD_OUT_SEED",
    "IMAGE_EXTENSIONS",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_ENTRIES",
    "AnnotatedDataset",
    "DatasetError",
    "FileListDataset",
    "ImageDataset",
    "ImageFolderDataset",
    "Item",
    "ShapesDataset",
    "ZipDataset",
    "is_image_name",
    "load_dataset",
    "stratified_indices",
]
