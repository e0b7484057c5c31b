"""Datasets shipped with the project, named ``"builtin:<name>[:<variant>]"``: today the
synthetic shapes (:mod:`explain.builtin.shapes`), every image with its object mask.

``"builtin:shapes"`` always draws held-out images (generator seed
:data:`~explain.builtin.HELD_OUT_SEED` plus the run's seed), never the images the built-in
shapes models were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..builtin import HELD_OUT_SEED, TRAINING_SEED
from ..errors import DatasetError
from ..images import ImageSource
from .annotations import ImageAnnotation
from .base import ImageDataset, Item

#: Images generated for ``"builtin:shapes"`` when no count is given.
DEFAULT_SHAPES = 600
#: Names after ``"builtin:"`` that are datasets.
BUILTIN_DATASETS = ("shapes",)
_HELP = "use 'builtin:shapes' (or 'builtin:shapes:class' with the class-coloured corner marker)."


@dataclass(frozen=True)
class BuiltinSpec:
    """A parsed ``"builtin:shapes[:marker]"``.

    Attributes:
        name: the dataset (``"shapes"``).
        marker: corner marker mode of the shapes (``"none"``, ``"class"``, ``"random"``,
            ``"other"``).
    """

    name: str
    marker: str = "none"


def is_builtin_spec(source: Any) -> bool:
    """Whether ``source`` names a built-in dataset (a ``"builtin:..."`` string that is not an
    existing path)."""
    return isinstance(source, str) and source.startswith("builtin:") and not Path(source).exists()


def parse_builtin_spec(spec: str) -> BuiltinSpec:
    """``"builtin:shapes"`` or ``"builtin:shapes:<marker>"`` -> :class:`BuiltinSpec`.

    Raises:
        DatasetError: not a built-in dataset.
    """
    _, _, rest = spec.partition(":")
    name, _, marker = rest.partition(":")
    if name not in BUILTIN_DATASETS:
        raise DatasetError(f"There is no built-in dataset {spec!r}.", hint=_HELP)
    return BuiltinSpec(name, marker or "none")


def builtin_dataset(spec: str, n: int | None = None, seed: int = 0) -> ImageDataset:
    """The built-in dataset ``spec`` with ``n`` held-out images (default
    :data:`DEFAULT_SHAPES`), generator seed ``HELD_OUT_SEED + seed``.

    Raises:
        DatasetError: an unknown name, a bad marker, or a negative seed.
    """
    parsed = parse_builtin_spec(spec)
    if seed < 0:
        raise DatasetError(
            f"The seed of a built-in dataset must be 0 or more, got {seed}.",
            hint="negative seeds could reach the images the built-in models were trained on.",
        )
    return ShapesDataset(n or DEFAULT_SHAPES, seed=HELD_OUT_SEED + seed, marker=parsed.marker)


class ShapesDataset(ImageDataset):
    """Images of the built-in synthetic shapes generator (:mod:`explain.builtin.shapes`), each
    with its object mask as ground truth.

    Args:
        n: how many images (labels cycle through the classes).
        seed: generator seed; image ``i`` depends only on ``(seed, i)``.
        size: image side in pixels.
        marker: corner marker mode, ``"none"``, ``"class"``, ``"random"`` or ``"other"``.
    """

    kind = "shapes"

    def __init__(
        self, n: int = DEFAULT_SHAPES, seed: int = 0, size: int = 64, marker: str = "none"
    ):
        from ..builtin.shapes import CLASSES, make_dataset

        try:
            data = make_dataset(int(n), seed=seed, size=size, marker=marker)
        except ValueError as exc:
            raise DatasetError(f"Cannot generate the shapes dataset: {exc}", hint=_HELP) from exc
        self.images = data.images
        self.params = {"n": int(n), "seed": int(seed), "size": int(size), "marker": marker}
        prefix = f"shapes-s{seed}" + ("" if marker == "none" else f"-{marker}")
        items = []
        for i, label in enumerate(data.labels):
            name = f"{prefix}-{i:05d}-{CLASSES[label]}.png"
            truth = ImageAnnotation(name, size=(size, size), mask=data.masks[i])
            items.append(Item(name, int(label), f"builtin:shapes/{prefix}/{i:05d}", i, (i,), truth))
        held_out = "held-out " if seed != TRAINING_SEED else ""
        super().__init__(
            items,
            CLASSES,
            (),
            f"built-in shapes, {n} {held_out}images (seed {seed}, marker {marker})",
        )

    def read(self, ref: Any) -> ImageSource:
        return self.images[ref]

    def signature(self) -> dict[str, Any]:
        return {**super().signature(), "params": self.params}
