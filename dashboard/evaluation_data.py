"""The Evaluate page's data: a dataset with its ground truth from what the user gives (the
built-in shapes with their masks, a folder with a boxes CSV / COCO JSON / Pascal VOC folder /
PNG mask folder, or a zip of images with an uploaded annotation file), and one evaluated image
with its ground truth in the model's input, for drawing. No widgets here."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from explain import ExplainError, ModelHandle
from explain.datasets import ImageDataset, ZipDataset, load_dataset
from explain.evaluation import read_dataset

from . import sources

#: Files an annotation archive may hold (anything else in it is ignored).
ANNOTATION_FILES = (".csv", ".json", ".xml", ".png")
#: Largest total size of the files unpacked from an annotation archive (bytes).
MAX_ANNOTATION_BYTES = 256 * 2**20
#: Ground-truth files looked for next to an images folder when none is named.
TRUTH_NAMES = ("boxes.csv", "annotations.csv", "annotations.json", "instances.json")
TRUTH_FOLDERS = ("Annotations", "annotations", "masks", "SegmentationObject")


@dataclass(frozen=True)
class Upload:
    """A file the browser sent: its name and its bytes."""

    name: str
    data: bytes


def find_annotations(folder: Path) -> Path | None:
    """Ground truth next to an images folder when the user named none: a file or folder with a
    usual name (:data:`TRUTH_NAMES`, :data:`TRUTH_FOLDERS`) in the folder or its parent, else
    the only ``.csv`` there; ``None`` when nothing fits."""
    for place in (folder, folder.parent):
        for name in TRUTH_NAMES + TRUTH_FOLDERS:
            if (place / name).exists() and (place / name) != folder:
                return place / name
        tables = sorted(place.glob("*.csv"))
        if len(tables) == 1:
            return tables[0]
    return None


def unpack_annotations(upload: Upload) -> str | bytes:
    """An uploaded annotation file as :func:`explain.datasets.read_annotations` takes it: a
    CSV or COCO JSON as bytes; a ``.zip`` of Pascal VOC ``.xml`` files or PNG masks unpacked
    into the uploads folder (kept as long as other uploads, then cleaned up) and given as that
    folder (or its one CSV / JSON file).

    Raises:
        ExplainError: an empty file, a broken or oversized archive, or one without annotations.
    """
    if not upload.data:
        raise ExplainError(f"{upload.name} is empty (0 bytes).", hint="upload the file again.")
    if not zipfile.is_zipfile(io.BytesIO(upload.data)):
        return upload.data
    digest = hashlib.sha256(upload.data).hexdigest()[:24]
    target = sources.UPLOADS / "annotations" / digest
    files = _unpack(upload, target)
    tables = [f for f in files if f.suffix.lower() in (".csv", ".json")]
    if len(tables) == 1 and len(files) == 1:
        return str(tables[0])
    return str(target)


def _unpack(upload: Upload, target: Path) -> list[Path]:
    """Unpack the annotation files of an archive into ``target``; the files written."""
    with zipfile.ZipFile(io.BytesIO(upload.data)) as archive:
        members = []
        for info in archive.infolist():
            path = PurePosixPath(info.filename)
            if info.is_dir() or path.suffix.lower() not in ANNOTATION_FILES:
                continue
            if path.is_absolute() or ".." in path.parts or path.name.startswith("."):
                raise ExplainError(
                    f"{upload.name} names a file outside the archive ({info.filename}).",
                    hint="make the archive again from the annotation folder itself.",
                )
            members.append(info)
        if not members:
            raise ExplainError(
                f"{upload.name} holds no annotation (.csv, .json, .xml or .png) file.",
                hint="zip a folder of Pascal VOC .xml files or of PNG masks.",
            )
        if sum(info.file_size for info in members) > MAX_ANNOTATION_BYTES:
            raise ExplainError(
                f"{upload.name} unpacks to more than {MAX_ANNOTATION_BYTES // 2**20} MB.",
                hint="upload the annotations of fewer images.",
            )
        written = []
        for info in members:
            path = target.joinpath(*PurePosixPath(info.filename).parts)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.read(info))
            written.append(path)
    return written


def open_dataset(
    kind: str,
    *,
    folder: str = "",
    truth: str = "",
    images: Upload | None = None,
    truth_file: Upload | None = None,
    count: int = 24,
) -> tuple[ImageDataset, str]:
    """The dataset to evaluate on and one line that says what it is.

    Args:
        kind: ``"shapes"`` (the built-in shapes, their masks as ground truth), ``"folder"``
            (a folder on the server; ``truth``: its annotations, found next to it when empty)
            or ``"zip"`` (``images``: an uploaded zip; ``truth_file``: its annotations).
        count: built-in shapes to generate.

    Returns:
        ``(dataset, description)``.

    Raises:
        ExplainError: a missing, unreadable or forbidden folder, file or archive.
    """
    if kind == "shapes":
        return load_dataset("builtin:shapes", count), f"{count} built-in shapes with their masks"
    if kind == "folder":
        if not folder.strip():
            raise ExplainError("Type the path of an images folder first.")
        where = sources.allowed_path(folder.strip())
        found = sources.allowed_path(truth.strip()) if truth.strip() else find_annotations(where)
        dataset = load_dataset(where, annotations=found) if found else load_dataset(where)
        said = f"ground truth: {found.name}" if found else "no ground truth found"
        return dataset, f"{where} ({said})"
    if images is None:
        raise ExplainError("Upload a .zip of images first.")
    if not images.data:
        raise ExplainError(f"{images.name} is empty (0 bytes).", hint="upload the file again.")
    archive = ZipDataset(images.data, name=images.name)
    if truth_file is None:
        return load_dataset(archive), f"{images.name} (no ground truth)"
    dataset = load_dataset(archive, annotations=unpack_annotations(truth_file))
    return dataset, f"{images.name} with {truth_file.name}"


def truth_of(
    handle: ModelHandle, dataset: ImageDataset, name: str
) -> tuple[sources.Picture, np.ndarray]:
    """An evaluated image (by its name in the result) and its ground-truth boxes
    ``(K, 4)`` ``x0, y0, x1, y1`` in the model's input pixels (one box per connected region of
    a mask where there are masks but no boxes).

    Raises:
        ExplainError: no image of that name (or it can no longer be read).
    """
    # An image with objects of several classes is scored as "file [class]", once per class.
    index = next(
        (
            i
            for i, item in enumerate(dataset.items)
            if name == item.name or name.startswith(item.name + " [")
        ),
        None,
    )
    if index is None:
        raise ExplainError(f"{name} is not in {dataset.description}.")
    data = read_dataset(handle, dataset.subset([index]))
    boxes = data.object_boxes()
    row = data.names.index(name) if name in data.names else 0
    found = np.zeros((0, 4)) if boxes is None else np.asarray(boxes[row], dtype=np.float64)
    picture = sources.Picture.of(dataset.items[index].name, np.asarray(dataset.load(index).image))
    return picture, found
