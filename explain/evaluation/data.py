"""What an evaluation runs on: images as the model sees them, their labels and, where they
exist, object masks and boxes in the same geometry.

Accepted datasets: anything :func:`explain.datasets.load_dataset` takes (``"builtin:shapes"``
or ``"builtin:shapes:<marker>"`` with masks, a folder with one sub-folder of images per class
or a flat one, a zip archive, an :class:`~explain.datasets.ImageDataset`, and any of these with
ground truth: an :class:`~explain.datasets.AnnotatedDataset`, or ``annotations=`` a boxes CSV,
Pascal VOC XML, COCO JSON or PNG masks), and images already in memory: a list of image paths or
PIL images, ``(N, H, W, 3)`` uint8 arrays, an ``(N, 3, H, W)`` model-input tensor, an
``(images, labels[, masks])`` tuple or a :class:`~explain.builtin.shapes.ShapesData`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..builtin import HELD_OUT_SEED
from ..datasets import ImageDataset, LabelMap, is_builtin_spec, load_dataset, stratified_indices
from ..errors import ExplainError, ImageLoadError
from ..images import load_image
from ..models import ModelHandle
from .ground_truth import GroundTruth, TruthItem

#: Held-out split of the built-in shapes data (kept name; see ``explain.builtin.HELD_OUT_SEED``).
SHAPES_TEST_SEED = HELD_OUT_SEED
#: Images generated for ``"builtin:shapes"`` in an evaluation when no ``max_images`` is given
#: (fewer than for embeddings: every image costs many model calls here).
DEFAULT_SHAPES = 100


@dataclass
class EvalData:
    """Images ready for the model, with what is known about them.

    Attributes:
        x: ``(N, 3, H, W)`` float32 model input.
        labels: ``(N,)`` int64 class index in the model's labels, -1 where unknown.
        masks: ``(N, H, W)`` bool object masks in the model-input geometry, or None.
        names: ``N`` display names.
        description: one line for reports.
        skipped: ``(name, reason)`` for images left out.
        notes: anything worth telling the user about how the data was read.
        boxes: per image, ``(K, 4)`` float64 ground-truth boxes ``x0, y0, x1, y1`` in
            model-input pixels (edges, ``x1``/``y1`` exclusive), or None: then
            :meth:`object_boxes` boxes the connected regions of the masks.
        ids: ``(N,)`` int64 position of each row's image among the images chosen from the
            dataset (rows of one image share it; skipped images leave gaps), or None for
            ``0..N-1``. Random baselines and ROAD noise are seeded with it, so a block of a
            dataset gets the same values as the whole.
    """

    x: torch.Tensor
    labels: np.ndarray
    masks: np.ndarray | None
    names: list[str]
    description: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def row_ids(self) -> np.ndarray:
        """:attr:`ids`, or ``0..N-1`` when there are none."""
        return np.arange(len(self), dtype=np.int64) if self.ids is None else self.ids

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).any())

    @property
    def object_fraction(self) -> np.ndarray | None:
        """``(N,)`` share of the model input covered by the object mask, or None."""
        if self.masks is None:
            return None
        return self.masks.reshape(len(self.masks), -1).mean(axis=1)

    def object_boxes(self) -> list[np.ndarray] | None:
        """The ground-truth boxes; without given boxes, one per connected region of each mask
        (8-connected); None without masks."""
        if self.boxes is not None:
            return self.boxes
        if self.masks is None:
            return None
        from .localisation import component_boxes

        return [component_boxes(m) for m in self.masks]


def _subsample(labels: np.ndarray, max_images: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_images`` items, stratified by label (seeded), as
    :meth:`~explain.datasets.ImageDataset.subsample` picks them."""
    if max_images is not None and max_images < 1:
        raise ExplainError(f"max_images must be at least 1, got {max_images}.")
    if max_images is None or max_images >= len(labels):
        return np.arange(len(labels))
    return stratified_indices(labels, max_images, seed)


def _mask_geometry(handle: ModelHandle, masks: np.ndarray) -> np.ndarray:
    """Masks at image resolution -> the model-input geometry (replayed through the model's own
    resize and crop; see :func:`~explain.evaluation.geometry.replay_masks`)."""
    from .geometry import replay_masks

    h, w = handle.input_size
    masks = np.asarray(masks).astype(bool)
    if masks.shape[1:] == (h, w):
        return masks
    return replay_masks(handle.preprocessor, masks)


def _class_notes(handle: ModelHandle, names: Sequence[str], found: np.ndarray) -> list[str]:
    missing = [name for name, index in zip(names, found, strict=True) if index < 0]
    if not missing:
        return []
    shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
    return [
        f"{len(missing)} dataset class(es) are not class names of {handle.name} ({shown}): "
        "their images have no known label."
    ]


def read_dataset(
    handle: ModelHandle,
    dataset: ImageDataset,
    max_images: int | None = None,
    seed: int = 0,
    id_offset: int = 0,
) -> EvalData:
    """Read a dataset for ``handle``: every image through the model's preprocessing, its
    folder class mapped to the model's classes, its ground truth (if the dataset has any)
    through the same resize and crop.

    In a dataset with ground truth, images without it are left out (with a note); unreadable
    images and objects the crop cuts away are left out and counted in ``skipped`` / ``notes``;
    nothing is fatal unless no image is left.

    Args:
        handle: the model.
        dataset: the images (see :mod:`explain.datasets`).
        max_images: keep at most this many images, stratified by class (seeded).
        seed: seeds the subset.
        id_offset: added to every row's :attr:`EvalData.ids` (the position of the first
            image when ``dataset`` is a block of a larger one).

    Raises:
        ExplainError: no image is left.
    """
    indices, notes = select_items(dataset, max_images, seed)
    truth = dataset.has_truth
    labels = LabelMap(handle)
    folder = labels.classes(dataset.label_names)
    notes.extend(_class_notes(handle, dataset.label_names, folder))
    builder = GroundTruth(handle, labels) if truth else None
    skipped = list(dataset.skipped)
    tensors: list[torch.Tensor] = []
    plain: list[tuple[int, str]] = []  # (label, name) of images without ground truth
    items: list[TruthItem] = []
    positions: list[int] = []  # of each kept image among the chosen ones
    for position, i in enumerate(indices):
        item = dataset.items[int(i)]
        try:
            loaded = dataset.load(int(i))
        except ImageLoadError as exc:
            skipped.append((item.name, str(exc)))
            continue
        label = int(folder[item.label]) if item.label >= 0 else -1
        if builder is None:
            plain.append((label, item.name))
        else:
            new, reason = builder.items(
                len(tensors), item.truth, loaded.image, loaded.original_size, item.name, label
            )
            if not new:
                skipped.append((item.name, reason or "no object"))
                continue
            items.extend(new)
        tensors.append(handle.preprocess([loaded.image]))
        positions.append(id_offset + position)
    if not tensors:
        raise ExplainError(
            f"No usable image in {dataset.description}.",
            hint="; ".join(f"{n}: {r}" for n, r in skipped[:3])
            or "give a folder with one sub-folder of images per class.",
        )
    description = dataset.description
    if len(indices) < len(dataset):
        description = f"{len(indices)} of {len(dataset)} images from {description}"
    x = torch.cat(tensors)
    if builder is None:
        labels_, names = zip(*plain, strict=True)
        return EvalData(
            x, np.array(labels_, dtype=np.int64), None, list(names), description, skipped, notes,
            ids=np.array(positions, dtype=np.int64),
        )  # fmt: skip
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
    if len(items) != len(tensors):
        description += f", {len(items)} image-class items"
        notes.append(
            f"{len(items) - len(tensors)} image(s) hold objects of several classes: each class "
            "is scored as its own item."
        )
        x = x[torch.as_tensor([it.row for it in items])]
    return EvalData(
        x,
        np.array([it.label for it in items], dtype=np.int64),
        np.stack([it.mask for it in items]),
        [it.name for it in items],
        description,
        skipped,
        notes,
        boxes=[it.boxes for it in items],
        ids=np.array([positions[it.row] for it in items], dtype=np.int64),
    )


def select_items(
    dataset: ImageDataset, max_images: int | None = None, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """The items of ``dataset`` an evaluation reads: those with ground truth when it has any,
    then at most ``max_images`` stratified by class (seeded).

    Returns:
        (sorted item indices, notes).
    """
    notes = list(dataset.notes)
    indices = np.arange(len(dataset))
    if dataset.has_truth:
        indices = np.array([i for i, item in enumerate(dataset.items) if item.truth is not None])
        if len(indices) < len(dataset):
            notes.append(
                f"{len(dataset) - len(indices)} image(s) have no annotation and are left out."
            )
    return indices[_subsample(dataset.labels[indices], max_images, seed)], notes


def _in_memory(dataset: Any, annotations: Any) -> bool:
    """Images given as pixels or a list (not a dataset that :func:`load_dataset` reads); a
    list of image files with annotations is a dataset."""
    from ..builtin.shapes import ShapesData

    if isinstance(dataset, torch.Tensor | np.ndarray | tuple | ShapesData):
        return True
    if not isinstance(dataset, Sequence) or isinstance(dataset, str | bytes | ImageDataset):
        return False
    files = all(isinstance(p, str | os.PathLike) for p in dataset)
    return not (files and annotations is not None)


def _from_memory(
    handle: ModelHandle,
    dataset: Any,
    labels: Sequence[int] | np.ndarray | None,
    masks: np.ndarray | None,
    max_images: int | None,
    seed: int,
) -> EvalData:
    """Arrays, tensors and lists: labels (model class indices) and masks come as arguments."""
    from ..builtin.shapes import CLASSES, ShapesData

    names_all: list[str] | None = None
    if isinstance(dataset, ShapesData):
        found = LabelMap(handle).classes(CLASSES)
        labels, masks = found[dataset.labels], dataset.masks
        names_all = [f"shapes-{i:05d}-{CLASSES[int(v)]}" for i, v in enumerate(dataset.labels)]
        dataset = list(dataset.images)
    elif isinstance(dataset, tuple):
        if len(dataset) not in (2, 3):
            raise ExplainError(f"Expected (images, labels[, masks]), got {len(dataset)} items.")
        labels = dataset[1]
        masks = dataset[2] if len(dataset) == 3 else masks
        dataset = dataset[0]
    n = len(dataset)
    if labels is not None and len(labels) != n:
        raise ExplainError(f"{len(labels)} labels were given for {n} images.")
    if masks is not None and len(masks) != n:
        raise ExplainError(f"{len(masks)} masks were given for {n} images.")
    given = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels)
    keep = _subsample(given, max_images, seed)
    skipped: list[tuple[str, str]] = []
    if isinstance(dataset, torch.Tensor):
        if dataset.ndim != 4 or dataset.shape[1] != 3:
            raise ExplainError(f"Expected an (N, 3, H, W) tensor, got {tuple(dataset.shape)}.")
        x = dataset[torch.as_tensor(keep)].float()
    else:
        items = list(dataset)
        if names_all is None:
            names_all = [
                str(s) if isinstance(s, str | os.PathLike) else f"image {i}"
                for i, s in enumerate(items)
            ]
        tensors, kept = [], []
        for k, i in enumerate(keep):
            try:
                tensors.append(handle.preprocess([load_image(items[i]).image]))
                kept.append(k)
            except ImageLoadError as exc:
                skipped.append((names_all[i], str(exc)))
        if not tensors:
            raise ExplainError("None of the images could be read.")
        x = torch.cat(tensors)
        keep = keep[kept]
    names = [names_all[i] for i in keep] if names_all else [f"image {i}" for i in keep]
    lab = np.array([handle.class_index(int(v)) if v >= 0 else -1 for v in given[keep]])
    out_masks = None if masks is None else _mask_geometry(handle, np.asarray(masks)[keep])
    return EvalData(
        x, lab.astype(np.int64), out_masks, names, f"{len(keep)} images", skipped=skipped
    )


def load_eval_data(
    handle: ModelHandle,
    dataset: Any,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    masks: np.ndarray | None = None,
    annotations: Any = None,
    max_images: int | None = None,
    seed: int = 0,
) -> EvalData:
    """Read ``dataset`` (see the module docstring) into an :class:`EvalData` for ``handle``.

    Args:
        handle: the model (its preprocessing and class names).
        dataset: what to evaluate on.
        labels: ``(N,)`` class indices for arrays, tensors or lists of images.
        masks: ``(N, H, W)`` bool object masks for arrays, tensors or lists of images
            (model-input geometry, or the images' own size when the preprocessing can be
            replayed).
        annotations: ground truth for a folder, zip or list of image files (see
            :class:`~explain.datasets.AnnotatedDataset`).
        max_images: keep at most this many images (a seeded subset stratified by class; for
            ``"builtin:shapes"``, generate this many, default :data:`DEFAULT_SHAPES`).
        seed: seeds the subset (and the built-in generator: ``HELD_OUT_SEED + seed``).

    Raises:
        ExplainError: the dataset cannot be read or holds no image.
    """
    if _in_memory(dataset, annotations):
        if annotations is not None:
            raise ExplainError(
                "annotations= describe image files; these images are already in memory.",
                hint="give their masks with masks= (and their classes with labels=).",
            )
        return _from_memory(handle, dataset, labels, masks, max_images, seed)
    if labels is not None or masks is not None:
        raise ExplainError(
            "labels= and masks= go with images in memory (arrays, a tensor, a list).",
            hint="a dataset's classes come from its class folders and its masks from "
            "annotations= (a boxes CSV, VOC, COCO or a folder of PNG masks).",
        )
    count = (max_images or DEFAULT_SHAPES) if is_builtin_spec(dataset) else None
    data = load_dataset(dataset, count, seed, annotations=annotations)
    return read_dataset(handle, data, max_images=max_images, seed=seed)


def load_annotated(
    handle: ModelHandle, dataset: ImageDataset, max_images: int | None = None, seed: int = 0
) -> EvalData:
    """Read a dataset with ground truth (an :class:`~explain.datasets.AnnotatedDataset`) for
    ``handle``: labels, masks and boxes in the model-input geometry (see :func:`read_dataset`).

    Raises:
        ExplainError: the dataset carries no ground truth, or no annotated image is usable.
    """
    if not dataset.has_truth:
        raise ExplainError(
            f"{dataset.description} carries no ground truth.",
            hint="give AnnotatedDataset(images, annotations).",
        )
    return read_dataset(handle, dataset, max_images=max_images, seed=seed)
