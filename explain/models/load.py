"""``load_model``: a spec (or a model object) -> a :class:`~explain.models.handle.ModelHandle`,
through the source table of :mod:`explain.models.registry`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError, PromptError
from ..factory_spec import format_factory_args, split_factory_args
from .caller_preprocess import override_preprocessor
from .dry_run import check_label_count
from .handle import ModelHandle
from .prompts import check_prompts
from .recipe import ModelRecipe
from .registry import (
    find_source,
    model_args_help,
    object_source,
    prompt_sources_help,
    spec_help,
)
from .source import DEFAULT, Request, Source


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"Unknown device {device!r}.", hint="use 'cpu' or 'cuda'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "device='cuda' was asked for but no CUDA GPU is available.",
            hint="use device='cpu' (or leave device unset).",
        )
    return dev


def _parse_spec(
    spec: str, model_args: Mapping[str, Any] | None
) -> tuple[Source, str, str, dict[str, Any]]:
    """``"prefix:ref(args)"`` -> (source, ref without arguments, the spec as recorded, the
    arguments with ``model_args`` over those in the spec)."""
    text = spec.strip()
    scheme, sep, ref = text.partition(":")
    if not sep or not ref:
        raise ModelLoadError(f"Model spec {spec!r} names no source.", hint=spec_help())
    source = find_source(scheme)
    if source is None:
        raise ModelLoadError(f"Unknown model source {scheme!r} in {spec!r}.", hint=spec_help())
    if not source.takes_model_args:
        if model_args:
            raise ModelLoadError(
                f"Factory arguments {dict(model_args)} were given for {text!r}.",
                hint=model_args_help(),
            )
        return source, ref.strip(), text, {}
    by_prefix = source.prefix == scheme.lower()
    # A source that claims a scheme (a user's module) gets the whole spec.
    ref, args = split_factory_args(ref if by_prefix else text)
    args.update(model_args or {})
    recorded = format_factory_args(f"{scheme}:{ref}" if by_prefix else ref, args)
    return source, ref, recorded, args


def load_model(
    spec: str | nn.Module | Callable[[], nn.Module],
    weights: Any = DEFAULT,
    device: str | torch.device | None = None,
    *,
    labels: Sequence[str] | None = None,
    preprocess: Any = None,
    trust_remote_code: bool = False,
    name: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    prompts: str | Sequence[str] | None = None,
) -> ModelHandle:
    """Load a classifier and wrap it in a :class:`ModelHandle`.

    Args:
        spec: ``"torchvision:<name>"``, ``"timm:<name>"``, ``"hf:<hub id or folder>"``,
            ``"clip:<hub id or folder>"``, ``"open_clip:<name>[.<tag>]"`` (with ``prompts``),
            ``"builtin:<name>"``, ``"package.module:factory"`` (with keyword arguments as Python
            literals: ``"package.module:factory(depth=56)"``, also for timm:
            ``"timm:vit_tiny_patch16_224(img_size=96)"``), an ``nn.Module`` or a factory
            callable. :func:`explain.models.registry.spec_help` lists the sources.
        weights: ``"DEFAULT"`` (the source's pretrained weights, downloaded on first use),
            ``None`` (random initialisation), a path to a state-dict / checkpoint /
            safetensors file, or a torchvision weights name such as ``"IMAGENET1K_V2"``.
        device: ``None``/``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        labels: class names (overrides those of the source).
        preprocess: an :class:`~explain.preprocessing.Preprocess`, a callable ``PIL image ->
            (3, H, W) tensor``, or a dict of some of ``input_size``, ``resize``,
            ``crop_fraction``, ``mean``, ``std``, ``interpolation`` (the rest stay the
            source's own, or ImageNet's defaults for user models). Overrides the source's own.
        trust_remote_code: let Hugging Face run the repository's own code (off by default).
        name: display name (default: from the spec).
        model_args: keyword arguments for a user factory or ``timm.create_model`` (over
            those written in the spec).
        prompts: the classes of a CLIP model (``clip:`` and ``open_clip:`` specs): text
            prompts, a list or one string with one prompt per line (or ``;``-separated);
            change them later with :meth:`ModelHandle.with_prompts` / ``set_prompts``.

    Raises:
        ModelLoadError: (or its subclasses NetworkError, WeightsError) with what to do instead.
        PromptError: prompts missing, empty or repeated for a CLIP model, or given to another.
    """
    dev = resolve_device(device)
    if isinstance(spec, nn.Module) or (callable(spec) and not isinstance(spec, str)):
        source = object_source()
        title = name or (
            type(spec).__name__
            if isinstance(spec, nn.Module)
            else getattr(spec, "__name__", "model")
        )
        ref, args = spec, dict(model_args or {})
        recorded = f"{source.name}:{format_factory_args(title, args)}"
    elif isinstance(spec, str):
        source, ref, recorded, args = _parse_spec(spec, model_args)
        title = name or recorded
    else:
        raise ModelLoadError(
            f"A model spec must be a string or an nn.Module, got {type(spec).__name__}.",
            hint=spec_help(),
        )
    if source.takes_prompts and labels is not None:
        raise PromptError(
            f"The classes of {title} are its text prompts; labels do not apply.",
            hint="pass prompts=['a dog', 'a cat'] instead of labels.",
        )
    if prompts is not None and not source.takes_prompts:
        raise PromptError(f"{title} takes no prompts.", hint=prompt_sources_help())
    if source.takes_prompts:
        prompts = check_prompts(prompts)  # before a download, not after
    loaded = source.load(
        Request(
            ref=ref,
            spec=recorded,
            title=title,
            weights=weights,
            labels=labels,
            preprocess=preprocess,
            trust_remote_code=trust_remote_code,
            model_args=args,
            sources_help=spec_help(),
            prompts=prompts,
        )
    )
    if labels is not None:
        loaded.labels = labels
    if preprocess is not None and not source.applies_preprocess:
        loaded.preprocessor = override_preprocessor(loaded.preprocessor, preprocess)
        loaded.notes.append(f"preprocessing given by the caller: {loaded.preprocessor.describe()}.")
    model = loaded.model.to(dev).eval()
    labels_out = list(loaded.labels)
    if labels is not None:
        check_label_count(model, loaded.preprocessor, labels_out, title, dev)
    handle = ModelHandle(
        model,
        name=title,
        labels=labels_out,
        preprocessor=loaded.preprocessor,
        spec=recorded,
        source=source.name,
        device=dev,
        default_layers=loaded.default_layers,
        notes=loaded.notes,
    )
    if isinstance(spec, str):  # workers of a distributed run load the model again from this
        handle.recipe = ModelRecipe.of(
            spec, weights, labels, preprocess, trust_remote_code, name, model_args, handle.prompts
        )
    return handle
