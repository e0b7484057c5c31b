"""The Ray engine on one local Ray of 2 CPUs (started once for the module) over real CIFAR-10
images and the pretrained ResNet-20: activations, CAMs and evaluation tables equal the
in-process results, and a run whose driver is killed resumes without recomputing the blocks it
had finished."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import numpy as np
import pytest
from conftest import CIFAR_TEST, CIFAR_WEIGHTS, spawn
from run_checks import assert_same_evaluation, mtimes

from embeddings import collect_activations
from explain import compute_cams, evaluate
from explain.architectures import CIFAR10_CLASSES
from explain.runs import RayEngine, open_run
from explain.runs.cams import cam_run, read_maps, read_table

try:
    import ray
    import ray.data  # the engine's part of Ray
except ImportError:  # pragma: no cover - CI installs Ray (requirements-dev.txt)
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed (pip install .[ray])", allow_module_level=True)

LAYERS = ["layer2", "layer3"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with 2 CPUs for every test of the module; its GCS address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_activations_on_ray_equal_in_process_with_progress_from_the_workers(
    cluster, cifar_handle, tmp_path
):
    reports = []
    acts = collect_activations(
        cifar_handle, CIFAR_TEST, LAYERS, max_images=200, block_size=50,
        engine=RayEngine(num_workers=2), out=tmp_path / "run",
        progress=lambda done, total, message: reports.append((done, total, message)),
    )  # fmt: skip
    memory = collect_activations(cifar_handle, CIFAR_TEST, LAYERS, max_images=200, cache_dir=False)
    assert acts.paths == memory.paths
    for layer in LAYERS:
        np.testing.assert_allclose(acts.features[layer], memory.features[layer], atol=1e-5)
    np.testing.assert_allclose(acts.probabilities, memory.probabilities, atol=1e-6)
    run = open_run(tmp_path / "run").manifest
    assert run["status"] == "complete" and run["last_run"]["computed"] == 4
    assert run["last_run"]["devices"] == ["cpu"]  # no GPU in this cluster
    assert run["engine"] == "ray (local; 2 workers x 1 CPU)"
    # Progress in images, each step naming the worker (host:pid) that finished a block.
    assert reports[-1][:2] == (200, 200)
    assert any(f":{pid}" in reports[-1][2] for pid in _pids(run["last_run"]["workers"]))


def _pids(workers: list[str]) -> list[str]:
    return [w.rsplit(":", 1)[1] for w in workers]


def test_cams_and_evaluation_on_ray_equal_in_process(cluster, cifar_handle, tmp_path):
    files = sorted((CIFAR_TEST / "ship").glob("*.jpg"))[:16]
    folder, stats = cam_run(
        cifar_handle, files, [f.stem for f in files], ["gradcam"], ["layer2", "layer3"],
        tmp_path / "cams", RayEngine(num_workers=1), block_size=6,
    )  # fmt: skip
    assert (stats.computed, folder.num_rows()) == (3, 16)
    res = compute_cams(cifar_handle, cifar_handle.preprocess([str(f) for f in files]),
                       ["layer2", "layer3"], "gradcam")  # fmt: skip
    np.testing.assert_array_equal(read_table(folder)["target"], res.targets)
    for layer in ("layer2", "layer3"):
        np.testing.assert_allclose(read_maps(folder, layer), res.maps[layer], atol=1e-5)

    options = {
        "methods": ["gradcam"], "layers": ["layer3"],
        "metrics": ["deletion", "insertion", "road_combined", "sanity_spearman"],
        "max_images": 40, "steps": 5, "road_fractions": (0.3,), "sanity_images": 10,
        "sanity_stages": ("linear", "layer3.2"), "n_resamples": 200,
    }  # fmt: skip
    memory = evaluate(cifar_handle, CIFAR_TEST, **options)
    on_ray = evaluate(cifar_handle, CIFAR_TEST, engine=RayEngine(num_workers=2),
                      out=tmp_path / "eval", block_size=8, **options)  # fmt: skip
    assert_same_evaluation(memory, on_ray)


def test_killed_run_resumes_without_recomputing_finished_blocks(cluster, cifar_handle, tmp_path):
    out = tmp_path / "killed"
    command = [
        sys.executable, "-m", "embeddings", CIFAR_TEST, "--model",
        "explain.architectures:cifar_resnet20", "--weights", CIFAR_WEIGHTS, "--labels",
        ",".join(CIFAR10_CLASSES), "--input-size", "32", "--layers", ",".join(LAYERS),
        "--max-images", "400", "--block-size", "20", "--projection", "pca", "--device", "cpu",
        "--address", cluster, "--num-workers", "1", "--out", out, "-q",
    ]  # fmt: skip
    driver = spawn(command)
    blocks = out / "blocks"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if blocks.is_dir() and len(list(blocks.glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.01)
    assert driver.poll() is None, driver.communicate()
    driver.send_signal(signal.SIGKILL)  # the driver dies; Ray ends its workers
    driver.communicate()
    time.sleep(2.0)  # a block its worker was writing lands (whole) or not at all
    folder = open_run(out, "activations")
    finished = mtimes(folder)
    assert 2 <= len(finished) < 20 and not list(blocks.glob(".*.tmp"))

    acts = collect_activations(
        cifar_handle, CIFAR_TEST, LAYERS, max_images=400, engine=RayEngine(num_workers=2), out=out
    )
    last = open_run(out).manifest["last_run"]
    assert (last["reused"], last["computed"]) == (len(finished), 20 - len(finished))
    assert {name: mtimes(folder)[name] for name in finished} == finished  # not rewritten
    memory = collect_activations(cifar_handle, CIFAR_TEST, LAYERS, max_images=400, cache_dir=False)
    assert acts.paths == memory.paths
    for layer in LAYERS:
        np.testing.assert_allclose(acts.features[layer], memory.features[layer], atol=1e-5)
