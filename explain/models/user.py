"""The user's own architecture: ``package.module:factory`` (or ``python:package.module:factory``),
an ``nn.Module``, or a callable that returns one. Factory arguments come from the spec
(``factory(depth=56)``) or ``model_args``; weights, labels and preprocessing from the caller."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable

import torch
from torch import nn

from ..checkpoints import load_weights
from ..errors import ExplainError, ModelLoadError
from ..preprocessing import IMAGENET_DEFAULT
from .caller_preprocess import as_preprocessor, override_preprocessor
from .dry_run import dry_run, logits_fn
from .source import DEFAULT, Loaded, Request, generic_labels


def is_module_scheme(scheme: str) -> bool:
    """Whether a spec's part before ``:`` names a Python module (``pkg.module`` or an
    importable top-level one)."""
    return bool(scheme) and ("." in scheme or importlib.util.find_spec(scheme) is not None)


def _import_factory(ref: str, sources_help: str) -> Callable[[], nn.Module]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"Cannot import {module_name!r} for the model {ref!r}: {exc}", hint=sources_help
        ) from exc
    try:
        factory = functools.reduce(getattr, attr.split("."), module)
    except AttributeError as exc:
        if "." not in module_name:  # "numpy:resnet50" reads like a source, not a factory
            raise ModelLoadError(
                f"Unknown model source {module_name!r} in {ref!r} (the installed package "
                f"{module_name!r} has no attribute {attr!r}).",
                hint=sources_help,
            ) from exc
        raise ModelLoadError(
            f"{module_name!r} has no attribute {attr!r}.",
            hint="give 'package.module:factory' with a callable that returns an nn.Module.",
        ) from exc
    return factory


def _build(obj: nn.Module | Callable[..., nn.Module], request: Request, title: str) -> nn.Module:
    factory_args = dict(request.model_args)
    if isinstance(obj, nn.Module):
        if factory_args:
            raise ModelLoadError(
                f"Factory arguments were given, but {title} is a model object, not a factory."
            )
        return obj
    try:
        model = obj(**factory_args)
    except ExplainError:
        raise
    except Exception as exc:  # the user's own code: any error type is possible
        raise ModelLoadError(
            f"Calling the factory {title!r} with {factory_args} failed: "
            f"{type(exc).__name__}: {exc}",
            hint="give the factory's required arguments in the spec, e.g. "
            "'pkg.module:factory(depth=56)', or as model_args={'depth': 56} "
            "(command line: --model-arg depth=56).",
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{title!r} returned {type(model).__name__}, not an nn.Module.")
    return model


def load(request: Request) -> Loaded:
    """Load the user's model (see :class:`~explain.models.source.Request`); the caller's
    ``preprocess`` is applied here (ImageNet's defaults when there is none)."""
    if isinstance(request.ref, str):
        title = request.ref
        model = _build(_import_factory(request.ref, request.sources_help), request, title)
    else:
        title = request.title
        model = _build(request.ref, request, title)
    weights, preprocess, labels = request.weights, request.preprocess, request.labels
    if weights is not None and weights != DEFAULT:
        load_weights(model, weights)
    if isinstance(preprocess, dict):
        preprocessor, notes = override_preprocessor(IMAGENET_DEFAULT, preprocess), []
    else:
        preprocessor, notes = as_preprocessor(preprocess)
    if labels is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
        out = dry_run(title, preprocessor, logits_fn(model.eval()), device)
        if out is None or out.ndim != 2:
            raise ModelLoadError(
                f"{title} does not return (N, classes) logits "
                f"(got {None if out is None else tuple(out.shape)}).",
                hint="the model's forward must return a (N, num_classes) tensor.",
            )
        labels = generic_labels(int(out.shape[-1]))
        notes.append("no labels given: classes are named by index.")
    return Loaded(model=model, labels=labels, preprocessor=preprocessor, notes=notes)
