"""Helpers shared by the run-folder tests (test_runs, test_ray_engine, test_dashboard_runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from embeddings.collect import Activations
from explain.architectures import CIFAR10_CLASSES
from explain.runs import RunFolder


def mtimes(folder: RunFolder) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.files()}


def assert_same_evaluation(memory, run) -> None:
    """Tables, curves, images, summaries and verdicts agree to float tolerance."""
    a, b = memory.table, run.table
    assert len(a) == len(b) > 0
    for column in a.columns:
        if column == "value":
            np.testing.assert_allclose(b[column], a[column], rtol=1e-5, atol=1e-6)
        else:
            assert list(b[column].astype(str)) == list(a[column].astype(str)), column
    assert list(run.curves) == list(memory.curves)
    for key, curve in memory.curves.items():
        np.testing.assert_allclose(run.curves[key].values, curve.values, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(run.curves[key].x, curve.x)
    pd.testing.assert_frame_equal(run.images, memory.images)
    numbers = ["mean", "std", "median", "random", "gaussian", "p_random", "p_gaussian"]
    pd.testing.assert_frame_equal(
        run.summary[numbers], memory.summary[numbers], rtol=1e-5, atol=1e-6
    )
    assert list(run.verdicts["verdict"]) == list(memory.verdicts["verdict"])
    assert run.params["sanity_images"] == memory.params["sanity_images"] == 10


def synthetic(n: int, seed: int = 0) -> Activations:
    """``n`` images of 10 classes with 8-D features that cluster by class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, 8)) * 4
    features = (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)
    probs = np.full((n, 10), 0.02, np.float32)
    probs[np.arange(n), labels] = 0.82
    return Activations(
        features={"shallow": rng.normal(size=(n, 4)).astype(np.float32), "deep": features},
        labels=labels,
        label_names=list(CIFAR10_CLASSES),
        paths=[f"/data/img{i:06d}.jpg" for i in range(n)],
        names=[f"img{i:06d}.jpg" for i in range(n)],
        indices=np.arange(n),
        probabilities=probs,
        class_names=list(CIFAR10_CLASSES),
        layer_infos={},
        pooling={},
    )
