"""What an evaluation runs on: images as the model sees them, their labels and, where they
exist, object masks in the same geometry.

Accepted datasets: ``"builtin:shapes"`` (``"builtin:shapes:<marker>"``; masks included), a
:class:`~explain.builtin.shapes.ShapesData`, a folder (one sub-folder of images per class, or
a flat folder; no masks), a list of image paths or PIL images, ``(N, H, W, 3)`` uint8 arrays,
an ``(N, 3, H, W)`` model-input tensor, an ``(images, labels[, masks])`` tuple, any object
shaped like ``embeddings.ImageDataset`` (``items``, ``label_names``, ``source(i)``), or images
with ground truth (:class:`~explain.evaluation.annotated.AnnotatedDataset`, or a folder with
``annotations=``: a boxes CSV, Pascal VOC XML, COCO JSON or PNG masks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ExplainError, ImageLoadError
from ..images import load_image
from ..models import ModelHandle

#: Held-out split of the built-in shapes data (the built-in models were trained on seed 0).
SHAPES_TEST_SEED = 1000
#: Images generated for ``"builtin:shapes"`` when no ``max_images`` is given.
DEFAULT_SHAPES = 100

_IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


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
    """

    x: torch.Tensor
    labels: np.ndarray
    masks: np.ndarray | None
    names: list[str]
    description: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.x)

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


def _subsample(n: int, max_images: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``max_images`` of ``n`` items drawn without replacement (seeded)."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    if max_images < 1:
        raise ExplainError(f"max_images must be at least 1, got {max_images}.")
    return np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))


def _label_map(names: Sequence[str], handle: ModelHandle) -> tuple[dict[str, int], list[str]]:
    """Dataset class names -> model class indices (case-insensitive), and notes."""
    lowered = {label.lower(): i for i, label in enumerate(handle.labels)}
    mapping = {name: lowered[name.lower()] for name in names if name.lower() in lowered}
    notes = []
    missing = [name for name in names if name not in mapping]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        notes.append(
            f"{len(missing)} dataset class(es) are not class names of {handle.name} ({shown}): "
            "their images have no known label."
        )
    return mapping, notes


def _mask_geometry(handle: ModelHandle, masks: np.ndarray) -> np.ndarray:
    """Masks at image resolution -> the model-input geometry (replayed through the model's own
    resize and crop; see :func:`~explain.evaluation.geometry.replay_masks`)."""
    from .geometry import replay_masks

    h, w = handle.input_size
    masks = np.asarray(masks).astype(bool)
    if masks.shape[1:] == (h, w):
        return masks
    return replay_masks(handle.preprocessor, masks)


def _preprocess_each(
    handle: ModelHandle, sources: Sequence[Any], names: Sequence[str]
) -> tuple[torch.Tensor | None, list[int], list[tuple[str, str]]]:
    """Preprocess images one by one; unreadable ones are skipped, never fatal."""
    kept, tensors, skipped = [], [], []
    for i, (source, name) in enumerate(zip(sources, names, strict=True)):
        try:
            tensors.append(handle.preprocess([load_image(source).image]))
            kept.append(i)
        except ImageLoadError as exc:
            skipped.append((name, str(exc)))
    return (torch.cat(tensors) if tensors else None), kept, skipped


def _list_folder(root: Path) -> tuple[list[Path], list[str], list[str], list[tuple[str, str]]]:
    """Image files under ``root``: (paths, class name per path or "", class names, skipped)."""
    skipped: list[tuple[str, str]] = []
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, classes = [], []
    folders = subdirs if subdirs else [root]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            if path.suffix.lower() not in _IMAGE_EXTENSIONS:
                skipped.append((str(rel), "not an image file"))
                continue
            paths.append(path)
            classes.append(folder.name if subdirs else "")
    if subdirs:
        for path in sorted(root.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                skipped.append((path.name, "outside the class sub-folders"))
    return paths, classes, [d.name for d in subdirs], skipped


def _from_sources(
    handle: ModelHandle,
    sources: Sequence[Any],
    names: Sequence[str],
    classes: Sequence[str],
    class_names: Sequence[str],
    description: str,
    skipped: list[tuple[str, str]],
    max_images: int | None,
    seed: int,
) -> EvalData:
    total = len(sources)
    keep = _subsample(total, max_images, seed)
    sources = [sources[i] for i in keep]
    names = [names[i] for i in keep]
    classes = [classes[i] for i in keep]
    mapping, notes = _label_map(class_names, handle) if class_names else ({}, [])
    x, kept, bad = _preprocess_each(handle, sources, names)
    if x is None:
        raise ExplainError(
            f"No readable image in {description}.",
            hint="give a folder with one sub-folder of images per class.",
        )
    labels = np.array([mapping.get(classes[i], -1) for i in kept], dtype=np.int64)
    if len(kept) < total:
        description = f"{len(kept)} of {description}"
    return EvalData(
        x,
        labels,
        None,
        [names[i] for i in kept],
        description,
        skipped + bad,
        notes,
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
        labels: ``(N,)`` class indices for arrays, tensors or file lists.
        masks: ``(N, H, W)`` bool object masks for arrays, tensors or file lists (model-input
            geometry, or the images' own size when the preprocessing can be replayed).
        annotations: ground truth for a folder or list of image files (see
            :class:`~explain.evaluation.annotated.AnnotatedDataset`).
        max_images: keep at most this many images (a seeded random subset, in order).
        seed: seeds the subset.

    Raises:
        ExplainError: the dataset cannot be read or holds no image.
    """
    from ..builtin.shapes import CLASSES, ShapesData, make_dataset
    from .annotated import AnnotatedDataset, load_annotated

    if annotations is not None:
        if isinstance(dataset, AnnotatedDataset):
            raise ExplainError("The dataset already carries annotations; give them once.")
        dataset = AnnotatedDataset(dataset, annotations)
    if isinstance(dataset, AnnotatedDataset):
        return load_annotated(handle, dataset, max_images=max_images, seed=seed)

    if isinstance(dataset, str) and dataset.startswith("builtin:") and not Path(dataset).exists():
        _, _, rest = dataset.partition(":")
        name, _, marker = rest.partition(":")
        if name != "shapes":
            raise ExplainError(
                f"There is no built-in dataset {dataset!r}.",
                hint="use 'builtin:shapes' or 'builtin:shapes:class' (with the corner marker).",
            )
        n = max_images or DEFAULT_SHAPES
        try:
            shapes = make_dataset(n, seed=SHAPES_TEST_SEED, size=64, marker=marker or "none")
        except ValueError as exc:
            raise ExplainError(f"Cannot generate {dataset!r}: {exc}") from exc
        data = load_eval_data(handle, shapes)
        data.description = (
            f"built-in shapes, {n} held-out images (seed {SHAPES_TEST_SEED}, marker "
            f"{marker or 'none'})"
        )
        return data
    if isinstance(dataset, ShapesData):
        keep = _subsample(len(dataset), max_images, seed)
        x = handle.preprocess(list(dataset.images[keep]))
        mapping, notes = _label_map(CLASSES, handle)
        lab = np.array([mapping.get(CLASSES[int(v)], -1) for v in dataset.labels[keep]])
        return EvalData(
            x,
            lab.astype(np.int64),
            _mask_geometry(handle, dataset.masks[keep]),
            [f"shapes-{int(i):05d}-{CLASSES[int(dataset.labels[i])]}" for i in keep],
            f"built-in shapes ({len(keep)} images)",
            notes=notes,
        )
    if isinstance(dataset, tuple) and len(dataset) in (2, 3):
        images, labels = dataset[0], dataset[1]
        masks = dataset[2] if len(dataset) == 3 else masks
        return load_eval_data(
            handle, images, labels=labels, masks=masks, max_images=max_images, seed=seed
        )
    if hasattr(dataset, "items") and hasattr(dataset, "source") and hasattr(dataset, "label_names"):
        items = list(dataset.items)
        class_names = list(dataset.label_names)
        return _from_sources(
            handle,
            [dataset.source(i) for i in range(len(items))],
            [item.name for item in items],
            [class_names[item.label] if item.label >= 0 else "" for item in items],
            class_names,
            getattr(dataset, "description", f"{len(items)} images"),
            list(getattr(dataset, "skipped", [])),
            max_images,
            seed,
        )
    if isinstance(dataset, str | os.PathLike) and Path(dataset).expanduser().is_dir():
        root = Path(dataset).expanduser()
        paths, classes, class_names, skipped = _list_folder(root)
        if not paths:
            raise ExplainError(
                f"No images in {root}.",
                hint="give a folder with one sub-folder of images per class (or a flat folder).",
            )
        return _from_sources(
            handle,
            paths,
            [str(p.relative_to(root)) for p in paths],
            classes,
            class_names,
            f"{len(paths)} images in {root}",
            skipped,
            max_images,
            seed,
        )
    if isinstance(dataset, str | os.PathLike):
        raise ExplainError(
            f"Dataset not found: {dataset}",
            hint="give a folder of class sub-folders, 'builtin:shapes', or arrays.",
        )
    # Arrays, tensors and lists: labels and masks come from the keyword arguments.
    if isinstance(dataset, torch.Tensor):
        if dataset.ndim != 4 or dataset.shape[1] != 3:
            raise ExplainError(f"Expected an (N, 3, H, W) tensor, got {tuple(dataset.shape)}.")
        n = len(dataset)
        keep = _subsample(n, max_images, seed)
        x = dataset[torch.as_tensor(keep)].float()
        names = [f"image {i}" for i in keep]
        skipped: list[tuple[str, str]] = []
    else:
        items = list(dataset)
        n = len(items)
        keep = _subsample(n, max_images, seed)
        names_all = [
            str(s) if isinstance(s, str | os.PathLike) else f"image {i}"
            for i, s in enumerate(items)
        ]
        x, kept, skipped = _preprocess_each(
            handle, [items[i] for i in keep], [names_all[i] for i in keep]
        )
        if x is None:
            raise ExplainError("None of the images could be read.")
        keep = keep[kept]
        names = [names_all[i] for i in keep]
    lab = np.full(len(keep), -1, dtype=np.int64)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ExplainError(f"{len(labels)} labels were given for {n} images.")
        lab = np.array([handle.class_index(int(v)) if v >= 0 else -1 for v in labels[keep]])
    out_masks = None
    if masks is not None:
        masks = np.asarray(masks)
        if len(masks) != n:
            raise ExplainError(f"{len(masks)} masks were given for {n} images.")
        out_masks = _mask_geometry(handle, masks[keep])
    return EvalData(
        x, lab.astype(np.int64), out_masks, names, f"{len(keep)} images", skipped=skipped
    )
