"""Images with ground truth, read for one model: every image through the model's
preprocessing, its boxes and masks through the same resize and crop, its classes mapped to the
model's labels.

An image with objects of several classes becomes one evaluation item per class (the
pointing-game protocol on multi-label data: the map of a class is scored against the objects
of that class), named ``"file [class]"``; an image with one class stays one item.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ExplainError, ImageLoadError
from ..images import load_image
from ..models import ModelHandle
from .annotations import (
    Annotations,
    AnnotationSource,
    ImageAnnotation,
    ObjectAnnotation,
    load_mask,
    read_annotations,
)
from .coco_masks import segmentation_to_mask
from .data import EvalData, _list_folder, _subsample
from .geometry import InputGeometry, boxes_to_mask, input_geometry, replay_masks
from .localisation import component_boxes


@dataclass
class AnnotatedDataset:
    """Images and their ground truth, as :func:`explain.evaluation.evaluate` takes them.

    Attributes:
        images: a folder of images (class sub-folders allowed) or a list of image files.
        annotations: an :class:`~explain.evaluation.annotations.Annotations`, a boxes CSV, a
            COCO JSON, a Pascal VOC folder, a folder of PNG masks, or an uploaded CSV/JSON
            (bytes or a file object); see :func:`~explain.evaluation.annotations.read_annotations`.
        one_based: Pascal VOC coordinates are 1-based inclusive (the VOC devkit).
        include_difficult: keep objects flagged difficult (VOC) or crowd regions (COCO).
    """

    images: str | os.PathLike | Sequence[str | os.PathLike]
    annotations: Annotations | AnnotationSource
    one_based: bool = True
    include_difficult: bool = True
    notes: list[str] = field(default_factory=list)


class LabelMap:
    """Classes as annotations give them -> the model's class indices.

    An index is taken as is when the model has it (and agrees with a name given beside it); a
    name matches a model label case-insensitively, with ``_`` and ``-`` read as spaces; a
    WordNet id (``n01440764``) maps through the ImageNet-1k order when the model has 1,000
    classes (:func:`explain.builtin.imagenet.imagenet_wnids`, which needs timm).
    """

    def __init__(self, handle: ModelHandle):
        self.labels = handle.labels
        self.exact: dict[str, int] = {}
        self.loose: dict[str, int] = {}
        for i, label in enumerate(handle.labels):
            self.exact.setdefault(label.lower(), i)
            self.loose.setdefault(_loose(label), i)
        self.wnids: dict[str, int] | None = None
        self.unknown: dict[str, int] = defaultdict(int)
        self.conflicts = 0

    def _wnid(self, text: str) -> int | None:
        if not (len(text) == 9 and text[0] == "n" and text[1:].isdigit()):
            return None
        if self.wnids is None:
            self.wnids = {}
            if len(self.labels) == 1000:
                from ..builtin.imagenet import imagenet_wnids

                try:
                    self.wnids = {w: i for i, w in enumerate(imagenet_wnids())}
                except ExplainError:  # timm (which ships the list) is missing
                    self.wnids = {}
        return self.wnids.get(text)

    def by_name(self, name: str) -> int | None:
        key = name.strip().lower()
        if key in self.exact:
            return self.exact[key]
        found = self.loose.get(_loose(name))
        return found if found is not None else self._wnid(name.strip())

    def __call__(self, obj: ObjectAnnotation) -> int:
        """The model's class index of ``obj``, or -1 (remembered for a note)."""
        named = self.by_name(obj.name) if obj.name else None
        if isinstance(obj.label, int):
            in_range = 0 <= obj.label < len(self.labels)
            if in_range and (named is None or _loose(self.labels[obj.label]) == _loose(obj.name)):
                return obj.label
            if named is not None:
                self.conflicts += 1
                return named
            self.unknown[f"index {obj.label}"] += 1
            return -1
        if isinstance(obj.label, str):
            found = self.by_name(obj.label)
            if found is not None:
                return found
            self.unknown[obj.label] += 1
        return -1

    def notes(self) -> list[str]:
        out = []
        if self.unknown:
            shown = ", ".join(repr(k) for k in list(self.unknown)[:5])
            more = " ..." if len(self.unknown) > 5 else ""
            out.append(
                f"{sum(self.unknown.values())} object(s) of {len(self.unknown)} class(es) the "
                f"model does not have ({shown}{more}): their images have no known label."
            )
        if self.conflicts:
            out.append(
                f"{self.conflicts} object(s) had a class index that disagrees with their class "
                "name: the name was used."
            )
        return out


def _loose(name: str | None) -> str:
    return " ".join((name or "").lower().replace("_", " ").replace("-", " ").split())


class _ImageIndex:
    """Finds image files by relative path, file name or file name without extension."""

    def __init__(self, paths: Sequence[Path], rels: Sequence[str]):
        self.by: dict[str, dict[str, list[int]]] = {"rel": {}, "name": {}, "stem": {}}
        for i, rel in enumerate(rels):
            pure = PurePath(rel)
            for kind, key in (
                ("rel", pure.as_posix()),
                ("rel", pure.with_suffix("").as_posix()),
                ("name", pure.name),
                ("stem", pure.stem),
            ):
                bucket = self.by[kind].setdefault(key.lower(), [])
                if i not in bucket:
                    bucket.append(i)

    def find(self, file: str) -> tuple[int | None, bool]:
        """(index of the image, ambiguous?) for an annotation's file name."""
        pure = PurePath(file.replace("\\", "/"))
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


def _image_list(images: Any) -> tuple[list[Path], list[str], list[str], list[tuple[str, str]]]:
    """(paths, display names relative to the root, folder class per path, skipped)."""
    if isinstance(images, str | os.PathLike):
        root = Path(images).expanduser()
        if not root.is_dir():
            raise ExplainError(
                f"Image folder not found: {root}", hint="give the folder the images are in."
            )
        paths, classes, _, skipped = _list_folder(root)
        if not paths:
            raise ExplainError(f"No images in {root}.")
        return paths, [p.relative_to(root).as_posix() for p in paths], classes, skipped
    paths = [Path(p).expanduser() for p in images]
    if not paths:
        raise ExplainError("No images were given.")
    return paths, [p.name for p in paths], [""] * len(paths), []


@dataclass
class _Item:
    x: int  # row of the image in the input tensor
    label: int
    mask: np.ndarray
    boxes: np.ndarray
    name: str


def _scaled(box: tuple[float, float, float, float], fx: float, fy: float) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0 * fx, y0 * fy, x1 * fx, y1 * fy]


class _Builder:
    """Turns matched (image, annotation) pairs into evaluation items for one model."""

    def __init__(self, handle: ModelHandle, dataset: AnnotatedDataset, labels: LabelMap):
        self.handle = handle
        self.dataset = dataset
        self.labels = labels
        self.geometries: dict[tuple[int, int], InputGeometry] = {}
        self.rescaled = 0
        self.cropped_boxes = 0

    def geometry(self, size: tuple[int, int]) -> InputGeometry:
        if size not in self.geometries:
            self.geometries[size] = input_geometry(self.handle.preprocessor, size)
        return self.geometries[size]

    def objects(self, entry: ImageAnnotation, image: Image.Image, folder_label: int):
        """(class, objects) groups of one image, masks read from files as objects."""
        if entry.mask_file is not None:
            mask = load_mask(entry.mask_file)
            if mask.shape != (image.height, image.width):
                mask = np.asarray(
                    Image.fromarray(mask).resize(image.size, Image.Resampling.NEAREST), dtype=bool
                )
            boxes = component_boxes(mask)
            objects = [ObjectAnnotation(tuple(b)) for b in boxes]
            return [(folder_label, objects, mask)]
        kept = [o for o in entry.objects if self.dataset.include_difficult or not o.difficult]
        groups: dict[Any, tuple[int, list[ObjectAnnotation]]] = {}
        for obj in kept:
            index = self.labels(obj)
            if index < 0 and obj.label is None:
                index = folder_label
            key = index if index >= 0 else ("?", obj.label)
            groups.setdefault(key, (index, []))[1].append(obj)
        return [(index, objs, None) for index, objs in groups.values()]

    def items(
        self, row: int, entry: ImageAnnotation, image: Image.Image, stored: tuple[int, int],
        name: str, folder_label: int,
    ) -> tuple[list[_Item], str | None]:  # fmt: skip
        """The evaluation items of one image (one per class), or none and the reason."""
        w, h = image.size
        if stored == (h, w):  # turned by its EXIF orientation: boxes are drawn on the upright view
            stored = (w, h)
        annotated = entry.size or stored
        if annotated != (w, h) and entry.mask_file is None:
            self.rescaled += 1
        fx, fy = w / annotated[0], h / annotated[1]
        geometry = self.geometry((w, h))
        groups = self.objects(entry, image, folder_label)
        out = []
        for index, objects, whole_mask in groups:
            if whole_mask is not None:  # boxes already in this image's pixels
                boxes = np.asarray([o.box for o in objects]).reshape(-1, 4)
                mask = replay_masks(self.handle.preprocessor, whole_mask[None])[0]
            else:
                boxes, mask = self._boxes_and_mask(objects, geometry, annotated, (fx, fy))
            mapped = geometry.map_boxes(boxes)
            visible = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
            self.cropped_boxes += int((~visible).sum())
            mapped = mapped[visible]
            if not mask.any():
                continue
            if len(mapped) == 0:  # a segmentation without a box
                mapped = component_boxes(mask)
            label_name = self.handle.labels[index] if index >= 0 else _raw_name(objects)
            shown = name if len(groups) == 1 else f"{name} [{label_name}]"
            out.append(_Item(row, index, mask, mapped, shown))
        if not groups:
            return out, "no object annotated"
        return out, None if out else "its objects fall outside what the model sees (the crop)"

    def _boxes_and_mask(
        self,
        objects: Sequence[ObjectAnnotation],
        geometry: InputGeometry,
        annotated: tuple[int, int],
        factors: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes in the image's pixels ``(K, 4)``, and the objects' union mask in the model
        input: segmentations where given, boxes otherwise."""
        fx, fy = factors
        w, h = geometry.image_size
        boxes = np.asarray(
            [_scaled(o.box, fx, fy) for o in objects if o.box is not None], dtype=np.float64
        ).reshape(-1, 4)
        plain = np.asarray(
            [
                _scaled(o.box, fx, fy)
                for o in objects
                if o.box is not None and o.segmentation is None
            ]
        ).reshape(-1, 4)
        mask = boxes_to_mask(geometry.map_boxes(plain), self.handle.input_size)
        segs = [o.segmentation for o in objects if o.segmentation is not None]
        if segs:
            drawn = np.stack([segmentation_to_mask(s, (annotated[1], annotated[0])) for s in segs])
            if drawn.shape[1:] != (h, w):
                drawn = np.stack([
                    np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST))
                    for m in drawn
                ])  # fmt: skip
            mask |= replay_masks(self.handle.preprocessor, drawn).any(axis=0)
        return boxes, mask


def _raw_name(objects: Sequence[ObjectAnnotation]) -> str:
    first = objects[0] if objects else None
    if first is None:
        return "?"
    return str(first.name or first.label or "?")


def load_annotated(
    handle: ModelHandle, dataset: AnnotatedDataset, max_images: int | None = None, seed: int = 0
) -> EvalData:
    """Read ``dataset`` for ``handle`` into an :class:`EvalData` with labels, masks and boxes
    in the model-input geometry.

    Images without annotation, annotations without image, unreadable images and objects the
    crop cuts away are left out and counted in ``notes`` / ``skipped``; nothing is fatal
    unless no image is left.

    Args:
        handle: the model.
        dataset: images and annotations.
        max_images: keep a seeded random subset of this many annotated images.
        seed: seeds the subset.

    Raises:
        ExplainError: unreadable annotations, or no annotated image left.
    """
    annotations = read_annotations(dataset.annotations, one_based=dataset.one_based)
    paths, rels, classes, skipped = _image_list(dataset.images)
    index = _ImageIndex(paths, rels)
    notes = list(annotations.notes) + list(dataset.notes)
    matched: dict[int, ImageAnnotation] = {}
    missing, ambiguous = [], []
    for entry in annotations.images:
        found, unclear = index.find(entry.file)
        if found is None:
            (ambiguous if unclear else missing).append(entry.file)
        elif found in matched:
            matched[found].objects.extend(entry.objects)
        else:
            matched[found] = ImageAnnotation(
                entry.file, list(entry.objects), entry.size, entry.mask_file
            )
    if missing:
        notes.append(
            f"{len(missing)} annotated file(s) are not among the images (e.g. {missing[0]!r})."
        )
    if ambiguous:
        notes.append(
            f"{len(ambiguous)} annotated file name(s) match several images (e.g. "
            f"{ambiguous[0]!r}): give paths relative to the image folder."
        )
    unannotated = len(paths) - len(matched)
    if unannotated:
        notes.append(f"{unannotated} image(s) have no annotation and are left out.")
    if not matched:
        raise ExplainError(
            f"None of the {len(paths)} images has an annotation in {annotations.source}.",
            hint="annotation file names must match the image files (name or relative path).",
        )
    order = sorted(matched)
    order = [order[i] for i in _subsample(len(order), max_images, seed)]
    labels = LabelMap(handle)
    folder_map = {c.lower(): i for i, c in enumerate(handle.labels)}
    builder = _Builder(handle, dataset, labels)
    tensors: list[torch.Tensor] = []
    items: list[_Item] = []
    for i in order:
        try:
            loaded = load_image(paths[i])
        except ImageLoadError as exc:
            skipped.append((rels[i], str(exc)))
            continue
        folder_label = folder_map.get(classes[i].lower(), -1) if classes[i] else -1
        new, reason = builder.items(
            len(tensors), matched[i], loaded.image, loaded.original_size, rels[i], folder_label
        )
        if not new:
            skipped.append((rels[i], reason or "no object"))
            continue
        tensors.append(handle.preprocess([loaded.image]))
        items.extend(new)
    if not items:
        raise ExplainError(
            "No annotated image could be used.",
            hint="; ".join(f"{n}: {r}" for n, r in skipped[:3]) or None,
        )
    notes.extend(labels.notes())
    if builder.rescaled:
        notes.append(
            f"{builder.rescaled} image(s) differ in size from their annotation: boxes scaled "
            "with the image."
        )
    if builder.cropped_boxes:
        notes.append(
            f"{builder.cropped_boxes} box(es) lie wholly outside the model's crop and were dropped."
        )
    x = torch.cat(tensors)
    rows = torch.as_tensor([it.x for it in items])
    n_images = len(tensors)
    description = f"{n_images} annotated images ({annotations.describe()})"
    if len(items) != n_images:
        description += f", {len(items)} image-class items"
        notes.append(
            f"{len(items) - n_images} image(s) hold objects of several classes: each class is "
            "scored as its own item."
        )
    return EvalData(
        x[rows] if len(items) != n_images else x,
        np.array([it.label for it in items], dtype=np.int64),
        np.stack([it.mask for it in items]),
        [it.name for it in items],
        description,
        skipped,
        notes,
        boxes=[it.boxes for it in items],
    )
