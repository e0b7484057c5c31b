"""Datasets for embeddings: folder layouts, file lists, zip uploads (and their tricks), the
built-in shapes, stratified sub-sampling, and clear errors for bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embeddings import (
    DatasetError,
    FileListDataset,
    ImageFolderDataset,
    ShapesDataset,
    ZipDataset,
    load_dataset,
    stratified_indices,
)


def _png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# -- folders ----------------------------------------------------------------------------------
def test_image_folder_layout_with_junk(tmp_path):
    _write(tmp_path, "dog/b.png", _png())
    _write(tmp_path, "dog/a.jpg", _png())
    _write(tmp_path, "cat/indoor/c.PNG", _png())  # nested deeper: still class "cat"
    _write(tmp_path, "cat/notes.txt", b"not an image")
    _write(tmp_path, "cat/.hidden.png", _png())  # hidden: ignored silently
    _write(tmp_path, ".git/x.png", _png())
    _write(tmp_path, "loose.png", _png())  # outside the class folders
    (tmp_path / "empty_class").mkdir()
    ds = load_dataset(tmp_path)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.label_names == ["cat", "dog"]
    assert ds.names == ["cat/indoor/c.PNG", "dog/a.jpg", "dog/b.png"]
    assert ds.labels.tolist() == [0, 1, 1]
    assert ds.paths[1] == str(tmp_path / "dog" / "a.jpg")
    reasons = dict(ds.skipped)
    assert reasons["cat/notes.txt"] == "not an image file (.txt)"
    assert "outside the class folders" in reasons["loose.png"]
    assert not any("hidden" in name or ".git" in name for name in reasons)
    assert ds.load(0).image.size == (16, 16)


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        _write(tmp_path, f"img{i}.png", _png())
    ds = load_dataset(tmp_path)
    assert ds.label_names == [] and ds.labels.tolist() == [-1, -1, -1]
    assert not ds.has_labels


def test_single_wrapper_folder_is_unwrapped(tmp_path):
    _write(tmp_path, "upload/train/cat/1.png", _png())
    _write(tmp_path, "upload/train/dog/2.png", _png())
    _write(tmp_path, "README.txt", b"about this dataset")  # junk beside the wrapper
    ds = load_dataset(tmp_path)
    assert ds.label_names == ["cat", "dog"] and ds.names == ["cat/1.png", "dog/2.png"]
    assert ds.skipped == [("README.txt", "not an image file (.txt)")]


def test_empty_folder_and_folder_of_non_images_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="No images in folder"):
        load_dataset(empty)
    junk = tmp_path / "junk"
    _write(junk, "a.txt", b"hello")
    _write(junk, "b.csv", b"1,2")
    with pytest.raises(DatasetError, match=r"2 files skipped.*a\.txt: not an image file") as info:
        load_dataset(junk)
    assert "one sub-folder of images per class" in str(info.value)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing")


def test_file_list_with_labels_and_missing_files(tmp_path):
    a = _write(tmp_path, "a.png", _png())
    b = _write(tmp_path, "b.png", _png())
    ds = FileListDataset([a, tmp_path / "gone.png", b], labels=["dog", "cat", "dog"])
    assert ds.label_names == ["cat", "dog"]
    assert ds.labels.tolist() == [1, 1] and ds.names == ["a.png", "b.png"]
    assert ds.skipped == [(str(tmp_path / "gone.png"), "file not found")]
    assert isinstance(load_dataset([a, b]), FileListDataset)
    with pytest.raises(DatasetError, match="3 labels were given for 2 files"):
        FileListDataset([a, b], labels=[0, 1, 1])


def test_signature_tracks_size_and_mtime(tmp_path):
    path = _write(tmp_path, "cat/a.png", _png())
    before = load_dataset(tmp_path).signature()
    assert load_dataset(tmp_path).signature() == before
    path.write_bytes(_png((1, 2, 3), size=(17, 16)))
    assert load_dataset(tmp_path).signature() != before


# -- zip archives -----------------------------------------------------------------------------
def test_zip_with_root_folder_nested_classes_and_junk(tmp_path):
    data = _zip(
        {
            "root/cat/x.jpg": _png(),
            "root/cat/deeper/y.png": _png(),
            "root/dog/z.png": _png(),
            "root/dog/readme.md": b"# notes",
            "__MACOSX/root/cat/._x.jpg": b"\x00\x05\x16\x07",
            "root/.DS_Store": b"junk",
            "root/dog/.hidden.png": _png(),
        }
    )
    ds = load_dataset(data)
    assert isinstance(ds, ZipDataset)
    assert ds.label_names == ["cat", "dog"]
    assert ds.names == ["cat/deeper/y.png", "cat/x.jpg", "dog/z.png"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert ds.paths[2] == "upload.zip/dog/z.png"
    assert ds.skipped == [("root/dog/readme.md", "not an image file (.md)")]
    assert ds.load(1).image.getpixel((0, 0)) == (200, 30, 30)
    # The same archive from a path and from a file object (a browser upload).
    path = tmp_path / "set.zip"
    path.write_bytes(data)
    from_path = load_dataset(path)
    assert from_path.names == ds.names and from_path.paths[0] == "set.zip/cat/deeper/y.png"
    upload = io.BytesIO(data)
    upload.name = "my upload.zip"
    assert load_dataset(upload).paths[0] == "my upload.zip/cat/deeper/y.png"


@pytest.mark.parametrize(
    "entry", ["../evil.png", "cat/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"]
)
def test_zip_path_tricks_are_refused(entry):
    data = _zip({"cat/ok.png": _png(), entry: _png()})
    with pytest.raises(DatasetError, match="unsafe entry"):
        ZipDataset(data)


def test_zip_size_cap_and_corrupt_archive():
    data = _zip({"cat/a.png": _png(), "cat/b.png": b"\x00" * 50_000})
    with pytest.raises(DatasetError, match="would unpack to"):
        ZipDataset(data, max_bytes=10_000)
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        ZipDataset(b"PK\x03\x04 this is not really a zip")


# -- built-in shapes and sub-sampling ----------------------------------------------------------
def test_shapes_dataset():
    from embeddings.datasets import HELD_OUT_SEED
    from explain.builtin.shapes import CLASSES

    ds = load_dataset("builtin:shapes", max_images=12, seed=3)
    assert isinstance(ds, ShapesDataset) and len(ds) == 12
    assert ds.label_names == list(CLASSES)
    assert np.bincount(ds.labels).tolist() == [2] * 6
    image = ds.load(0).image
    assert image.size == (64, 64) and image.mode == "RGB"
    # The loader draws held-out images: never those the built-in models were trained on (seed 0).
    again = ShapesDataset(12, seed=HELD_OUT_SEED + 3)
    assert np.array_equal(np.asarray(again.load(5).image), np.asarray(ds.load(5).image))
    training = ShapesDataset(12, seed=0)
    assert not np.array_equal(np.asarray(training.load(5).image), np.asarray(ds.load(5).image))
    assert ds.signature() != ShapesDataset(12, seed=4).signature()
    with pytest.raises(DatasetError, match="no built-in dataset"):
        load_dataset("builtin:cifar")


def test_stratified_sampling_is_proportional_and_deterministic():
    labels = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    idx = stratified_indices(labels, 20, seed=0)
    assert np.bincount(labels[idx]).tolist() == [10, 6, 3, 1]
    assert np.array_equal(idx, np.sort(idx)) and len(set(idx.tolist())) == 20
    assert np.array_equal(idx, stratified_indices(labels, 20, seed=0))
    assert not np.array_equal(idx, stratified_indices(labels, 20, seed=1))
    # Every class keeps one image when n allows it, even a tiny one.
    tiny = np.repeat([0, 1, 2], [98, 1, 1])
    assert np.bincount(tiny[stratified_indices(tiny, 5)]).tolist() == [3, 1, 1]
    assert len(stratified_indices(labels, 500)) == 100


def test_subsample_of_a_folder(tmp_path):
    for cls in ("a", "b"):
        for i in range(10):
            _write(tmp_path, f"{cls}/{i:02d}.png", _png())
    ds = load_dataset(tmp_path, max_images=6, seed=0)
    assert len(ds) == 6 and np.bincount(ds.labels).tolist() == [3, 3]
    assert ds.names == load_dataset(tmp_path, max_images=6, seed=0).names
    with pytest.raises(DatasetError, match="at least 1"):
        load_dataset(tmp_path, max_images=0)
