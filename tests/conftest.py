"""Shared fixtures: paths to the real data in ../shared/data and tiny models built offline."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GCE_SHARED_DATA", ROOT.parent / "shared" / "data"))
CIFAR_WEIGHTS = SHARED / "cifar10-resnet20" / "resnet20-12fca82f.th"
CIFAR_TEST = SHARED / "cifar10-test"
PHOTOS = SHARED / "photos"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config: pytest.Config) -> None:
    # Downloads must fail fast and never hang a test: no machine running tests has a hub token.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def spawn(args: Sequence[Any], **env: str) -> subprocess.Popen:
    """A child process from the project root with this checkout (and ``tests/``) first on the
    Python path; stdout and stderr captured as text. ``args`` are turned into strings."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return subprocess.Popen(
        [str(a) for a in args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tiny_cnn(seed: int = 0):
    """conv-ReLU-conv-ReLU-global pool-linear on 3 x 16 x 16 inputs, 4 classes, as a handle."""
    from torch import nn

    from explain import Preprocess, load_model

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    return load_model(
        model,
        weights=None,
        device="cpu",
        labels=list("abcd"),
        preprocess=Preprocess(input_size=(16, 16)),
    )


@pytest.fixture(scope="module")
def small_cnn():
    return tiny_cnn()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared test data is missing: {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def cifar_handle(shared_data):
    from explain import load_model
    from explain.architectures import CIFAR10_CLASSES, CIFAR10_PREPROCESS

    return load_model(
        "explain.architectures:cifar_resnet20",
        weights=CIFAR_WEIGHTS,
        labels=CIFAR10_CLASSES,
        preprocess=CIFAR10_PREPROCESS,
        device="cpu",
    )


@pytest.fixture(scope="session")
def cifar_files(shared_data) -> tuple[list[Path], np.ndarray]:
    from explain.architectures import CIFAR10_CLASSES

    paths = sorted(CIFAR_TEST.glob("*/*.jpg"))
    labels = np.array([CIFAR10_CLASSES.index(p.parent.name) for p in paths])
    return paths, labels


@pytest.fixture(scope="session")
def photo_paths(shared_data) -> list[Path]:
    return sorted(PHOTOS.glob("*.JPEG"))
