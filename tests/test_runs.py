"""Run folders with the in-process engine: the Parquet blocks hold what the in-memory paths
compute (activations, CAMs, evaluation tables), an interrupted run resumes without recomputing
its finished blocks, and every failure is one clear error. The same runs on Ray are in
test_ray_engine.py."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import CIFAR_TEST, CIFAR_WEIGHTS, tiny_cnn
from run_checks import assert_same_evaluation, mtimes, synthetic

from embeddings import collect_activations
from embeddings.figures import point_cloud
from embeddings.runs import read_activations, run_features, sample_rows, save_activations
from explain import EngineError, ModelLoadError, RunError, TopK, compute_cams, evaluate
from explain.architectures import CIFAR10_CLASSES
from explain.cli import explain as explain_cli
from explain.evaluation.blocks import read_evaluation
from explain.runs import LocalEngine, RayEngine, RunFolder, open_run, resolve_engine
from explain.runs.cams import read_maps, read_table
from explain.runs.ray_engine import check_address

LAYERS = ["layer2", "layer3"]


def test_activations_run_equals_in_memory_and_resumes_after_interrupt(cifar_handle, tmp_path):
    out = tmp_path / "run"
    calls = []

    def stop_after_first_block(done, total, message=""):
        calls.append(done)
        if done >= 32:  # the first block is on disk: interrupt as Ctrl-C would
            raise KeyboardInterrupt

    kwargs = {"max_images": 96, "block_size": 32}
    with pytest.raises(KeyboardInterrupt):
        collect_activations(
            cifar_handle, CIFAR_TEST, LAYERS, engine="local", out=out,
            progress=stop_after_first_block, **kwargs,
        )  # fmt: skip
    folder = open_run(out, "activations")
    assert [b.index for b in folder.written()] == [0] and folder.manifest["status"] == "running"
    before = mtimes(folder)

    acts = collect_activations(cifar_handle, CIFAR_TEST, LAYERS, engine="local", out=out, **kwargs)
    last = open_run(out).manifest["last_run"]
    assert (last["computed"], last["reused"], last["blocks"]) == (2, 1, 3)
    assert mtimes(folder)[folder.files()[0].name] == before[folder.files()[0].name]
    assert acts.run == str(out.resolve()) and not acts.from_cache

    memory = collect_activations(cifar_handle, CIFAR_TEST, LAYERS, cache_dir=False, max_images=96)
    assert acts.paths == memory.paths and acts.names == memory.names
    np.testing.assert_array_equal(acts.labels, memory.labels)
    for layer in LAYERS:  # blocks of 32 and batches of 64: the same sums in another order
        np.testing.assert_allclose(acts.features[layer], memory.features[layer], atol=1e-5)
    np.testing.assert_allclose(acts.probabilities, memory.probabilities, atol=1e-6)
    assert 0.7 < acts.accuracy < 0.95  # the real pretrained ResNet-20 (about 0.8 here)

    # Every reader sees one format: pandas reads the blocks as they are.
    frame = pd.read_parquet(out / "blocks")
    assert len(frame) == 96 and list(frame["path"]) == memory.paths
    assert frame["feature:layer3"].iloc[5].shape == (64,)
    np.testing.assert_array_equal(run_features(out, "layer3"), acts.features["layer3"])
    again = collect_activations(cifar_handle, CIFAR_TEST, LAYERS, engine="local", out=out, **kwargs)
    assert again.from_cache and open_run(out).manifest["last_run"]["computed"] == 0


def test_run_folder_keeps_one_run_and_says_what_it_is(tmp_path):
    RunFolder.create(tmp_path / "r", kind="activations", key="a", items=3, block_size=2, params={})
    with pytest.raises(RunError, match="holds another run"):
        RunFolder.create(tmp_path / "r", kind="activations", key="b", items=3, block_size=2,
                         params={})  # fmt: skip
    with pytest.raises(RunError, match="not a run folder"):
        open_run(tmp_path)
    with pytest.raises(RunError, match="run of activations, not of cams"):
        open_run(tmp_path / "r", "cams")
    with pytest.raises(RunError, match="holds no block yet"):
        read_activations(tmp_path / "r")


def test_cam_run_from_the_command_line_equals_compute_cams(cifar_handle, tmp_path, capsys):
    files = sorted((CIFAR_TEST / "cat").glob("*.jpg"))[:10]
    out = tmp_path / "cams"
    code = explain_cli.main(
        [*map(str, files), "--model", "explain.architectures:cifar_resnet20", "--weights",
         str(CIFAR_WEIGHTS), "--labels", ",".join(CIFAR10_CLASSES), "--input-size", "32",
         "--layers", "layer3", "--method", "gradcam,layercam", "--target", "top2",
         "--engine", "local", "--block-size", "4", "--device", "cpu", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "3 block(s) computed" in capsys.readouterr().out
    table = read_table(out)
    assert len(table) == 10 * 2 * 2  # images x methods x top-2 classes
    x = cifar_handle.preprocess([str(f) for f in files])
    for method in ("gradcam", "layercam"):
        res = compute_cams(cifar_handle, x, ["layer3"], method, TopK(2))
        rows = (table["method"] == method).to_numpy()
        order = np.lexsort((table["rank"][rows], table["index"][rows]))
        maps = read_maps(out, "layer3")[rows][order]
        np.testing.assert_allclose(maps, res.maps["layer3"].reshape(-1, 32, 32), atol=1e-5)
        raw = read_maps(out, "layer3", raw=True)[rows][order]
        np.testing.assert_allclose(raw, res.raw["layer3"].reshape(-1, 8, 8), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(table["target"][rows].to_numpy()[order], res.targets.ravel())


def test_evaluation_run_equals_in_memory(cifar_handle, tmp_path):
    options = {
        "methods": ["gradcam"], "layers": ["layer3"],
        "metrics": ["deletion", "average_drop", "road_combined", "sanity_spearman"],
        "max_images": 30, "steps": 5, "road_fractions": (0.3,), "sanity_images": 10,
        "sanity_stages": ("linear", "layer3.2"), "n_resamples": 200,
    }  # fmt: skip
    memory = evaluate(cifar_handle, CIFAR_TEST, **options)
    # Blocks of 8: the sanity check's 10 images and ROAD's seeded noise cross a block border.
    run = evaluate(cifar_handle, CIFAR_TEST, engine="local", out=tmp_path / "ev", block_size=8,
                   **options)  # fmt: skip
    assert_same_evaluation(memory, run)
    reread = read_evaluation(tmp_path / "ev")
    pd.testing.assert_frame_equal(reread.summary, run.summary)


def test_engine_errors_are_clear(cifar_handle, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match=f"Cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}")
    code = explain_cli.main(
        [str(CIFAR_TEST / "cat" / "0000.jpg"), "--model", "explain.architectures:cifar_resnet20",
         "--weights", str(CIFAR_WEIGHTS), "--input-size", "32", "--layers", "layer3",
         "--address", f"ray://127.0.0.1:{port}", "--out", str(tmp_path / "x")]
    )  # fmt: skip
    assert code == 2 and "Cannot reach the Ray cluster" in capsys.readouterr().err
    with pytest.raises(EngineError, match="options of the Ray engine"):
        resolve_engine("local", address="auto")
    with pytest.raises(EngineError, match="Unknown engine"):
        resolve_engine("spark")
    assert isinstance(resolve_engine(None), LocalEngine)
    assert isinstance(resolve_engine(None, num_workers=2), RayEngine)

    with pytest.raises(ModelLoadError, match="given as a Python object"):
        collect_activations(tiny_cnn(), CIFAR_TEST, ["2"], max_images=4, engine=RayEngine(),
                            out=tmp_path / "obj")  # fmt: skip

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(EngineError, match="needs Ray, which is not installed") as info:
        collect_activations(cifar_handle, CIFAR_TEST, LAYERS, max_images=4, engine="ray",
                            out=tmp_path / "noray")  # fmt: skip
    assert "pip install" in str(info.value)


def test_large_runs_are_sampled_with_a_note_and_drawn_with_webgl(tmp_path):
    acts = synthetic(100_000)
    figure = point_cloud(acts, acts.features["deep"][:, :2])
    assert {trace.type for trace in figure.data} == {"scattergl"}
    assert sum(len(trace.x) for trace in figure.data) == 100_000
    rows = np.concatenate([trace.customdata for trace in figure.data])
    assert sorted(rows.tolist()) == list(range(100_000))

    folder = save_activations(acts.subset(np.arange(5000)), tmp_path / "saved", block_size=2048)
    rows, note = sample_rows(folder, 1000, seed=0)
    assert len(rows) == 1000 and "1,000 of the run's 5,000 images" in note
    counts = np.bincount(read_activations(folder, rows=rows).labels, minlength=10)
    expected = np.bincount(acts.labels[:5000], minlength=10) / 5
    assert np.abs(counts - expected).max() <= 1  # stratified: each class in proportion
    assert sample_rows(folder, 5000) == (None, "")


def test_random_weights_go_to_workers_as_a_file(tmp_path):
    from explain import load_model
    from explain.runs.engine import worker_recipe

    handle = load_model("torchvision:resnet18", weights=None, device="cpu")
    folder = RunFolder.create(tmp_path, kind="x", key="k", items=1, block_size=1, params={})
    recipe = worker_recipe(handle, folder)  # a worker's own random draw would differ
    assert recipe.weights == str(folder.path / "model" / "weights.pth")
    assert recipe.load(device="cpu").fingerprint == handle.fingerprint
    assert load_model("torchvision:resnet18", weights=None).fingerprint != handle.fingerprint


def test_evaluation_command_line_writes_a_run_and_its_tables(tmp_path, capsys):
    from explain.cli import evaluate as evaluate_cli

    out = tmp_path / "eval"
    code = evaluate_cli.main(
        ["--model", "explain.architectures:cifar_resnet20", "--weights", str(CIFAR_WEIGHTS),
         "--labels", ",".join(CIFAR10_CLASSES), "--input-size", "32", "--data", str(CIFAR_TEST),
         "--layers", "layer3", "--metrics", "deletion,average_drop", "--steps", "3",
         "--max-images", "20", "--engine", "local", "--block-size", "8", "--device", "cpu",
         "-q", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    run = open_run(out, "evaluation")
    assert run.complete and len(run.blocks) == 3
    table = pd.read_csv(out / "table.csv")
    blocks = run.to_pandas()
    assert len(table) == len(blocks) == 20 * 3 * 2  # images x (gradcam + 2 baselines) x metrics
    np.testing.assert_allclose(np.sort(table["value"]), np.sort(blocks["value"]), rtol=1e-6)
