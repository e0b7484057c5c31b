"""Images with their ground truth: any dataset (a folder, a zip archive, a file list) whose
images are matched with annotations (a boxes CSV, Pascal VOC XML, COCO JSON, PNG masks) by
relative path, file name, or file name without extension.

The ground truth rides on each :class:`~explain.datasets.base.Item` (``item.truth``, in the
image's own pixels): evaluation scores localisation on it, embeddings ignore it, and the
activation cache key is that of the images alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from ..errors import DatasetError
from ..images import ImageSource
from .annotations import Annotations, AnnotationSource, ImageAnnotation, read_annotations
from .base import ImageDataset
from .sources import open_dataset


class AnnotatedDataset(ImageDataset):
    """A dataset whose images carry ground truth, as ``explain.evaluation.evaluate`` takes it.

    Images without annotation stay in the dataset with ``truth = None`` (evaluation leaves
    them out, embeddings use them); annotations without an image are counted in ``notes``.

    Args:
        images: what :func:`~explain.datasets.sources.open_dataset` takes: a folder of
            images (class sub-folders allowed), a ``.zip`` (path, bytes or file object), a
            list of image files, or an :class:`~explain.datasets.base.ImageDataset`.
        annotations: an :class:`~explain.datasets.annotations.Annotations`, a boxes CSV, a
            COCO JSON, a Pascal VOC folder, a folder of PNG masks, or an uploaded CSV/JSON
            (bytes or a file object); see :func:`~explain.datasets.annotations.read_annotations`.
        one_based: Pascal VOC coordinates are 1-based inclusive (the VOC devkit).
        include_difficult: keep objects flagged difficult (VOC) or crowd regions (COCO).

    Attributes:
        images: the dataset of the images alone.
        annotations: the annotations as read.

    Raises:
        DatasetError: no image has an annotation (or the images cannot be read at all).
        ExplainError: the annotations cannot be read.
    """

    kind = "annotated"

    def __init__(
        self,
        images: str | os.PathLike | bytes | BinaryIO | Sequence[str | os.PathLike] | ImageDataset,
        annotations: Annotations | AnnotationSource,
        one_based: bool = True,
        include_difficult: bool = True,
    ):
        base = open_dataset(images)
        if isinstance(base, AnnotatedDataset):
            raise DatasetError("The dataset already carries annotations; give them once.")
        truth = read_annotations(annotations, one_based=one_based)
        paths = [(base.relative_path(i), item.name) for i, item in enumerate(base.items)]
        matched, notes = _match(paths, truth.images, include_difficult)
        if not matched:
            raise DatasetError(
                f"None of the {len(base)} images has an annotation in {truth.source}.",
                hint="annotation file names must match the image files (name or relative path).",
            )
        items = [
            dataclasses.replace(item, truth=matched.get(i)) for i, item in enumerate(base.items)
        ]
        super().__init__(
            items, base.label_names, base.skipped, f"{base.description} with {truth.describe()}"
        )
        self.images = base
        self.annotations = truth
        self.notes = [*base.notes, *truth.notes, *notes]

    def read(self, ref: Any) -> ImageSource:
        return self.images.read(ref)

    def signature(self) -> dict[str, Any]:
        """The signature of the images alone (ground truth does not change activations)."""
        return {**self.images.signature(), "items": super().signature()["items"]}


class _NameIndex:
    """Finds images by relative path (as stored, or as named after wrapper folders are
    dropped), file name, or file name without extension."""

    def __init__(self, paths: Sequence[tuple[str, str]]):
        self.by: dict[str, dict[str, list[int]]] = {"rel": {}, "name": {}, "stem": {}}
        for i, (stored, name) in enumerate(paths):
            pure = PurePosixPath(stored)
            shown = PurePosixPath(name)
            for kind, key in (
                ("rel", pure.as_posix()),
                ("rel", pure.with_suffix("").as_posix()),
                ("rel", shown.as_posix()),
                ("rel", shown.with_suffix("").as_posix()),
                ("name", pure.name),
                ("stem", pure.stem),
            ):
                bucket = self.by[kind].setdefault(key.lower(), [])
                if i not in bucket:
                    bucket.append(i)

    def find(self, file: str) -> tuple[int | None, bool]:
        """(index of the image, ambiguous?) for an annotation's file name."""
        pure = PurePosixPath(file.replace("\\", "/"))
        for kind, key in (
            ("rel", pure.as_posix()),
            ("name", pure.name),
            ("stem", pure.stem if pure.suffix else pure.name),
        ):
            hits = self.by[kind].get(key.lower(), [])
            if len(hits) == 1:
                return hits[0], False
            if len(hits) > 1:
                return None, True
        return None, False


def _match(
    paths: Sequence[tuple[str, str]], entries: Sequence[ImageAnnotation], include_difficult: bool
) -> tuple[dict[int, ImageAnnotation], list[str]]:
    """Annotation entries attached to image indices (entries of one image merged), and notes
    on the entries that match no image or several.

    Args:
        paths: per image, (path as stored, name in the dataset).
        entries: the annotations.
        include_difficult: keep objects flagged difficult.
    """
    index = _NameIndex(paths)
    matched: dict[int, ImageAnnotation] = {}
    missing, ambiguous = [], []
    for entry in entries:
        found, unclear = index.find(entry.file)
        objects = [o for o in entry.objects if include_difficult or not o.difficult]
        if found is None:
            (ambiguous if unclear else missing).append(entry.file)
        elif found in matched:
            matched[found].objects.extend(objects)
        else:
            matched[found] = dataclasses.replace(entry, objects=objects)
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} annotated file(s) are not among the images (e.g. {missing[0]!r})."
        )
    if ambiguous:
        notes.append(
            f"{len(ambiguous)} annotated file name(s) match several images (e.g. "
            f"{ambiguous[0]!r}): give paths relative to the image folder."
        )
    return matched, notes
