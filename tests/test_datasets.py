"""The one dataset package (``explain.datasets``) as evaluation and embeddings both use it:
the same images from a folder and a zip, annotated folders and zips, ground truth ignored by
embeddings (and by their cache key), one held-out seed for the built-in shapes, one class-name
matcher."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import embeddings
import explain.evaluation
from embeddings import collect_activations
from embeddings.collect import activation_key, resolve_layers, resolve_pooling
from explain import Preprocess, load_model
from explain.builtin import HELD_OUT_SEED, TRAINING_SEED, read_record
from explain.builtin.imagenet import imagenet_labels
from explain.builtin.shapes import CLASSES, make_dataset
from explain.datasets import (
    AnnotatedDataset,
    DatasetError,
    ImageFolderDataset,
    ShapesDataset,
    ZipDataset,
    load_dataset,
    match_classes,
)
from explain.evaluation import component_boxes, evaluate, load_annotated, load_eval_data


def test_one_module_behind_both_packages():
    from embeddings import datasets as old

    for name in ("ImageDataset", "ZipDataset", "load_dataset", "IMAGE_EXTENSIONS"):
        assert getattr(old, name) is getattr(explain.datasets, name)
    assert embeddings.DatasetError is explain.datasets.DatasetError
    assert explain.evaluation.AnnotatedDataset is AnnotatedDataset
    assert old.HELD_OUT_SEED == HELD_OUT_SEED != TRAINING_SEED


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", device="cpu")


@pytest.fixture(scope="module")
def shapes_files(tmp_path_factory):
    """Nine held-out shapes in class folders under a wrapper folder, the same tree as a zip,
    and their boxes in a CSV naming the files by their path under the wrapper."""
    root = tmp_path_factory.mktemp("shapes")
    data = make_dataset(9, seed=HELD_OUT_SEED)
    rows = ["file,x0,y0,x1,y1"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i, (img, mask, label) in enumerate(
            zip(data.images, data.masks, data.labels, strict=True)
        ):
            rel = f"upload/{CLASSES[label]}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / rel)
            zf.write(root / rel, rel)
            for box in component_boxes(mask):
                rows.append(f"{rel},{','.join(str(v) for v in box)}")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root, archive.getvalue(), data


def test_a_zip_evaluates_like_the_folder(shapes, shapes_files):
    root, archive, data = shapes_files
    kwargs = {"metrics": ["average_drop"], "baselines": ("random",), "targets": "label"}
    folder = evaluate(shapes, root, "gradcam", None, **kwargs)
    zipped = evaluate(shapes, ZipDataset(archive, name="shapes.zip"), "gradcam", None, **kwargs)
    pd.testing.assert_frame_equal(folder.table, zipped.table)
    # The wrapper folder is dropped: names are class/file, labels the folders' classes.
    order = np.argsort([CLASSES[v] for v in data.labels], kind="stable")
    assert list(folder.images["name"]) == [f"{CLASSES[data.labels[i]]}/{i}.png" for i in order]
    np.testing.assert_array_equal(folder.images["label"], data.labels[order])


def test_annotated_folder_and_zip_give_the_same_ground_truth(shapes, shapes_files):
    root, archive, data = shapes_files
    from_folder = load_annotated(shapes, AnnotatedDataset(root, root / "boxes.csv"))
    from_zip = load_annotated(shapes, AnnotatedDataset(archive, root / "boxes.csv"))
    order = np.argsort([CLASSES[v] for v in data.labels], kind="stable")
    for got in (from_folder, from_zip):
        assert got.names == from_folder.names and len(got) == 9
        np.testing.assert_array_equal(got.labels, data.labels[order])  # from the folders
        for boxes, i in zip(got.boxes, order, strict=True):  # identity geometry: 64 -> 64
            np.testing.assert_allclose(boxes, component_boxes(data.masks[i]))
        np.testing.assert_allclose(got.x, from_folder.x)
    # A list of the files with the same annotations (matched by file name).
    files = [root / f"upload/{CLASSES[data.labels[i]]}/{i}.png" for i in range(9)]
    from_list = load_eval_data(shapes, files, annotations=root / "boxes.csv")
    assert from_list.names == [f"{i}.png" for i in range(9)] and (from_list.labels == -1).all()
    for boxes, mask in zip(from_list.boxes, data.masks, strict=True):
        np.testing.assert_allclose(boxes, component_boxes(mask))
    # load_dataset(..., annotations=) is the same dataset.
    same = load_dataset(root, annotations=root / "boxes.csv")
    assert [item.truth.objects for item in same.items] == [
        item.truth.objects for item in AnnotatedDataset(root, root / "boxes.csv").items
    ]
    with pytest.raises(DatasetError, match="not a built-in dataset"):
        load_dataset("builtin:shapes", annotations=root / "boxes.csv")


def test_files_named_by_their_stored_path_under_a_wrapper(tmp_path):
    # Two files share a name: only the path under the wrapper tells them apart.
    for rel in ("set/a/x.png", "set/b/x.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16)).save(tmp_path / rel)
    (tmp_path / "boxes.csv").write_text("file,x0,y0,x1,y1\nset/a/x.png,1,1,5,5\nb/x.png,2,2,9,9\n")
    ds = AnnotatedDataset(tmp_path, tmp_path / "boxes.csv")
    assert ds.names == ["a/x.png", "b/x.png"]  # "set" is a wrapper folder
    assert [item.truth.objects[0].box for item in ds.items] == [(1, 1, 5, 5), (2, 2, 9, 9)]
    # A bare file name that two images share matches neither.
    (tmp_path / "only_name.csv").write_text("file,x0,y0,x1,y1\nx.png,1,1,5,5\n")
    with pytest.raises(DatasetError, match="None of the 2 images has an annotation"):
        AnnotatedDataset(tmp_path, tmp_path / "only_name.csv")


# -- embeddings on annotated data ---------------------------------------------------------------
class Pool(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 6)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_embeddings_take_annotated_data_and_share_its_cache(shapes_files, tmp_path):
    root, _, _ = shapes_files
    handle = load_model(
        Pool(), labels=list(CLASSES), device="cpu", preprocess=Preprocess(input_size=(64, 64))
    )
    plain = collect_activations(handle, root, ["conv"], cache_dir=False)
    annotated = AnnotatedDataset(root, root / "boxes.csv")
    acts = collect_activations(handle, annotated, ["conv"], cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(acts.features["conv"], plain.features["conv"])
    assert acts.label_names == sorted(CLASSES) and acts.paths == plain.paths
    # Ground truth is not part of the cache key: the plain folder reads the stored result.
    infos = resolve_layers(handle, ["conv"])
    poolings = {"conv": resolve_pooling(infos[0], "auto")}
    assert activation_key(handle, annotated, infos, poolings) == activation_key(
        handle, ImageFolderDataset(root), infos, poolings
    )
    again = collect_activations(handle, root, ["conv"], cache_dir=tmp_path / "cache")
    assert again.from_cache


# -- one held-out seed ------------------------------------------------------------------------------
def test_builtin_shapes_are_the_held_out_images_the_models_were_measured_on(shapes):
    record = read_record("shapes")
    assert record["train"]["data_seed"] == TRAINING_SEED
    assert {r["seed"] for r in record["test"].values()} == {HELD_OUT_SEED}
    # Evaluation and embeddings draw the same images: the record's test images.
    expected = make_dataset(120, seed=HELD_OUT_SEED)
    ds = load_dataset("builtin:shapes", max_images=120)
    assert isinstance(ds, ShapesDataset) and ds.params["seed"] == HELD_OUT_SEED
    np.testing.assert_array_equal(np.stack([ds.source(i) for i in range(120)]), expected.images)
    data = load_eval_data(shapes, "builtin:shapes", max_images=120)
    np.testing.assert_allclose(data.x, shapes.preprocess(list(expected.images)))
    np.testing.assert_array_equal(data.masks, expected.masks)
    accuracy = float((shapes.predict(data.x).argmax(1) == data.labels).mean())
    assert accuracy >= 0.95  # the record says 0.98 on the first 1,200
    # A run's seed moves to other held-out images, never to the training seed.
    np.testing.assert_array_equal(
        load_dataset("builtin:shapes", max_images=4, seed=2).source(3),
        make_dataset(4, seed=HELD_OUT_SEED + 2).images[3],
    )
    with pytest.raises(DatasetError, match="must be 0 or more"):
        load_dataset("builtin:shapes", max_images=4, seed=-HELD_OUT_SEED)
    with pytest.raises(DatasetError, match="no built-in dataset"):
        load_eval_data(shapes, "builtin:cifar")


def test_class_names_match_by_name_loose_name_wordnet_id_or_index():
    labels = list(imagenet_labels())
    found = match_classes(
        ["tench", "Golden_Retriever", "n01443537", "3", "unicorn", "1000"], labels
    )
    np.testing.assert_array_equal(found, [0, 207, 1, 3, -1, -1])


def test_signatures_are_those_the_activation_cache_was_keyed_on(tmp_path):
    # Cache entries written before the dataset package still match: the signature of a
    # folder (and of an annotated folder) is its kind, classes and [name, label, size, mtime].
    for rel in ("wrap/a/0.png", "wrap/b/1.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel)
    (tmp_path / "boxes.csv").write_text("file,x0,y0,x1,y1\n0.png,1,1,4,4\n")
    stats = [(tmp_path / rel).stat() for rel in ("wrap/a/0.png", "wrap/b/1.png")]
    expected = {
        "kind": "folder",
        "labels": ["a", "b"],
        "items": [
            ["a/0.png", 0, stats[0].st_size, stats[0].st_mtime_ns],
            ["b/1.png", 1, stats[1].st_size, stats[1].st_mtime_ns],
        ],
    }
    assert load_dataset(tmp_path).signature() == expected
    assert AnnotatedDataset(tmp_path, tmp_path / "boxes.csv").signature() == expected
