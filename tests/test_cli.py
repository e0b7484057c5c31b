"""The command line (``python -m explain``) on the built-in shapes model: files written, the
summary's content, agreement with ``compute_cams``, bad files and exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import spawn
from PIL import Image

from explain import TopK, compute_cams, load_model
from explain.builtin.shapes import CLASSES, make_sample
from explain.cli.command import safe_part
from explain.cli.explain import main, resolve_target, unique_names
from explain.cli.options import layer_names, resolve_methods
from explain.render import overlay

LAYERS = ["layer2", "layer3"]


@pytest.fixture(scope="module")
def handle():
    return load_model("builtin:shapes", device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Six clear shape images (one per class, saved as PNG) and one truncated PNG."""
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for label, name in enumerate(CLASSES):
        path = folder / f"{name}.png"
        Image.fromarray(make_sample(label, seed=3, noise=False).image).save(path)
        paths[name] = path
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(paths["circle"].read_bytes()[:120])  # a PNG cut off mid-stream
    paths["corrupt"] = corrupt
    return paths


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    """One run over all files: Grad-CAM at two layers."""
    out = tmp_path_factory.mktemp("out")
    argv = [*files.values(), "--model", "builtin:shapes", "--layers", ",".join(LAYERS)]
    code, stdout, stderr = run_main([*argv, "--out", out])
    summary = json.loads((out / "summary.json").read_text())
    return code, stdout, stderr, out, summary


def good_images(files) -> list[Image.Image]:
    return [Image.open(files[name]) for name in CLASSES]


def test_run_succeeds_and_writes_every_file(run):
    code, stdout, _, out, summary = run
    assert code == 0
    assert summary["status"] == "ok"
    assert summary["explained"] == 6
    assert summary["methods"] == ["gradcam"]
    assert summary["layers"] == LAYERS
    expected = {
        f"{name}__gradcam__{layer}{ext}"
        for name in CLASSES
        for layer in LAYERS
        for ext in (".png", ".npy", ".raw.npy")
    }
    assert set(summary["files"]) == expected
    assert {p.name for p in out.iterdir()} == expected | {"summary.json"}
    assert "Explained 6 image(s)" in stdout
    assert set(summary["timings_s"]) >= {"load_model", "read_images", "write", "total"}
    assert summary["timings_s"]["methods"]["gradcam"] > 0


def test_predictions_are_the_true_classes(run):
    images = run[4]["images"]
    assert [record["name"] for record in images] == list(CLASSES)
    for label, record in enumerate(images):
        top = record["predictions"]
        assert len(top) == 5
        assert top[0]["label"] == CLASSES[label] and top[0]["index"] == label
        assert top[0]["probability"] > 0.5
        probs = [p["probability"] for p in top]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-5
        assert record["targets"] == [{"index": label, "label": CLASSES[label]}]  # auto: top-1
        assert {o["layer"] for o in record["outputs"]} == set(LAYERS)


def test_corrupt_file_is_reported_and_skipped(run, files):
    _, _, stderr, out, summary = run
    assert [s["file"] for s in summary["skipped"]] == [str(files["corrupt"])]
    assert "truncated or corrupt" in summary["skipped"][0]["reason"]
    assert f"skipped {files['corrupt']}" in stderr
    assert not list(out.glob("corrupt*"))


def test_maps_equal_compute_cams(run, files, handle):
    out = run[3]
    # The CLI explains the six readable images as one batch; so does this reference call.
    ref = compute_cams(handle, good_images(files), layers=LAYERS, method="gradcam")
    for i, name in enumerate(CLASSES):
        for layer in LAYERS:
            heat = np.load(out / f"{name}__gradcam__{layer}.npy")
            raw = np.load(out / f"{name}__gradcam__{layer}.raw.npy")
            assert heat.shape == (64, 64) and heat.dtype == np.float32
            np.testing.assert_allclose(heat, ref.maps[layer][i], atol=1e-6, rtol=0)
            np.testing.assert_allclose(raw, ref.raw[layer][i], atol=1e-6, rtol=0)
            assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    assert np.load(out / "star__gradcam__layer2.raw.npy").shape == (16, 16)
    assert np.load(out / "star__gradcam__layer3.raw.npy").shape == (8, 8)


def test_overlay_png_is_the_rendered_overlay(run, files, handle):
    out = run[3]
    pixels = handle.prepare([files["triangle"]])[0]
    heat = np.load(out / "triangle__gradcam__layer3.npy")
    with Image.open(out / "triangle__gradcam__layer3.png") as png:
        assert png.size == (64, 64) and png.mode == "RGB"
        decoded = np.asarray(png)
    np.testing.assert_array_equal(decoded, overlay(pixels, heat, alpha=0.5, cmap="jet"))


def test_same_stem_in_two_folders_gives_distinct_files(files, tmp_path, handle):
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "circle.png"  # same stem as files["circle"], a different picture
    Image.fromarray(make_sample(1, seed=5, noise=False).image).save(twin)
    code, *_ = run_main(
        [files["circle"], twin, "--model", "builtin:shapes", "--out", tmp_path / "o", "-q"]
    )
    assert code == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [r["name"] for r in summary["images"]] == ["circle", "circle-2"]
    ref = compute_cams(handle, [Image.open(files["circle"]), Image.open(twin)], layers="layer3")
    for i, name in enumerate(["circle", "circle-2"]):
        heat = np.load(tmp_path / "o" / f"{name}__gradcam__layer3.npy")
        np.testing.assert_allclose(heat, ref.maps["layer3"][i], atol=1e-6, rtol=0)
    assert summary["images"][1]["predictions"][0]["label"] == "square"


def test_file_name_parts():
    assert unique_names(["cat", "dog", "cat", "Cat", "cat-2"]) == [
        "cat",
        "dog",
        "cat-3",
        "Cat-4",
        "cat-2",
    ]
    assert safe_part("blocks/0.attn") == "blocks_0.attn"
    assert safe_part("encoder.layer.11") == "encoder.layer.11"
    assert safe_part("my photo (1)") == "my_photo_1_"


def test_option_parsing(handle):
    assert resolve_methods("Grad-CAM, score_cam,gradcam++,gradcam") == [
        "gradcam",
        "scorecam",
        "gradcampp",
    ]
    assert layer_names(handle, "default,layer3.?") == ["layer3", "layer3.0", "layer3.1"]
    assert layer_names(handle, "all") == [info.name for info in handle.map_layers]
    assert resolve_target(handle, "auto") is None
    assert resolve_target(handle, "4") == 4
    assert resolve_target(handle, "Star") == 3
    assert resolve_target(handle, "top3") == TopK(3)


def test_two_methods_and_top_k_targets(files, tmp_path, handle):
    argv = [files["star"], files["cross"], "--model", "builtin:shapes", "--layers", "layer3"]
    argv += ["--method", "gradcam,ablationcam", "--target", "top2", "--out", tmp_path, "-q"]
    assert run_main(argv)[0] == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"] == ["gradcam", "ablationcam"]
    x = [Image.open(files["star"]), Image.open(files["cross"])]
    for method in ("gradcam", "ablationcam"):
        ref = compute_cams(handle, x, layers="layer3", method=method, targets=TopK(2))
        for i, record in enumerate(summary["images"]):
            top2 = [p["index"] for p in record["predictions"][:2]]
            assert [t["index"] for t in record["targets"]] == top2 == ref.targets[i].tolist()
            for k in range(2):
                label = CLASSES[top2[k]]
                heat = np.load(
                    tmp_path / f"{record['name']}__{method}__layer3__top{k + 1}-{label}.npy"
                )
                np.testing.assert_allclose(heat, ref.maps["layer3"][i, k], atol=1e-6, rtol=0)
    assert len(summary["files"]) == 2 * 2 * 2 * 3


def test_named_target_with_smoothing_options(files, tmp_path, handle):
    argv = [files["hexagon"], "--model", "builtin:shapes", "--target", "square"]
    argv += ["--aug-smooth", "--eigen-smooth", "--colormap", "viridis", "--alpha", "0.7"]
    assert run_main([*argv, "--out", tmp_path, "-q"])[0] == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["layers"] == ["layer3"]  # --layers default
    assert summary["images"][0]["targets"] == [{"index": 1, "label": "square"}]
    assert summary["images"][0]["predictions"][0]["label"] == "hexagon"
    ref = compute_cams(
        handle,
        [Image.open(files["hexagon"])],
        "layer3",
        targets=1,
        aug_smooth=True,
        eigen_smooth=True,
    )
    heat = np.load(tmp_path / "hexagon__gradcam__layer3.npy")
    np.testing.assert_allclose(heat, ref.maps["layer3"][0], atol=1e-6, rtol=0)
    png = np.asarray(Image.open(tmp_path / "hexagon__gradcam__layer3.png"))
    pixels = handle.prepare([files["hexagon"]])[0]
    np.testing.assert_array_equal(png, overlay(pixels, heat, alpha=0.7, cmap="viridis"))


def test_no_readable_image_exits_1(files, tmp_path):
    code, _, stderr = run_main([files["corrupt"], "--model", "builtin:shapes", "--out", tmp_path])
    assert code == 1
    assert "no image could be explained" in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["explained"] == 0 and summary["files"] == []
    assert [s["file"] for s in summary["skipped"]] == [str(files["corrupt"])]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layers", "layer9"], "has no layer 'layer9'"),
        (["--layers", "fc"], "not a spatial map"),
        (["--method", "gradcam,nosuchcam"], "Unknown method 'nosuchcam'"),
        (["--target", "7"], "out of range"),
        (["--target", "dodecahedron"], "no class named 'dodecahedron'"),
        (["--model", "builtin:nosuch"], "no built-in model 'nosuch'"),
    ],
)
def test_usage_errors_exit_2_with_one_message(files, tmp_path, options, message):
    argv = [files["circle"], "--model", "builtin:shapes", *options, "--out", tmp_path / "o"]
    code, stdout, stderr = run_main(argv)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not (tmp_path / "o").exists()  # nothing written before the options were checked


@pytest.mark.parametrize("options", [["--alpha", "1.5"], ["--batch-size", "0"], ["--bogus"]])
def test_bad_options_exit_2(files, tmp_path, options):
    code, _, stderr = run_main(
        [files["circle"], "--model", "builtin:shapes", "--out", tmp_path, *options]
    )
    assert code == 2 and "usage:" in stderr


def test_entry_point_in_a_subprocess(files, tmp_path):
    base = [sys.executable, "-m", "explain", "--model"]
    good = [*base, "builtin:shapes", files["square"], files["corrupt"], "--out", tmp_path / "ok"]
    bad = [*base, "nosuchsource:model", files["square"], "--out", tmp_path / "bad"]
    procs = [spawn(cmd) for cmd in (good, bad)]  # at once: most time is importing torch
    (out_ok, err_ok), (out_bad, err_bad) = (p.communicate(timeout=120) for p in procs)
    assert procs[0].returncode == 0, err_ok
    assert "Explained 1 image(s)" in out_ok and "1 skipped" in out_ok
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["images"][0]["predictions"][0]["label"] == "square"
    assert "skipped" in err_ok and "corrupt.png" in err_ok
    assert (tmp_path / "ok" / "square__gradcam__layer3.png").is_file()
    assert procs[1].returncode == 2
    assert err_bad.startswith("error: Unknown model source") and "Traceback" not in err_bad
    assert out_bad == ""


def test_error_midway_keeps_what_was_written(files, tmp_path):
    # CAM (Zhou et al.) needs the layer the classifier pools: layer2 fails after Grad-CAM ran.
    argv = [files["circle"], "--model", "builtin:shapes", "--layers", "layer2"]
    code, _, stderr = run_main([*argv, "--method", "gradcam,cam", "--out", tmp_path, "-q"])
    assert code == 2
    assert stderr.startswith("error: CAM needs the classifier") and "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "error" and summary["error"].startswith("CAM needs")
    assert summary["explained"] == 1
    written = ["circle__gradcam__layer2.png", "circle__gradcam__layer2.npy"]
    assert set(written) <= set(summary["files"])
    assert all((tmp_path / name).is_file() for name in summary["files"])


def test_output_folder_may_be_the_input_folder(files, tmp_path):
    Image.open(files["square"]).save(tmp_path / "square.png")
    argv = [tmp_path, "--model", "builtin:shapes", "--out", tmp_path, "-q"]
    assert run_main(argv)[0] == 0
    assert run_main(argv)[0] == 0  # the second run does not explain the first one's overlays
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["file"] for r in summary["images"]] == [str(tmp_path / "square.png")]
