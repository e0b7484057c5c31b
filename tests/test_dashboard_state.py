"""The dashboard's pieces without a page: links that may name only safe models, the store of
results, upload messages and kept uploads (and their clean-up), the default model and images,
and which methods a model is offered."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import sources
from dashboard.results import ResultStore
from explain import DEFAULT, ExplainError


def test_links_name_only_builtin_torchvision_and_hub_models():
    choice = sources.ModelChoice.from_url({"model": "torchvision:resnet50", "weights": "random"})
    assert choice == sources.ModelChoice("torchvision:resnet50", None)
    assert choice.url_params() == {"model": "torchvision:resnet50", "weights": "random"}
    hub = sources.ModelChoice.from_url({"model": "hf:microsoft/resnet-50"})
    assert hub == sources.ModelChoice("hf:microsoft/resnet-50", DEFAULT)
    assert not hub.trust_remote_code  # never from a link
    for refused in (
        "explain.architectures:cifar_resnet20",  # Python code
        "hf:/etc/passwd",  # a file on the server
        "hf:../secrets",
        "torchvision:resnet50/../x",
        "",
    ):
        assert sources.ModelChoice.from_url({"model": refused}) is None, refused
    uploaded = sources.ModelChoice("torchvision:resnet18", "/tmp/x/w.pth", False, None, "w.pth")
    assert uploaded.url_params() == {}  # a file on this server is never put in a link
    assert uploaded.title == "torchvision:resnet18 + w.pth"


def test_default_model_is_the_real_imagenet_model_on_the_sample_photos():
    """A newcomer's first screen: EfficientNet-Lite0 (installed here by setup.sh) explaining
    the shipped photos; the shapes models get the shapes."""
    assert sources.default_model_spec() == "builtin:efficientnet-lite0"
    assert sources.default_choice() == sources.ModelChoice("builtin:efficientnet-lite0")
    assert sources.default_sample_set() == "photos"
    photos = sources.load_images_source("photos")
    assert [p.name for p in photos[:3]] == ["chelsea the cat", "espresso", "chinese palace"]
    assert [p.label for p in photos[:3]] == ["tabby", "espresso", "palace"]
    assert all(p.pixels.ndim == 3 and min(p.pixels.shape[:2]) >= 200 for p in photos)
    assert sources.default_sample_set("builtin:shapes") == "shapes"
    assert sources.default_sample_set("builtin:shapes-biased") == "shapes-marker"
    assert sources.default_sample_set("torchvision:resnet50") == "photos"
    # Built-in models get the images of their kind; uploads and other models keep theirs.
    assert not sources.suits("builtin:shapes", "photos")
    assert sources.suits("builtin:shapes-biased", "shapes")
    assert not sources.suits("builtin:efficientnet-lite0", "shapes-marker")
    assert sources.suits("torchvision:resnet18", "shapes")
    assert sources.suits("builtin:shapes", "upload-" + "0" * 24)
    shapes = sources.load_images_source("shapes")
    assert [p.label for p in shapes] == ["circle", "square", "triangle", "star", "cross", "hexagon"]
    assert len({p.key for p in shapes}) == 6 and sources.load_images_source("nope") == []
    assert sources.builtin_specs()[:2] == ("builtin:shapes", "builtin:shapes-biased")
    assert "builtin:efficientnet-lite0" in sources.builtin_specs()


def test_kept_uploads_are_cleaned_up_oldest_first(tmp_path, monkeypatch):
    """Uploads unused for longer than the time limit go, then the least recently used while
    the folder is over its size limit; a link to a pruned set finds nothing (and the page
    shows the samples)."""
    import os

    monkeypatch.setattr(sources, "UPLOADS", tmp_path)
    monkeypatch.setenv("GCE_UPLOAD_TTL_S", "3600")
    monkeypatch.setenv("GCE_UPLOAD_MAX_MB", str(2500 / 2**20))  # 2,500 bytes
    old = sources.save_upload(b"o" * 1000, "old.pth")
    mid = sources.save_upload(b"m" * 1000, "mid.pth")
    new = sources.save_upload(b"n" * 1000, "new.pth")
    now = 1_000_000_000.0
    for path, age in ((old, 7200), (mid, 1800), (new, 60)):
        os.utime(path, (now - age, now - age))
    for blob in (tmp_path / "blobs").iterdir():
        os.utime(blob, (now - 60, now - 60))
    assert sources.prune_uploads(now) >= 1
    assert not os.path.exists(old)  # older than an hour
    # Blobs (3 x 1,000 bytes) and files: over 2,500 bytes, so the least recent also go.
    assert os.path.exists(new)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total <= 2500
    # Empty folders are removed.
    assert all(any(d.iterdir()) for d in tmp_path.rglob("*") if d.is_dir())
    # A kept set whose files are gone is simply not found.
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    set_id = sources.remember_uploads([("tiny.png", buf.getvalue())])
    assert [p.name for p in sources.recall_uploads(set_id)] == ["tiny.png"]
    monkeypatch.setenv("GCE_UPLOAD_TTL_S", "0")
    sources.prune_uploads(now=os.path.getmtime(tmp_path / "sets" / f"{set_id}.json") + 1)
    assert sources.recall_uploads(set_id) == [] and not any(tmp_path.iterdir())


def test_upload_messages_name_the_file_and_uploads_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "UPLOADS", tmp_path)
    with pytest.raises(ExplainError, match=r"^holiday.jpg is empty \(0 bytes\)"):
        sources.read_upload("holiday.jpg", b"")
    with pytest.raises(ExplainError, match=r"^notes.txt is not an image file"):
        sources.read_upload("notes.txt", b"hello")
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(buf, format="PNG")
    picture = sources.read_upload("grey.png", buf.getvalue())
    assert picture.name == "grey.png" and picture.pixels.shape == (20, 30, 3)
    set_id = sources.remember_uploads([("grey.png", buf.getvalue())])
    again = sources.load_images_source(f"upload-{set_id}")
    assert [p.name for p in again] == ["grey.png"] and again[0].key == picture.key
    assert sources.recall_uploads("../../etc/passwd") == []
    path = sources.save_upload(b"weights", "my model (v2).pth")
    assert path.endswith("/my_model_v2_.pth")


def test_result_store_serves_repeats_and_drops_the_oldest_by_size():
    store = ResultStore(max_bytes=3 * 800)
    calls = []

    def make(i):
        calls.append(i)
        return np.zeros(100, np.float64)  # 800 bytes

    for i in range(4):
        store.get(i, lambda i=i: make(i))
    assert calls == [0, 1, 2, 3] and len(store) == 3 and 0 not in store
    store.get(1, lambda: make(99))  # served: no computation, and now the most recent
    store.get(4, lambda: make(4))
    assert calls == [0, 1, 2, 3, 4] and 1 in store and 2 not in store


def test_attention_methods_are_offered_for_transformers_only():
    from reference_models import small_timm_vit

    from dashboard.method_choice import not_offered_note, offered
    from explain import Preprocess, load_model

    attention = ["rollout", "chefer", "legrad"]
    cnn = load_model("builtin:shapes")
    vit = load_model(
        small_timm_vit(), weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64))
    )
    assert not set(attention) & set(offered(cnn))
    assert {"gradcam", "scorecam", "cam"} <= set(offered(cnn))
    assert "Attention rollout" in not_offered_note(cnn) and "no attention blocks" in (
        not_offered_note(cnn)
    )
    assert offered(vit)[-3:] == attention and "gradcam" in offered(vit)
    assert not_offered_note(vit) is None
    assert offered(vit, kinds=("attention",)) == attention
    assert offered(cnn, kinds=("gradient", "attention"))[0] == "gradcam"


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_evaluate_data_from_a_zip_of_images_and_a_zip_of_voc_files(tmp_path, monkeypatch):
    """The Evaluate page's zip path: images in one archive, Pascal VOC boxes in another
    (unpacked into the kept uploads, so pruning cleans them up); the boxes come back in the
    model's input pixels, and unsafe or empty archives are refused by name."""
    import io

    from PIL import Image

    from dashboard import evaluation_data as ed
    from explain import load_model

    monkeypatch.setattr(sources, "UPLOADS", tmp_path)
    handle = load_model("builtin:shapes")  # 64 x 64 input, resized straight from the image
    buf = io.BytesIO()
    Image.new("RGB", (128, 128), (40, 90, 200)).save(buf, format="PNG")
    images = ed.Upload("photos.zip", _zip({"pics/a.png": buf.getvalue()}))
    voc = (
        "<annotation><filename>a.png</filename><size><width>128</width><height>128</height>"
        "</size><object><name>square</name><bndbox><xmin>33</xmin><ymin>17</ymin>"
        "<xmax>96</xmax><ymax>80</ymax></bndbox></object></annotation>"
    )
    truth = ed.Upload("voc.zip", _zip({"Annotations/a.xml": voc.encode()}))
    dataset, said = ed.open_dataset("zip", images=images, truth_file=truth)
    assert said == "photos.zip with voc.zip" and dataset.has_truth and len(dataset) == 1
    assert (tmp_path / "annotations").is_dir()  # pruned with the other uploads
    picture, boxes = ed.truth_of(handle, dataset, "a.png")
    assert picture.pixels.shape == (128, 128, 3)
    # VOC's 1-based inclusive 33..96 is the edges 32..96 at 128 px: 16..48 at 64 px.
    np.testing.assert_allclose(boxes, [[16.0, 8.0, 48.0, 40.0]])
    with pytest.raises(ExplainError, match=r"^evil.zip names a file outside the archive"):
        ed.unpack_annotations(ed.Upload("evil.zip", _zip({"../../x.xml": b"<a/>"})))
    with pytest.raises(ExplainError, match=r"^notes.zip holds no annotation"):
        ed.unpack_annotations(ed.Upload("notes.zip", _zip({"readme.txt": b"hi"})))
    with pytest.raises(ExplainError, match=r"^empty.csv is empty"):
        ed.unpack_annotations(ed.Upload("empty.csv", b""))
    csv = b"file,label,x0,y0,x1,y1\na.png,square,32,16,96,80\n"
    assert ed.unpack_annotations(ed.Upload("boxes.csv", csv)) == csv  # read as it is


def test_evaluate_data_finds_the_boxes_next_to_an_images_folder(shared_data, monkeypatch):
    from dashboard import evaluation_data as ed

    monkeypatch.setenv("GCE_DATA_ROOTS", str(shared_data))
    folder = shared_data / "imagenet-val" / "images"
    assert ed.find_annotations(folder.resolve()) == (folder.parent / "boxes.csv").resolve()
    dataset, said = ed.open_dataset("folder", folder=str(folder))
    assert said.endswith("(ground truth: boxes.csv)") and len(dataset) == 300
    assert dataset.has_truth
    with pytest.raises(ExplainError, match="outside the folders this dashboard may read"):
        ed.open_dataset("folder", folder="/etc")


def test_a_failing_computation_becomes_a_clear_message(monkeypatch):
    """Whatever goes wrong inside a method reaches the page as an ExplainError naming the
    method, the model and the cause (the page shows it; no traceback)."""
    from dashboard import results
    from explain import load_model

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x7 and 9x2)")

    monkeypatch.setattr(results, "compute_cams", broken)
    handle = load_model("builtin:shapes")
    picture = sources.Picture.of("grey", np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(ExplainError, match=r"^Score-CAM failed on builtin:shapes at layer3: "):
        results.cams("k", handle, picture, "scorecam", ("layer3",))
    assert ("cams", "k", picture.key, "scorecam", ("layer3",), None) not in results.store()
