"""The model sources, in one table: each one's spec prefix, loader, help text and label.

A new source is one module with a ``load(request) -> Loaded`` function plus one entry here;
:func:`~explain.models.load.load_model` finds it by its prefix.
"""

from __future__ import annotations

from . import builtin, clip, huggingface, openclip, timm, torchvision, user
from .source import Source

#: Every source, in the order a user interface lists them.
SOURCES: tuple[Source, ...] = (
    Source(
        name="builtin",
        prefix="builtin",
        label="Built-in",
        help="'builtin:efficientnet-lite0' (ImageNet, offline), 'builtin:shapes'",
        load=builtin.load,
    ),
    Source(
        name="torchvision",
        prefix="torchvision",
        label="torchvision",
        help="'torchvision:<name>' (e.g. torchvision:resnet50)",
        load=torchvision.load,
    ),
    Source(
        name="timm",
        prefix="timm",
        label="timm",
        help="'timm:<name>' (e.g. timm:convnext_tiny, timm:vit_small_patch16_224.augreg_in1k)",
        load=timm.load,
        takes_model_args=True,
    ),
    Source(
        name="hf",
        prefix="hf",
        label="Hugging Face",
        help="'hf:<hub id or local folder>' (e.g. hf:microsoft/resnet-50)",
        load=huggingface.load,
    ),
    Source(
        name="clip",
        prefix="clip",
        label="CLIP (Hugging Face)",
        help="'clip:<hub id or folder>' with prompts (e.g. clip:openai/clip-vit-base-patch32)",
        load=clip.load,
        takes_prompts=True,
    ),
    Source(
        name="open_clip",
        prefix="open_clip",
        label="CLIP (open_clip)",
        help="'open_clip:<name>[.<tag>]' with prompts (e.g. open_clip:ViT-B-32, open_clip:RN50)",
        load=openclip.load,
        takes_prompts=True,
    ),
    Source(
        name="user",
        prefix="python",
        label="Your own architecture",
        help="'package.module:factory' for your own architecture",
        load=user.load,
        claims=user.is_module_scheme,
        takes_objects=True,
        takes_model_args=True,
        applies_preprocess=True,
    ),
)


def find_source(scheme: str) -> Source | None:
    """The source of a spec whose part before ``:`` is ``scheme``: by prefix first, then the
    first that claims it; ``None`` when there is none."""
    by_prefix = next((s for s in SOURCES if s.prefix == scheme.lower()), None)
    if by_prefix is not None:
        return by_prefix
    return next((s for s in SOURCES if s.claims is not None and s.claims(scheme)), None)


def object_source() -> Source:
    """The source that loads an ``nn.Module`` or a factory passed instead of a spec."""
    return next(s for s in SOURCES if s.takes_objects)


def spec_help() -> str:
    """``"use 'builtin:...', ..., or 'package.module:factory' ..."``: every source's help."""
    helps = [s.help for s in SOURCES]
    return f"use {', '.join(helps[:-1])}, or {helps[-1]}."


def prompt_sources_help() -> str:
    """Which sources take text prompts."""
    helps = [s.help for s in SOURCES if s.takes_prompts]
    return f"prompts apply only to {' and '.join(helps)}."


def model_args_help() -> str:
    """Which sources take factory arguments."""
    helps = [s.help for s in SOURCES if s.takes_model_args]
    return f"model arguments apply only to {' and '.join(helps)}."
