"""The ``torchvision:<name>`` source: every classifier in ``torchvision.models``, with its
weights metadata (labels, preprocessing) and pretrained weights from PyTorch's download site."""

from __future__ import annotations

import difflib
import functools
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..checkpoints import head_classes, load_weights, read_state_dict
from ..errors import ModelLoadError, NetworkError
from ..preprocessing import Preprocess
from . import network
from .source import DEFAULT, Loaded, Request, generic_labels, is_path

#: Family-specific default CAM layers where the generic rule would pick a classifier layer.
_DEFAULT_LAYERS = {"squeezenet": ("features",)}


@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    """Names of every torchvision image classifier (``list_models(module=torchvision.models)``)."""
    import torchvision.models as tvm

    return tuple(tvm.list_models(module=tvm))


def _download(weights_enum: Any, spec: str) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum: from the hub cache, else downloaded."""
    url = weights_enum.url
    cached = network.torch_hub_file(url)
    if not cached.exists() and not network.reachable(url):
        raise NetworkError(
            f"Cannot download the pretrained weights of {spec} ({weights_enum}): "
            f"{urlparse(url).hostname} is not reachable and {cached.name} is not in the cache "
            f"{cached.parent}.",
            hint=f"connect to the internet once, or copy {cached.name} into {cached.parent}, "
            "or pass weights='path/to/state_dict.pth', or weights=None for random weights, "
            "or use the offline model 'builtin:shapes'.",
        )
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            map_location="cpu",
            progress=True,
            check_hash=True,
            weights_only=True,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise NetworkError(
            f"Downloading the weights of {spec} from {url} failed: {exc}",
            hint="check the connection (or the file in the cache), or pass a local weights file.",
        ) from exc


def load(request: Request) -> Loaded:
    """Load ``torchvision:<name>`` (see :class:`~explain.models.source.Request`)."""
    import torchvision.models as tvm

    name, weights, spec = request.ref, request.weights, request.spec
    names = torchvision_classifiers()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        others = set(tvm.list_models()) - set(names)
        why = "is not an image classifier" if name in others else "is not a torchvision model"
        raise ModelLoadError(
            f"{name!r} {why}.",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "see torchvision.models.list_models(module=torchvision.models).",
        )
    enum = tvm.get_model_weights(name)
    default_weights = enum.DEFAULT
    notes: list[str] = []
    if weights == DEFAULT or (isinstance(weights, str) and weights in enum.__members__):
        chosen = default_weights if weights == DEFAULT else enum[weights]
        model = _build(name, chosen)
        load_weights(model, _download(chosen, spec))
        meta_weights = chosen
    elif weights is None:
        model = _build(name, default_weights)
        meta_weights = default_weights
        notes.append(
            "random weights (weights=None): predictions and maps are meaningless "
            "except for testing."
        )
    elif is_path(weights):
        state = read_state_dict(weights)
        model = _build(name, default_weights)
        classes = head_classes(model, state, _head_out_features(model))
        if classes is not None:
            model = _build(name, default_weights, num_classes=classes)
            notes.append(f"classifier head resized to the file's {classes} classes.")
        load_weights(model, state)
        meta_weights = default_weights
    else:
        raise ModelLoadError(
            f"weights={weights!r} is not understood for {spec}.",
            hint=f"use weights='DEFAULT', None, a file path, or one of {list(enum.__members__)}.",
        )
    num_outputs = _head_out_features(model)
    labels = request.labels
    if labels is None:
        categories = meta_weights.meta.get("categories")
        labels = (
            categories
            if categories and len(categories) == num_outputs
            else generic_labels(num_outputs)
        )
    return Loaded(
        model=model,
        labels=labels,
        preprocessor=Preprocess.from_torchvision(meta_weights.transforms()),
        notes=notes,
        default_layers=_DEFAULT_LAYERS.get(name.rstrip("0123456789_").rstrip("_"), ()),
    )


def _build(name: str, meta_weights: Any, **kwargs: Any) -> nn.Module:
    """The architecture with random weights, shaped like ``meta_weights`` (e.g. the input size
    that ViT-H/14's only weights need, which torchvision sets only when it downloads them)."""
    import torchvision.models as tvm

    if name.startswith("vit_") and "min_size" in meta_weights.meta:
        kwargs.setdefault("image_size", int(meta_weights.meta["min_size"][0]))
    return tvm.get_model(name, weights=None, **kwargs)


def _head_out_features(model: nn.Module) -> int:
    linear = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    last = linear[-1] if linear else None
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)
