"""Real sample photos shipped with the project (licences in this folder's README.md).

``sample_photos()`` lists them with their ImageNet class where the photo shows one, for the
dashboard's first screen and for examples::

    from explain.builtin.samples import sample_photos

    for photo in sample_photos():
        print(photo.name, photo.path, photo.label)  # label: ImageNet index or None
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

FOLDER = Path(__file__).parent


class SamplePhoto(NamedTuple):
    """One shipped photo.

    Attributes:
        name: short name, e.g. ``"chelsea-the-cat"`` (the file's stem).
        path: the JPEG file.
        label: ImageNet-1k class index (torchvision order) of what it shows, or ``None``.
        label_name: that class's name, or ``None``.
        caption: what the photo shows, in words.
        credit: source and licence, in one line.
    """

    name: str
    path: Path
    label: int | None
    label_name: str | None
    caption: str
    credit: str

    def __fspath__(self) -> str:
        """A path-like: pass a sample photo wherever an image file is accepted."""
        return str(self.path)

    def load(self) -> np.ndarray:
        """The photo as ``(H, W, 3)`` uint8 RGB."""
        from PIL import Image

        with Image.open(self.path) as image:
            return np.asarray(image.convert("RGB"))


_PHOTOS = (
    ("chelsea-the-cat", 281, "tabby", "Chelsea, a tabby cat", "scikit-image, CC0"),
    ("espresso", 967, "espresso", "an espresso cup on a saucer", "scikit-image, CC0"),
    ("astronaut", None, None, "the astronaut Eileen Collins", "scikit-image (NASA), public domain"),
    (
        "rocket-launch",
        None,
        None,
        "a Falcon 9 rocket on its launch pad",
        "scikit-image (SpaceX), public domain",
    ),
    (
        "chinese-palace",
        698,
        "palace",
        "a tower of a Chinese palace above a lake",
        "danielbuechele on Flickr via scikit-learn, CC BY 2.0",
    ),
    (
        "dahlia",
        None,
        None,
        "an orange dahlia",
        "vultilion on Flickr via scikit-learn, CC BY 2.0",
    ),
)


def sample_photos() -> list[SamplePhoto]:
    """Every shipped photo, the labelled ones first (cat, espresso, palace)."""
    photos = [
        SamplePhoto(name, FOLDER / f"{name}.jpg", label, label_name, caption, credit)
        for name, label, label_name, caption, credit in _PHOTOS
    ]
    return sorted(photos, key=lambda p: p.label is None)


def sample_photo(name: str) -> SamplePhoto:
    """The shipped photo called ``name``; ``KeyError`` naming the others otherwise."""
    for photo in sample_photos():
        if photo.name == name:
            return photo
    raise KeyError(f"No sample photo {name!r}; available: {[p.name for p in sample_photos()]}")
