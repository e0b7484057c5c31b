"""Ground truth in the model's input: what is known about one image (its annotated objects, or
its mask) becomes, for one model, evaluation items with the model's class, an object mask and
boxes in model-input pixels, through the model's own resize and crop.

An image with objects of several classes becomes one evaluation item per class (the
pointing-game protocol on multi-label data: the map of a class is scored against the objects
of that class), named ``"file [class]"``; an image with one class stays one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..datasets.annotations import ImageAnnotation, ObjectAnnotation
from ..datasets.classes import LabelMap
from ..models import ModelHandle
from .coco_masks import segmentation_to_mask
from .geometry import InputGeometry, boxes_to_mask, input_geometry, replay_masks
from .localisation import component_boxes


@dataclass
class TruthItem:
    """One evaluation item: an image (its row in the model input) scored for one class.

    Attributes:
        row: row of the image in the model-input tensor.
        label: the model's class index, -1 when unknown.
        mask: ``(H, W)`` bool object mask in the model input.
        boxes: ``(K, 4)`` float64 boxes in model-input pixels (edges).
        name: display name.
    """

    row: int
    label: int
    mask: np.ndarray
    boxes: np.ndarray
    name: str


def _scaled(box: tuple[float, float, float, float], fx: float, fy: float) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0 * fx, y0 * fy, x1 * fx, y1 * fy]


class GroundTruth:
    """Turns the ground truth of images into evaluation items for one model, counting what it
    had to adapt (boxes scaled with a resized image, boxes the crop cuts away) for notes.

    Args:
        handle: the model (its preprocessing and classes).
        labels: maps annotated classes to the model's classes (shared, for its notes).
    """

    def __init__(self, handle: ModelHandle, labels: LabelMap):
        self.handle = handle
        self.labels = labels
        self.geometries: dict[tuple[int, int], InputGeometry] = {}
        self.rescaled = 0
        self.cropped_boxes = 0

    def geometry(self, size: tuple[int, int]) -> InputGeometry:
        if size not in self.geometries:
            self.geometries[size] = input_geometry(self.handle.preprocessor, size)
        return self.geometries[size]

    def objects(self, entry: ImageAnnotation, image: Image.Image, folder_label: int):
        """(class, objects, whole-image mask or None) groups of one image."""
        if entry.has_mask:
            mask = entry.read_mask()
            if mask.shape != (image.height, image.width):
                mask = np.asarray(
                    Image.fromarray(mask).resize(image.size, Image.Resampling.NEAREST), dtype=bool
                )
            boxes = component_boxes(mask)
            objects = [ObjectAnnotation(tuple(b)) for b in boxes]
            return [(folder_label, objects, mask)]
        groups: dict[Any, tuple[int, list[ObjectAnnotation]]] = {}
        for obj in entry.objects:
            index = self.labels(obj)
            if index < 0 and obj.label is None:
                index = folder_label
            key = index if index >= 0 else ("?", obj.label)
            groups.setdefault(key, (index, []))[1].append(obj)
        return [(index, objs, None) for index, objs in groups.values()]

    def items(
        self, row: int, entry: ImageAnnotation, image: Image.Image, stored: tuple[int, int],
        name: str, folder_label: int,
    ) -> tuple[list[TruthItem], str | None]:  # fmt: skip
        """The evaluation items of one image (one per class), or none and the reason.

        Args:
            row: the image's row in the model-input tensor.
            entry: its ground truth, in the pixels of the image as annotated.
            image: the image as loaded (EXIF rotation applied).
            stored: ``(W, H)`` of the file before any rotation or downscaling.
            name: display name.
            folder_label: the model's class of its folder (-1 if none): the class of a mask
                and of objects without one.
        """
        w, h = image.size
        if stored == (h, w):  # turned by its EXIF orientation: boxes are drawn on the upright view
            stored = (w, h)
        annotated = entry.size or stored
        if annotated != (w, h) and not entry.has_mask:
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
            out.append(TruthItem(row, index, mask, mapped, shown))
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
