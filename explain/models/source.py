"""What a model source is: a spec prefix, a loader, its help text and dashboard label.

A loader takes a :class:`Request` (the part of the spec after the prefix and the caller's
options) and returns a :class:`Loaded` (the model and what explaining it needs);
:func:`~explain.models.load.load_model` wraps that in a
:class:`~explain.models.handle.ModelHandle`. Sources are listed in
:mod:`explain.models.registry`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..preprocessing import Preprocessor

#: ``weights=DEFAULT`` asks for the source's own pretrained weights (downloaded when needed).
DEFAULT = "DEFAULT"


@dataclass(frozen=True)
class Request:
    """What the caller asked a source for.

    Attributes:
        ref: the spec after ``prefix:`` (factory arguments split off into ``model_args``), the
            whole spec for sources that claim a scheme, or an ``nn.Module`` / factory object.
        spec: the spec as the handle records it (factory arguments included).
        title: how messages name the model.
        weights: ``DEFAULT``, ``None``, a file path, or a source-specific weights name.
        labels: class names given by the caller (``None``: the source's own).
        preprocess: the caller's preprocessing (``None``: the source's own).
        trust_remote_code: let Hugging Face run a repository's own code.
        model_args: keyword arguments for building the model.
        sources_help: the hint that lists every source (for "is this a source?" errors).
        prompts: the text prompts that are the classes of a CLIP model (checked by the source).
    """

    ref: Any
    spec: str
    title: str
    weights: Any = DEFAULT
    labels: Sequence[str] | None = None
    preprocess: Any = None
    trust_remote_code: bool = False
    model_args: Mapping[str, Any] = field(default_factory=dict)
    sources_help: str = ""
    prompts: Any = None


@dataclass
class Loaded:
    """What a source gives back.

    Attributes:
        model: the classifier; ``model(x)`` returns logits ``(N, num_classes)``.
        labels: class names, index -> name.
        preprocessor: images -> the model's input.
        notes: things worth telling a user about how it was loaded.
        default_layers: family-specific default CAM layers, tried in order before the generic
            rule of :func:`explain.layers.probe_model`.
    """

    model: nn.Module
    labels: Sequence[str]
    preprocessor: Preprocessor
    notes: list[str] = field(default_factory=list)
    default_layers: tuple[str, ...] = ()


Loader = Callable[[Request], Loaded]


@dataclass(frozen=True)
class Source:
    """One model source: how a spec names it and how to load from it.

    Attributes:
        name: recorded as ``ModelHandle.source`` (``"torchvision"``, ``"user"``, ...).
        prefix: the spec prefix before ``:``.
        label: the name a user interface shows.
        help: how to write a spec for it, e.g. ``"'timm:<name>' (e.g. timm:resnet50)"``.
        load: the loader.
        claims: for sources without a fixed prefix, whether a spec's scheme is theirs (e.g. an
            importable module for a user's factory); such a source gets the whole spec as ref.
        takes_objects: loads an ``nn.Module`` or a factory passed instead of a spec.
        takes_model_args: accepts keyword arguments for building the model.
        applies_preprocess: the loader applies the caller's ``preprocess`` itself (it needs
            it to try the model); otherwise it is applied over the source's own afterwards.
        takes_prompts: the classes are text prompts (CLIP): ``prompts`` instead of ``labels``.
    """

    name: str
    prefix: str
    label: str
    help: str
    load: Loader
    claims: Callable[[str], bool] | None = None
    takes_objects: bool = False
    takes_model_args: bool = False
    applies_preprocess: bool = False
    takes_prompts: bool = False


def is_path(weights: Any) -> bool:
    """Whether ``weights`` names a file (not ``DEFAULT`` nor a weights name)."""
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str)
        and weights != DEFAULT
        and (os.sep in weights or "." in Path(weights).name or Path(weights).exists())
    )


def generic_labels(n: int) -> list[str]:
    """``["class 0", "class 1", ...]``: names for a model whose classes are not known."""
    return [f"class {i}" for i in range(n)]
