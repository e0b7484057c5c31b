"""Ground truth as users have it: boxes in a CSV, Pascal VOC XML, COCO JSON (boxes, polygons,
RLE), PNG masks; classes as indices, names or WordNet ids; read for a model whose preprocessing
resizes and crops; and ``evaluate`` / ``python -m explain.evaluation`` on such data."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from explain import ExplainError, Preprocess, compute_cams, load_model
from explain.builtin.imagenet import imagenet_labels
from explain.builtin.shapes import CLASSES, make_dataset
from explain.cli.evaluate import main
from explain.evaluation import (
    AnnotatedDataset,
    LabelMap,
    ObjectAnnotation,
    box_localisation,
    boxes_to_mask,
    component_boxes,
    evaluate,
    input_geometry,
    load_annotated,
    load_mask,
    read_annotations,
    read_boxes_csv,
    read_coco,
    read_voc,
    replay_masks,
)
from explain.evaluation.coco_masks import (
    decode_counts,
    encode_counts,
    polygons_to_mask,
    rle_to_mask,
)

# -- CSV ----------------------------------------------------------------------------------------


def test_the_shared_imagenet_boxes(shared_data):
    path = shared_data / "imagenet-val" / "boxes.csv"
    ann = read_boxes_csv(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(ann) == len({r["file"] for r in rows}) == 300
    assert ann.n_objects == len(rows)
    first = ann.images[0]
    assert first.file == "ILSVRC2012_val_00000347.JPEG"
    assert len(first.objects) == sum(r["file"] == first.file for r in rows)
    obj = first.objects[0]
    assert obj.box == (9.1, 105.9, 50.8, 177.4)
    assert obj.label == 472 and obj.name == "canoe"


def test_csv_column_styles_and_uploads(tmp_path):
    text = "Image;XMin;YMin;XMax;YMax;Category\na.jpg;1;2;5;6;golden_retriever\nb.jpg;;;;;\n"
    ann = read_boxes_csv(text.encode())  # semicolons, other column names, an empty image
    assert [a.file for a in ann.images] == ["a.jpg", "b.jpg"]
    assert ann.images[0].objects == [
        ObjectAnnotation((1.0, 2.0, 5.0, 6.0), "golden_retriever", "golden_retriever")
    ]
    assert ann.images[1].objects == []
    path = tmp_path / "xywh.csv"
    path.write_text("filename,x,y,w,h,class_id\nc.png,10,20,30,40,7\n")
    with open(path, "rb") as f:  # a file object, as an upload widget gives
        obj = read_annotations(f).images[0].objects[0]
    assert obj.box == (10.0, 20.0, 40.0, 60.0) and obj.label == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,x0,y0,x1,y1\n", "no column naming the image"),
        ("file,left,top\na.jpg,1,2\n", "no box columns"),
        ("file,x0,y0,x1,y1\na.jpg,1,2,3,4\na.jpg,1,two,3,4\n", "line 3: a box value"),
        ("file,x0,y0,x1,y1\na.jpg,5,2,3,4\n", "line 2: the box .* upside down"),
        ("file,x0,y0,x1,y1\n", "no rows"),
    ],
)
def test_csv_errors_say_what_and_where(text, message):
    with pytest.raises(ExplainError, match=message):
        read_boxes_csv(text.encode())


# -- Pascal VOC ---------------------------------------------------------------------------------
VOC = """<annotation><folder>VOC2012</folder><filename>{file}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>11</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
<object><name>n02099601</name><difficult>1</difficult>
<bndbox><xmin>31</xmin><ymin>5</ymin><xmax>40.5</xmax><ymax>9</ymax></bndbox></object>
</annotation>"""


def test_voc_folder(tmp_path):
    folder = tmp_path / "Annotations"
    folder.mkdir()
    (folder / "2008_000001.xml").write_text(VOC.format(file="2008_000001.jpg", w=50, h=40))
    (folder / "ILSVRC2012_val_00000001.xml").write_text(
        VOC.format(file="ILSVRC2012_val_00000001", w=0, h=0)  # ILSVRC: no extension, no size
    )
    ann = read_annotations(folder)
    assert ann.format == "voc" and len(ann) == 2
    first = ann.images[0]
    assert first.file == "2008_000001.jpg" and first.size == (50, 40)
    dog, other = first.objects
    # 1-based inclusive pixels 1..10 are the pixel edges 0..10.
    assert dog.box == (0.0, 10.0, 10.0, 20.0) and dog.label == "dog" and not dog.difficult
    assert other.box == (30.0, 4.0, 40.5, 9.0) and other.difficult
    assert ann.images[1].size is None
    edges = read_voc(folder, one_based=False).images[0].objects[0]
    assert edges.box == (1.0, 11.0, 10.0, 20.0)
    (folder / "broken.xml").write_text("<annotation><object>")
    with pytest.raises(ExplainError, match=r"broken\.xml is not valid XML"):
        read_voc(folder)


# -- COCO: boxes, polygons, RLE ------------------------------------------------------------------
# Compressed RLE strings written by pycocotools 2.0.11 (mask.encode) for the masks below.
RLE_VECTORS = {
    "box_60x80": "01m5W1gJ" + "0" * 131 + "^b0",
    "stripes_12x9": "014000N02000N02030M030M0N02000N02000N02030M0O",
    "halves_300x500": "lP3f4f4" + "0" * 57 + "lh^1jgg2",
}


def _rle_masks() -> dict[str, np.ndarray]:
    box = np.zeros((60, 80), dtype=bool)
    box[10:50, 3:70] = True
    box[0, 0] = True
    yy, xx = np.mgrid[0:12, 0:9]
    halves = np.zeros((300, 500), dtype=bool)
    halves[:, 200:] = True
    halves[100:250, 10:40] = True
    return {"box_60x80": box, "stripes_12x9": (xx * 7 + yy * 3) % 5 == 0, "halves_300x500": halves}


def test_compressed_rle_agrees_with_pycocotools():
    for name, mask in _rle_masks().items():
        h, w = mask.shape
        decoded = rle_to_mask({"size": [h, w], "counts": RLE_VECTORS[name]})
        np.testing.assert_array_equal(decoded, mask)
        assert encode_counts(decode_counts(RLE_VECTORS[name])) == RLE_VECTORS[name]


def test_uncompressed_rle_is_column_major():
    # 3 x 4: runs of 0s and 1s down the columns: 2 zeros, 3 ones, 7 zeros.
    mask = rle_to_mask({"size": [3, 4], "counts": [2, 3, 7]})
    expected = np.zeros((3, 4), dtype=bool)
    expected[2, 0] = expected[0:2, 1] = True
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ExplainError, match="add up to 12 pixels, not 3 x 5"):
        rle_to_mask({"size": [3, 5], "counts": [2, 3, 7]})
    with pytest.raises(ExplainError, match="cannot appear"):
        decode_counts("0 1")


def _inside(x: float, y: float, poly: np.ndarray) -> bool:
    """Even-odd ray casting, one point at a time (the textbook oracle)."""
    inside = False
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def test_polygons_fill_the_pixels_whose_centre_is_inside():
    rng = np.random.default_rng(0)
    for _ in range(6):
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.random(n)) * 2 * np.pi
        radius = rng.uniform(3, 9, n)
        poly = np.stack([15 + radius * np.cos(angles), 10 + radius * np.sin(angles)], 1)
        ours = polygons_to_mask([poly.ravel().tolist()], (22, 30))
        oracle = np.array([[_inside(c + 0.5, r + 0.5, poly) for c in range(30)] for r in range(22)])
        np.testing.assert_array_equal(ours, oracle)
    square = polygons_to_mask([[10, 10, 30, 10, 30, 20, 10, 20]], (40, 40))
    # pycocotools fills rows 10..19 and columns 10..29 for this square too.
    assert square.sum() == 200 and square[10:20, 10:30].all()


def _coco(tmp_path):
    doc = {
        "images": [
            {"id": 1, "file_name": "val/one.jpg", "width": 80, "height": 60},
            {"id": 2, "file_name": "two.jpg", "width": 80, "height": 60},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
        "annotations": [
            {"image_id": 1, "category_id": 18, "bbox": [3, 10, 67, 40], "iscrowd": 1,
             "segmentation": {"size": [60, 80], "counts": RLE_VECTORS["box_60x80"]}},
            {"image_id": 1, "category_id": 17, "bbox": [10, 10, 20, 10],
             "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]},
        ],
    }  # fmt: skip
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_json(tmp_path):
    ann = read_annotations(_coco(tmp_path))
    assert ann.format == "coco" and [a.file for a in ann.images] == ["val/one.jpg", "two.jpg"]
    dog, cat = ann.images[0].objects
    assert dog.box == (3.0, 10.0, 70.0, 50.0) and dog.label == "dog" and dog.difficult
    assert cat.box == (10.0, 20.0 - 10.0, 30.0, 20.0) and cat.label == "cat"
    assert ann.images[1].objects == [] and ann.images[0].size == (80, 60)
    with pytest.raises(ExplainError, match="not a COCO annotation file"):
        read_coco(b'{"info": {}}')
    with pytest.raises(ExplainError, match="unknown image 9"):
        read_coco(json.dumps({"images": [], "annotations": [{"image_id": 9}]}).encode())


def test_coco_segmentations_become_masks_in_the_model_input(tmp_path, cropper):
    (tmp_path / "images" / "val").mkdir(parents=True)
    Image.new("RGB", (80, 60), (90, 90, 90)).save(tmp_path / "images" / "val" / "one.png")
    path = _coco(tmp_path)
    path.write_text(path.read_text().replace("val/one.jpg", "val/one.png"))
    data = load_annotated(cropper, AnnotatedDataset(tmp_path / "images", path))
    # Two classes on one image: one item each; neither is a class of the model. The image's
    # only folder is a wrapper, so its name is the file's (matched by its path all the same).
    assert data.names == ["one.png [dog]", "one.png [cat]"]
    np.testing.assert_array_equal(data.labels, [-1, -1])
    assert any("2 class(es) the model does not have ('dog', 'cat')" in n for n in data.notes)
    geometry = input_geometry(cropper.preprocessor, (80, 60))
    dog = rle_to_mask({"size": [60, 80], "counts": RLE_VECTORS["box_60x80"]})
    cat = polygons_to_mask([[10, 10, 30, 10, 30, 20, 10, 20]], (60, 80))
    for i, (mask, box) in enumerate([(dog, (3, 10, 70, 50)), (cat, (10, 10, 30, 20))]):
        np.testing.assert_array_equal(
            data.masks[i], replay_masks(cropper.preprocessor, mask[None])[0]
        )
        np.testing.assert_allclose(data.boxes[i], geometry.map_boxes([box]))
    no_crowd = load_annotated(
        cropper, AnnotatedDataset(tmp_path / "images", path, include_difficult=False)
    )
    assert no_crowd.names == ["one.png"]  # the crowd region (dog) is left out


# -- PNG masks and format detection ----------------------------------------------------------------
def test_png_masks_binary_and_palette(tmp_path):
    binary = np.zeros((6, 8), dtype=np.uint8)
    binary[1:3, 2:5] = 255
    Image.fromarray(binary).save(tmp_path / "a.png")
    palette = np.zeros((6, 8), dtype=np.uint8)
    palette[2:5, 1:4] = 12  # a class index
    palette[1, 1:4] = 255  # VOC's "void" outline
    img = Image.fromarray(palette, mode="L").convert("P")
    img.putpalette([0, 0, 0] * 256)
    img.save(tmp_path / "b.png")
    ann = read_annotations(tmp_path)
    assert ann.format == "masks" and [a.file for a in ann.images] == ["a", "b"]
    np.testing.assert_array_equal(load_mask(tmp_path / "a.png"), binary > 0)
    np.testing.assert_array_equal(load_mask(tmp_path / "b.png"), palette == 12)


def test_unknown_annotation_sources(tmp_path):
    with pytest.raises(ExplainError, match="not found"):
        read_annotations(tmp_path / "missing.csv")
    (tmp_path / "notes.txt.bak").write_text("x")
    with pytest.raises(ExplainError, match="unknown annotation format"):
        read_annotations(tmp_path / "notes.txt.bak")
    with pytest.raises(ExplainError, match="neither Pascal VOC"):
        read_annotations(tmp_path)


# -- classes ------------------------------------------------------------------------------------
def test_label_map_indices_names_and_wordnet_ids():
    handle = SimpleNamespace(labels=list(imagenet_labels()))
    labels = LabelMap(handle)
    assert labels(ObjectAnnotation(None, 472, "canoe")) == 472
    assert labels(ObjectAnnotation(None, "Golden_Retriever")) == 207  # loose name
    assert labels(ObjectAnnotation(None, "n01440764")) == 0  # WordNet id: tench
    # torchvision has two "crane" classes: the index tells which.
    assert labels(ObjectAnnotation(None, 517, "crane")) == 517
    assert labels(ObjectAnnotation(None, 3, "canoe")) == 472  # the name wins a disagreement
    assert labels(ObjectAnnotation(None, "unicorn")) == -1
    assert labels(ObjectAnnotation(None, 1000)) == -1
    notes = " ".join(labels.notes())
    assert "2 object(s) of 2 class(es) the model does not have" in notes
    assert "1 object(s) had a class index that disagrees" in notes


# -- read for a model ---------------------------------------------------------------------------
class Quadrants(nn.Module):
    """Class k scores the mean brightness of quadrant k (a model with a crop to follow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        q = [x[..., :h, :w], x[..., :h, w:], x[..., h:, :w], x[..., h:, w:]]
        return torch.stack([part.mean(dim=(1, 2, 3)) for part in q], dim=1)


@pytest.fixture(scope="module")
def cropper():
    return load_model(
        Quadrants(), weights=None, device="cpu", labels=["tench", "golden retriever", "c", "d"],
        preprocess=Preprocess(48, resize=56),
    )  # fmt: skip


def _scene(tmp_path, name, size, boxes):
    w, h = size
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        pixels[y0:y1, x0:x1] = 255
    Image.fromarray(pixels).save(tmp_path / name)


def test_annotated_images_follow_the_crop(tmp_path, cropper):
    images = tmp_path / "images"
    images.mkdir()
    _scene(images, "wide.png", (91, 57), [(20, 10, 50, 40)])
    _scene(images, "tall.png", (61, 97), [(10, 30, 30, 70), (35, 40, 55, 60)])
    _scene(images, "unannotated.png", (40, 40), [])
    (tmp_path / "boxes.csv").write_text(
        "file,class_name,x0,y0,x1,y1\n"
        "wide.png,Golden_Retriever,20,10,50,40\n"
        "tall.png,tench,10,30,30,70\n"
        "tall.png,golden retriever,35,40,55,60\n"
        "gone.png,tench,1,1,5,5\n"
    )
    data = load_annotated(cropper, AnnotatedDataset(images, tmp_path / "boxes.csv"))
    # tall.png holds two classes: one item per class.
    assert data.names == ["tall.png [tench]", "tall.png [golden retriever]", "wide.png"]
    np.testing.assert_array_equal(data.labels, [0, 1, 1])
    assert any("1 annotated file(s) are not among the images" in n for n in data.notes)
    assert any("1 image(s) have no annotation" in n for n in data.notes)
    assert any("several classes" in n for n in data.notes)
    for i, (file, size, box) in enumerate([
        ("tall.png", (61, 97), (10, 30, 30, 70)),
        ("tall.png", (61, 97), (35, 40, 55, 60)),
        ("wide.png", (91, 57), (20, 10, 50, 40)),
    ]):  # fmt: skip
        mapped = input_geometry(cropper.preprocessor, size).map_boxes([box])
        np.testing.assert_allclose(data.boxes[i], mapped)
        np.testing.assert_array_equal(data.masks[i], boxes_to_mask(mapped, (48, 48)))
        # ... and the mask sits where the drawn box is in what the model sees.
        seen = cropper.prepare([images / file])[0, ..., 0] >= 128
        assert (seen & data.masks[i]).sum() >= 0.9 * data.masks[i].sum()
    np.testing.assert_allclose(data.x[0], data.x[1])  # the same picture twice
    np.testing.assert_allclose(data.object_fraction, data.masks.mean(axis=(1, 2)))


def test_boxes_scale_with_the_image_and_the_crop_can_hide_objects(tmp_path, cropper):
    images = tmp_path / "images"
    images.mkdir()
    _scene(images, "half.png", (50, 40), [(10, 10, 30, 30)])  # saved at half the annotated size
    _scene(images, "edge.png", (120, 40), [(0, 0, 5, 40)])  # the crop keeps the middle only
    folder = tmp_path / "voc"
    folder.mkdir()
    for name, (w, h), box in (
        ("half", (100, 80), (21, 21, 60, 60)),
        ("edge", (120, 40), (1, 1, 5, 40)),
    ):
        xml = VOC.format(file=f"{name}.png", w=w, h=h).replace(
            "<xmin>1</xmin><ymin>11</ymin><xmax>10</xmax><ymax>20</ymax>",
            "<xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax>".format(*box),
        )
        (folder / f"{name}.xml").write_text(xml)
    keep = load_annotated(cropper, AnnotatedDataset(images, folder, include_difficult=False))
    assert keep.names == ["half.png"]
    assert ("edge.png", "its objects fall outside what the model sees (the crop)") in keep.skipped
    assert any("differ in size from their annotation" in n for n in keep.notes)
    # VOC 21..60 (1-based) at 100 x 80 is 20..60 in edges, 10..30 at 50 x 40.
    expected = input_geometry(cropper.preprocessor, (50, 40)).map_boxes([(10, 10, 30, 30)])
    np.testing.assert_allclose(keep.boxes[0], expected)
    (tmp_path / "other.csv").write_text("file,x0,y0,x1,y1\nelsewhere.png,1,1,4,4\n")
    with pytest.raises(ExplainError, match="None of the 2 images has an annotation"):
        load_annotated(cropper, AnnotatedDataset(images, tmp_path / "other.csv"))


# -- evaluate and the command line on annotated shapes ----------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", device="cpu")


@pytest.fixture(scope="module")
def annotated_shapes(tmp_path_factory):
    """Eight held-out shapes saved at 97 x 83 (the model squashes them back to 64 x 64) in one
    folder per class, with their masks as PNG files (a flat folder, matched by file name) and
    their boxes (at 97 x 83) in a CSV that names the files only."""
    root = tmp_path_factory.mktemp("annotated")
    data = make_dataset(8, seed=1000)
    (root / "masks").mkdir()
    rows = ["file,class_name,x0,y0,x1,y1"]
    sx, sy = 97 / 64, 83 / 64
    for i, (img, mask, label) in enumerate(zip(data.images, data.masks, data.labels, strict=True)):
        folder = root / "images" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).resize((97, 83), Image.Resampling.BILINEAR).save(folder / f"{i}.png")
        big = Image.fromarray(mask.astype(np.uint8) * 255)
        big.resize((97, 83), Image.Resampling.NEAREST).save(root / "masks" / f"{i}.png")
        for x0, y0, x1, y1 in component_boxes(mask):
            rows.append(f"{i}.png,{CLASSES[label]},{x0 * sx},{y0 * sy},{x1 * sx},{y1 * sy}")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root, data


def test_evaluate_takes_an_annotated_dataset(shapes, annotated_shapes):
    root, data = annotated_shapes
    kwargs = {"metrics": "localisation", "targets": "label", "seed": 1, "n_resamples": 500}
    from_boxes = evaluate(
        shapes, root / "images", "gradcam", None, annotations=root / "boxes.csv", **kwargs
    )
    from_masks = evaluate(
        shapes, AnnotatedDataset(root / "images", root / "masks"), "gradcam", None, **kwargs
    )
    # Images come in folder order (by class); labels from the CSV, or the folders for masks.
    order = np.argsort([CLASSES[label] for label in data.labels], kind="stable")
    names = [f"{CLASSES[data.labels[i]]}/{i}.png" for i in order]
    assert list(from_boxes.images["name"]) == names == list(from_masks.images["name"])
    np.testing.assert_array_equal(from_boxes.images["label"], data.labels[order])
    np.testing.assert_array_equal(from_masks.images["label"], data.labels[order])
    # Boxes scaled to 97 x 83 and mapped back through the model's resize are the boxes of the
    # original 64 x 64 masks again; the mask folder's masks come back close to the originals.
    truth = load_annotated(shapes, AnnotatedDataset(root / "images", root / "boxes.csv"))
    for got, i in zip(truth.boxes, order, strict=True):
        np.testing.assert_allclose(got, component_boxes(data.masks[i]), atol=1e-9)
    masks = load_annotated(shapes, AnnotatedDataset(root / "images", root / "masks")).masks
    overlap = (masks & data.masks[order]).sum((1, 2)) / (masks | data.masks[order]).sum((1, 2))
    assert overlap.min() > 0.9
    # The table's box metrics are Grad-CAM's box localisation on those boxes.
    cams = compute_cams(shapes, truth.x, None, "gradcam", truth.labels.tolist())
    _, iou = box_localisation(cams.maps[shapes.default_layer], truth.boxes)
    table = from_boxes.table.query("method == 'gradcam'")
    np.testing.assert_allclose(table.query("metric == 'box_iou'").value, iou, atol=1e-6)
    correct = from_boxes.images["correct"].to_numpy(dtype=float)
    np.testing.assert_array_equal(
        table.query("metric == 'localisation_error'").value,
        np.where((iou >= 0.5) & (correct == 1), 0.0, 100.0),
    )
    assert set(from_masks.table.metric) == set(from_boxes.table.metric)
    assert {"all", "small objects"} == set(from_boxes.verdicts.subset)
    assert from_boxes.images["small objects"].all()  # shapes are small
    assert set(from_boxes.verdicts.verdict) <= {"better", "worse", "no significant difference"}
    assert (from_boxes.summary.p_gaussian.dropna() >= 0).all()


def test_cli_with_boxes(tmp_path, annotated_shapes, capsys):
    root, _ = annotated_shapes
    out = tmp_path / "eval"
    code = main([
        "--model", "builtin:shapes", "--data", str(root / "images"), "--boxes",
        str(root / "boxes.csv"), "--metrics", "localisation", "--targets", "label",
        "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    verdicts = pd.read_csv(out / "verdicts.csv", keep_default_na=False)
    assert set(verdicts.metric) == {
        "pointing_game", "energy_pointing_game", "box_iou", "box_accuracy", "localisation_error",
    }  # fmt: skip
    report = (out / "report.md").read_text()
    assert "## all (8 items)" in report and "## small objects (8 items)" in report
    images = pd.read_csv(out / "images.csv")
    assert len(images) == 8 and images["boxes"].ge(1).all()
    code = main(
        ["--model", "builtin:shapes", "--boxes", str(root / "boxes.csv"), "--out", str(out)]
    )
    assert code == 2 and "--data FOLDER" in capsys.readouterr().err
