"""Images on disk: a folder (class sub-folders, or flat) and a list of files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import ImageDataset, Item
from .layout import HELP_LAYOUT, ListedFile, describe_layout, is_hidden, layout_items


class ImageFolderDataset(ImageDataset):
    """A folder of images: one sub-folder per class, or flat (no labels); see
    :mod:`explain.datasets.layout`.

    Args:
        root: the folder.
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"Dataset folder not found: {root}", hint=HELP_LAYOUT)
        files: list[ListedFile] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not is_hidden([d]))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if is_hidden([filename]) or not path.is_file():
                    continue
                st = path.stat()
                rel = path.relative_to(root).as_posix()
                files.append((rel, path, (st.st_size, st.st_mtime_ns)))
        items, classes, skipped = layout_items(files, lambda _name, ref: str(ref))
        self.root = root
        super().__init__(items, classes, skipped, f"folder {root} ({describe_layout(classes)})")

    def relative_path(self, index: int) -> str:
        return Path(self.items[index].ref).relative_to(self.root).as_posix()


class FileListDataset(ImageDataset):
    """Image files given one by one, optionally with labels.

    Args:
        paths: the files. Missing ones and folders are skipped and reported.
        labels: per file, a class index (into ``label_names``) or a class name; ``None`` for an
            unlabelled dataset.
        label_names: class names when ``labels`` are indices.
    """

    kind = "files"

    def __init__(
        self,
        paths: Iterable[str | os.PathLike],
        labels: Sequence[int | str] | np.ndarray | None = None,
        label_names: Sequence[str] | None = None,
    ):
        paths = [Path(p).expanduser() for p in paths]
        if labels is not None and len(labels) != len(paths):
            raise DatasetError(
                f"{len(labels)} labels were given for {len(paths)} files.",
                hint="give one label per file, or none.",
            )
        codes, names = _encode_labels(labels, label_names, len(paths))
        items, skipped = [], []
        for path, code in zip(paths, codes, strict=True):
            if not path.is_file():
                why = "is a folder" if path.is_dir() else "file not found"
                skipped.append((str(path), why))
                continue
            st = path.stat()
            items.append(
                Item(
                    path.name,
                    code,
                    str(path),
                    path,
                    (str(path.resolve()), st.st_size, st.st_mtime_ns),
                )
            )
        super().__init__(items, names, skipped, f"{len(items)} files")


def _encode_labels(
    labels: Sequence[int | str] | np.ndarray | None, label_names: Sequence[str] | None, n: int
) -> tuple[list[int], list[str]]:
    if labels is None:
        return [-1] * n, list(label_names or [])
    values = list(labels)
    if all(isinstance(v, str) for v in values):
        names = list(label_names) if label_names else sorted(set(values))
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise DatasetError(f"Labels {unknown[:5]} are not among label_names.")
        index = {name: i for i, name in enumerate(names)}
        return [index[v] for v in values], names
    codes = [int(v) for v in values]
    top = max(codes, default=-1)
    names = list(label_names) if label_names is not None else [str(i) for i in range(top + 1)]
    if top >= len(names):
        raise DatasetError(f"Label {top} is out of range for {len(names)} label_names.")
    return codes, names
