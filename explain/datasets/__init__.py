"""Datasets of images, for evaluation and embeddings alike: folders, file lists, zip archives,
the built-in shapes, and any of these with ground truth (boxes, classes, masks).

Every dataset is an :class:`ImageDataset`: an ordered list of :class:`Item` (name, label,
location, ground truth) plus the class names and the files skipped while listing. Pixels are
read one image at a time, so a dataset never holds more than its file list.

- :func:`load_dataset` (``loading.py``) turns what a user gives into a dataset (the one entry
  point); ``sources.py`` picks the reader.
- Readers: :class:`ImageFolderDataset` and :class:`FileListDataset` (``folders.py``; class
  sub-folders or flat, see ``layout.py``), :class:`ZipDataset` (``archives.py``: path
  traversal and zip bombs refused), :class:`ShapesDataset` and the ``"builtin:"`` specs
  (``builtin.py``), :class:`AnnotatedDataset` (``annotated.py``) with the annotation readers
  (``annotations.py``: boxes CSV, Pascal VOC, COCO, PNG masks).
- What they share: :class:`Item`, :class:`ImageDataset`, :data:`IMAGE_EXTENSIONS`, stratified
  sub-sampling (``base.py``).
- Class names to a model's classes: :class:`LabelMap`, :func:`match_classes` (``classes.py``).
- One held-out seed: ``"builtin:shapes"`` draws from :data:`~explain.builtin.HELD_OUT_SEED`.
"""

from ..builtin import HELD_OUT_SEED, TRAINING_SEED
from ..errors import DatasetError
from .annotated import AnnotatedDataset
from .annotations import (
    FORMATS,
    Annotations,
    ImageAnnotation,
    ObjectAnnotation,
    load_mask,
    read_annotations,
    read_boxes_csv,
    read_coco,
    read_mask_folder,
    read_voc,
    read_voc_file,
)
from .archives import MAX_ZIP_BYTES, MAX_ZIP_ENTRIES, ZipDataset
from .base import IMAGE_EXTENSIONS, ImageDataset, Item, is_image_name, stratified_indices
from .builtin import (
    DEFAULT_SHAPES,
    BuiltinSpec,
    ShapesDataset,
    builtin_dataset,
    is_builtin_spec,
    parse_builtin_spec,
)
from .classes import LabelMap, match_classes
from .folders import FileListDataset, ImageFolderDataset
from .loading import load_dataset

__all__ = [
    "DEFAULT_SHAPES",
    "FORMATS",
    "HELD_OUT_SEED",
    "IMAGE_EXTENSIONS",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_ENTRIES",
    "TRAINING_SEED",
    "AnnotatedDataset",
    "Annotations",
    "BuiltinSpec",
    "DatasetError",
    "FileListDataset",
    "ImageAnnotation",
    "ImageDataset",
    "ImageFolderDataset",
    "Item",
    "LabelMap",
    "ObjectAnnotation",
    "ShapesDataset",
    "ZipDataset",
    "builtin_dataset",
    "is_builtin_spec",
    "is_image_name",
    "load_dataset",
    "load_mask",
    "match_classes",
    "parse_builtin_spec",
    "read_annotations",
    "read_boxes_csv",
    "read_coco",
    "read_mask_folder",
    "read_voc",
    "read_voc_file",
    "stratified_indices",
]
