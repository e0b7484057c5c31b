"""Class layouts shared by folders and archives: which listed files are images, and which class
folder each one is in.

Understood, for folders and zip archives alike:

- one sub-folder per class (``cat/001.jpg``, also nested deeper: ``cat/indoor/002.jpg``),
- a flat folder of images (no labels),
- any of these inside single wrapper folders (``upload/train/cat/001.jpg``).

Hidden files and folders (``.git``, ``.DS_Store``) and ``__MACOSX/`` are ignored; files that
are not images are skipped and reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import Item, is_image_name

_JUNK_FOLDERS = ("__MACOSX",)
#: What to tell a user whose folder or archive holds no usable image.
HELP_LAYOUT = (
    "give a folder (or .zip) with one sub-folder of images per class, e.g. cats/001.jpg and "
    "dogs/002.png, or a flat folder of images."
)

#: A listed file: (relative POSIX path, ref, key); a kept image: (name, class or None, ref, key).
ListedFile = tuple[str, Any, tuple]
_Kept = tuple[str, str | None, Any, tuple]


def is_hidden(parts: Sequence[str]) -> bool:
    """Whether a relative path (as its parts) is hidden or junk (``.git``, ``__MACOSX``)."""
    return any(p.startswith(".") or p in _JUNK_FOLDERS for p in parts)


def _classes(files: Sequence[ListedFile]) -> tuple[list[_Kept], list[tuple[str, str]]]:
    """Find the classes of files listed by relative path: the first folder under any single
    wrapper folders ("upload/train/cat/x.jpg" -> class "cat"); no folder -> no labels."""
    skipped: list[tuple[str, str]] = []
    images: list[tuple[tuple[str, ...], Any, tuple]] = []
    for rel, ref, key in files:
        if is_image_name(rel):
            images.append((PurePosixPath(rel).parts, ref, key))
        else:
            suffix = PurePosixPath(rel).suffix or "no extension"
            skipped.append((rel, f"not an image file ({suffix})"))
    strip = 0
    while (
        images
        and all(len(p) > strip + 1 for p, _, _ in images)
        and (len({p[strip] for p, _, _ in images}) == 1)
    ):
        strip += 1
    labelled = any(len(p) > strip + 1 for p, _, _ in images)
    kept: list[_Kept] = []
    for p, ref, key in images:
        name = "/".join(p[strip:])
        if labelled and len(p) == strip + 1:
            skipped.append((name, "outside the class folders (one sub-folder per class)"))
        else:
            kept.append((name, p[strip] if labelled else None, ref, key))
    return kept, skipped


def layout_items(
    files: Sequence[ListedFile], location: Callable[[str, Any], str]
) -> tuple[list[Item], list[str], list[tuple[str, str]]]:
    """Items of a listing (hidden files already removed), sorted by name and labelled by their
    class's index in the sorted class names.

    Args:
        files: ``(relative POSIX path, ref, key)`` per file.
        location: ``(name, ref) -> location`` of an item, for reports.

    Returns:
        (items, class names, ``[(name, reason)]`` for the files skipped).
    """
    kept, skipped = _classes(files)
    classes = sorted({cls for _, cls, _, _ in kept if cls is not None})
    index = {name: i for i, name in enumerate(classes)}
    items = [
        Item(name, index[cls] if cls is not None else -1, location(name, ref), ref, key)
        for name, cls, ref, key in sorted(kept, key=lambda k: k[0])
    ]
    return items, classes, skipped


def describe_layout(classes: Sequence[str]) -> str:
    """``"10 class folders"`` or ``"flat, no labels"``."""
    return f"{len(classes)} class folders" if classes else "flat, no labels"
