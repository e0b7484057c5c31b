"""Ground truth as users have it: object boxes in a CSV, Pascal VOC XML files, a COCO JSON, or
masks as PNG files; several objects per image; classes as indices, names or WordNet ids.

Every reader returns :class:`Annotations`: per image, the file it belongs to and its objects
(a box in the image's own pixels, a class, a COCO segmentation) or a mask. Nothing here
knows the model: :class:`~explain.datasets.annotated.AnnotatedDataset` attaches the entries to
the images of a dataset, and :mod:`explain.evaluation.ground_truth` maps their classes to a
model's labels and their boxes and masks to its input.

Box conventions (all converted to pixel edges, ``x1`` and ``y1`` exclusive, floats allowed):

- CSV: ``x0, y0, x1, y1`` (or ``xmin, ymin, xmax, ymax``; or ``x, y, w, h``), as pixel edges.
- Pascal VOC: ``xmin .. xmax`` are 1-based inclusive pixel indices (the VOC devkit), so
  ``x0 = xmin - 1`` and ``x1 = xmax``; ``one_based=False`` reads them as pixel edges.
- COCO: ``bbox = [x, y, width, height]`` in pixel edges.
- PNG masks: any non-zero pixel is on the object (in a palette PNG, 255 marks "void" as in
  VOC and is not); one object per connected region.
"""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..errors import ExplainError

Box = tuple[float, float, float, float]
AnnotationSource = str | os.PathLike | bytes | BinaryIO
FORMATS: tuple[str, ...] = ("csv", "voc", "coco", "masks")


@dataclass(frozen=True)
class ObjectAnnotation:
    """One annotated object.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in the image's pixels (edges), or None (mask only).
        label: class index (int), class name or WordNet id (str), or None (unknown).
        name: class name for display, when the file gives one besides an index.
        segmentation: a COCO segmentation (polygons or RLE), decoded when needed.
        difficult: flagged difficult (VOC) or a crowd region (COCO).
    """

    box: Box | None
    label: int | str | None = None
    name: str | None = None
    segmentation: Any = None
    difficult: bool = False


@dataclass
class ImageAnnotation:
    """What is known about one image.

    Attributes:
        file: the image's file name or relative path, as the annotation gives it.
        objects: its objects.
        size: ``(W, H)`` of the image the annotation was made on, when the file says.
        mask_file: a PNG mask of the whole image (mask folders).
        mask: ``(H, W)`` bool mask of the whole image, in memory (generated data).
    """

    file: str
    objects: list[ObjectAnnotation] = field(default_factory=list)
    size: tuple[int, int] | None = None
    mask_file: Path | None = None
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def has_mask(self) -> bool:
        """Whether the truth is a whole-image mask (a file or an array) rather than objects."""
        return self.mask_file is not None or self.mask is not None

    def read_mask(self) -> np.ndarray:
        """The whole-image mask ``(H, W)`` bool (read from its file when it has one)."""
        if self.mask is not None:
            return np.asarray(self.mask, dtype=bool)
        if self.mask_file is None:
            raise ExplainError(f"{self.file} has no mask.")
        return load_mask(self.mask_file)


@dataclass
class Annotations:
    """Ground truth for a set of images.

    Attributes:
        images: one entry per annotated image, in file order.
        format: one of :data:`FORMATS`.
        source: where it was read from (for reports).
        notes: anything worth telling the user about how it was read.
    """

    images: list[ImageAnnotation]
    format: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_objects(self) -> int:
        return sum(len(a.objects) for a in self.images)

    def describe(self) -> str:
        if self.format == "masks":
            return f"{len(self)} PNG masks ({self.source})"
        return f"{self.n_objects} objects on {len(self)} images ({self.format}, {self.source})"


# -- reading text sources -------------------------------------------------------------------------
def _read_bytes(source: AnnotationSource) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "uploaded data"
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ExplainError(f"Annotation file not found: {path}")
        return path.read_bytes(), str(path)
    data = source.read()
    name = getattr(source, "name", "uploaded file")
    return (data.encode() if isinstance(data, str) else data), str(name)


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExplainError(f"{where} is not UTF-8 text.") from exc


def _as_label(text: str | None) -> int | str | None:
    """A class cell -> an int index when it is a whole number, else the stripped name."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text
        return int(value) if value.is_integer() else text


# -- CSV --------------------------------------------------------------------------------------------
_FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_name", "image_file", "path")
_INDEX_COLUMNS = ("label", "class_index", "class_id", "label_index", "category_id", "class")
_NAME_COLUMNS = ("class_name", "label_name", "category_name", "category", "name", "wnid")
_BOX_COLUMNS = (
    ("x0", "y0", "x1", "y1"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("left", "top", "right", "bottom"),
)
_XYWH_COLUMNS = (("x", "y", "w", "h"), ("x", "y", "width", "height"))


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _pick(columns: dict[str, str], names: Iterable[str]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


def read_boxes_csv(source: AnnotationSource) -> Annotations:
    """Boxes from a CSV with one row per object.

    Columns (case-insensitive): the image (``file``, ``filename``, ``image``, ``path``, ...);
    the box as ``x0, y0, x1, y1`` (or ``xmin, ymin, xmax, ymax``, ``left, top, right,
    bottom``, or ``x, y, w, h``), pixel edges with ``x1``, ``y1`` exclusive; optionally the
    class as an index (``label``, ``class_index``, ...) and/or a name (``class_name``,
    ``category``, ``wnid``, ...). A row without a box marks an image with no object.

    Raises:
        ExplainError: no file or box column, or a cell that is not a number, naming its line.
    """
    data, where = _read_bytes(source)
    text = _decode(data, where)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if not reader.fieldnames:
        raise ExplainError(f"{where} is empty.")
    columns = {_key(c): c for c in reader.fieldnames if c}
    file_col = _pick(columns, _FILE_COLUMNS)
    if file_col is None:
        raise ExplainError(
            f"{where} has no column naming the image (columns: {', '.join(reader.fieldnames)}).",
            hint="name it 'file' (the image's file name or path relative to the image folder).",
        )
    box_cols = next((tuple(columns[c] for c in s) for s in _BOX_COLUMNS if set(s) <= set(columns)),
                    None)  # fmt: skip
    xywh = None
    if box_cols is None:
        xywh = next(
            (tuple(columns[c] for c in s) for s in _XYWH_COLUMNS if set(s) <= set(columns)), None
        )
        if xywh is None:
            raise ExplainError(
                f"{where} has no box columns (columns: {', '.join(reader.fieldnames)}).",
                hint="give x0,y0,x1,y1 (pixel edges, x1/y1 exclusive), xmin,ymin,xmax,ymax or "
                "x,y,w,h.",
            )
    index_col = _pick(columns, _INDEX_COLUMNS)
    name_col = _pick(columns, _NAME_COLUMNS)
    images: dict[str, ImageAnnotation] = {}
    for line, row in enumerate(reader, start=2):
        file = (row.get(file_col) or "").strip()
        if not file:
            raise ExplainError(f"{where}, line {line}: the image file is empty.")
        entry = images.setdefault(file, ImageAnnotation(file))
        cells = [row.get(c) for c in (box_cols or xywh)]
        if all(c is None or not str(c).strip() for c in cells):
            continue
        try:
            v0, v1, v2, v3 = (float(str(c).strip()) for c in cells)
        except (TypeError, ValueError) as exc:
            raise ExplainError(
                f"{where}, line {line}: a box value is not a number: {cells}."
            ) from exc
        box = (v0, v1, v2, v3) if box_cols else (v0, v1, v0 + v2, v1 + v3)
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ExplainError(
                f"{where}, line {line}: the box {box} is empty or upside down.",
                hint="x1 must exceed x0 and y1 exceed y0 (x0,y0 is the top-left corner).",
            )
        index = _as_label(row.get(index_col)) if index_col else None
        name = ((row.get(name_col) or "").strip() or None) if name_col else None
        label = index if index is not None else name
        entry.objects.append(ObjectAnnotation(box, label, name))
    if not images:
        raise ExplainError(f"{where} has a header but no rows.")
    return Annotations(list(images.values()), "csv", where)


# -- Pascal VOC -------------------------------------------------------------------------------------
def _xml_text(node: ET.Element, path: str) -> str | None:
    found = node.find(path)
    return None if found is None or found.text is None else found.text.strip()


def read_voc_file(path: str | os.PathLike, one_based: bool = True) -> ImageAnnotation:
    """One Pascal VOC XML file (``<annotation>`` with ``<filename>``, ``<size>`` and
    ``<object>``s whose ``<bndbox>`` gives ``xmin, ymin, xmax, ymax``).

    Args:
        path: the XML file.
        one_based: VOC's 1-based inclusive pixel indices (default); False for pixel edges.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ExplainError(f"{path.name} is not valid XML: {exc}") from exc
    if root.tag != "annotation":
        raise ExplainError(f"{path.name} is not a Pascal VOC annotation (root <{root.tag}>).")
    file = _xml_text(root, "filename") or path.stem
    size = None
    w, h = _xml_text(root, "size/width"), _xml_text(root, "size/height")
    if w and h:
        try:
            size = (int(float(w)), int(float(h)))
        except ValueError as exc:
            raise ExplainError(f"{path.name}: the image size {w}x{h} is not a number.") from exc
        if min(size) <= 0:
            size = None  # some tools write 0 when they did not know
    objects = []
    for k, obj in enumerate(root.iter("object")):
        name = _xml_text(obj, "name")
        try:
            xmin, ymin, xmax, ymax = (
                float(_xml_text(obj, f"bndbox/{t}") or "") for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as exc:
            raise ExplainError(f"{path.name}: object {k + 1} has no complete <bndbox>.") from exc
        box = (xmin - 1.0, ymin - 1.0, xmax, ymax) if one_based else (xmin, ymin, xmax, ymax)
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ExplainError(f"{path.name}: object {k + 1} has an empty box {box}.")
        difficult = (_xml_text(obj, "difficult") or "0") not in ("0", "")
        objects.append(ObjectAnnotation(box, _as_label(name), name, difficult=difficult))
    return ImageAnnotation(file, objects, size)


def read_voc(folder: str | os.PathLike, one_based: bool = True) -> Annotations:
    """Every Pascal VOC XML file under ``folder`` (an ``Annotations`` folder, searched
    recursively). See :func:`read_voc_file`."""
    root = Path(folder).expanduser()
    files = sorted(p for p in root.rglob("*.xml") if not p.name.startswith("."))
    if not files:
        raise ExplainError(
            f"No .xml files in {root}.", hint="give a Pascal VOC Annotations folder."
        )
    return Annotations([read_voc_file(p, one_based) for p in files], "voc", str(root))


# -- COCO -------------------------------------------------------------------------------------------
def read_coco(source: AnnotationSource) -> Annotations:
    """A COCO "instances" JSON: ``images`` (``id``, ``file_name``, ``width``, ``height``),
    ``annotations`` (``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, optional
    ``segmentation`` as polygons or RLE, ``iscrowd``) and ``categories`` (``id``, ``name``).

    Class labels are the category names. Images without annotations are kept (no object).
    """
    data, where = _read_bytes(source)
    try:
        doc = json.loads(_decode(data, where))
    except json.JSONDecodeError as exc:
        raise ExplainError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
        raise ExplainError(
            f"{where} is not a COCO annotation file (it needs 'images' and 'annotations').",
            hint="give a COCO instances JSON, e.g. instances_val2017.json.",
        )
    names = {c.get("id"): str(c.get("name", c.get("id"))) for c in doc.get("categories", [])}
    images: dict[Any, ImageAnnotation] = {}
    for img in doc["images"]:
        try:
            size = (int(img["width"]), int(img["height"])) if "width" in img else None
            images[img["id"]] = ImageAnnotation(str(img["file_name"]), [], size)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExplainError(f"{where}: an image entry lacks 'id' or 'file_name': {img}") from exc
    for k, ann in enumerate(doc["annotations"]):
        entry = images.get(ann.get("image_id"))
        if entry is None:
            raise ExplainError(
                f"{where}: annotation {k} names an unknown image {ann.get('image_id')}."
            )
        box = None
        if ann.get("bbox") is not None:
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (TypeError, ValueError) as exc:
                raise ExplainError(
                    f"{where}: annotation {k} has a bad bbox {ann['bbox']}."
                ) from exc
            box = (x, y, x + w, y + h) if w > 0 and h > 0 else None
        segmentation = ann.get("segmentation") or None
        if box is None and segmentation is None:
            continue
        category = ann.get("category_id")
        name = names.get(category, None if category is None else str(category))
        entry.objects.append(
            ObjectAnnotation(
                box, name, name, segmentation=segmentation, difficult=bool(ann.get("iscrowd"))
            )
        )
    return Annotations(list(images.values()), "coco", where)


# -- PNG masks --------------------------------------------------------------------------------------
def read_mask_folder(folder: str | os.PathLike) -> Annotations:
    """PNG masks under ``folder``, one per image, matched to images by file name without the
    extension (``cat.jpg`` <- ``cat.png``). Read when needed (see :func:`load_mask`)."""
    root = Path(folder).expanduser()
    files = sorted(p for p in root.rglob("*.png") if not p.name.startswith("."))
    if not files:
        raise ExplainError(f"No .png masks in {root}.", hint="give a folder of PNG masks.")
    entries = [
        ImageAnnotation(str(p.relative_to(root).with_suffix("")), mask_file=p) for p in files
    ]
    return Annotations(entries, "masks", str(root))


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """A PNG mask -> ``(H, W)`` bool: non-zero pixels, except 255 in a palette image (VOC's
    "void" outline)."""
    try:
        with Image.open(path) as img:
            palette = img.mode == "P"
            values = np.asarray(
                img if img.mode in ("P", "L", "1", "I", "I;16") else img.convert("L")
            )
    except (OSError, ValueError) as exc:
        raise ExplainError(f"The mask {Path(path).name} cannot be read: {exc}") from exc
    if values.ndim == 3:
        values = values.max(axis=2)
    mask = values != 0
    if palette:
        mask &= values != 255
    return mask


# -- any of them ------------------------------------------------------------------------------------
def read_annotations(
    source: Annotations | AnnotationSource, *, one_based: bool = True
) -> Annotations:
    """Read ground truth in whatever form it comes.

    Args:
        source: an :class:`Annotations`; a ``.csv`` file (boxes); a ``.json`` file (COCO); a
            folder of ``.xml`` files (Pascal VOC) or of ``.png`` masks; or the bytes or file
            object of an uploaded CSV or COCO JSON.
        one_based: Pascal VOC coordinates are 1-based inclusive (see :func:`read_voc_file`).

    Raises:
        ExplainError: the source does not exist or is in none of these forms.
    """
    if isinstance(source, Annotations):
        return source
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if path.is_dir():
            if any(path.rglob("*.xml")):
                return read_voc(path, one_based)
            if any(path.rglob("*.png")):
                return read_mask_folder(path)
            raise ExplainError(
                f"{path} holds neither Pascal VOC .xml files nor .png masks.",
                hint="give a boxes CSV, a COCO JSON, a VOC Annotations folder or a mask folder.",
            )
        if not path.exists():
            raise ExplainError(f"Annotations not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".json":
            return read_coco(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return read_boxes_csv(path)
        if suffix == ".xml":
            return Annotations([read_voc_file(path, one_based)], "voc", str(path))
        raise ExplainError(
            f"{path.name}: unknown annotation format {suffix or '(no extension)'}.",
            hint="give a .csv of boxes, a COCO .json, or a folder of VOC .xml or .png masks.",
        )
    data, _ = _read_bytes(source)
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return read_coco(data)
    return read_boxes_csv(data)
