"""The ``clip:<hub id or folder>`` source: Hugging Face CLIP models (``CLIPModel`` and others
with the same API: ``get_image_features``, ``get_text_features``, ``logit_scale``), from the hub
or a folder written by ``save_pretrained`` (with the tokenizer and image processor saved too).

The classes are text prompts (``load_model("clip:openai/clip-vit-base-patch32",
prompts=["a dog", "a cat"])``); the logits are the model's own ``logits_per_image``: the scaled
cosine similarities of the image and each prompt. CAM layers are those of the image tower
(``vision_model.encoder.layers.11.layer_norm1`` for a ViT-B/32).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from ..preprocessing import HFPreprocess, Preprocess, Preprocessor
from .huggingface import _hf_error, _processor_size, hub_fetcher, hub_model, hub_source
from .prompts import PromptClassifier, PromptEncoder
from .source import Loaded, Request

#: CLIP's own normalisation (OpenAI), used when a folder has no image processor.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _pooled(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output with ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFPromptClassifier(PromptClassifier):
    """A Hugging Face CLIP model's image tower over prompts (``logits_per_image``)."""

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _pooled(self.clip.get_image_features(pixel_values=pixel_values))

    @staticmethod
    def normalize(features: torch.Tensor) -> torch.Tensor:
        # As CLIPModel.forward does (sum of squares to the power 0.5), to the last bit.
        return features / features.pow(2).sum(dim=-1, keepdim=True).pow(0.5)

    def similarity(self, image: torch.Tensor) -> torch.Tensor:
        # logits_per_text first, then transposed: CLIPModel's order of operations.
        logits = self.text_features @ image.t() * self.logit_scale.exp()
        if self.logit_bias is not None:
            logits = logits + self.logit_bias
        return logits.t()


def image_children(clip: nn.Module) -> dict[str, nn.Module]:
    """The model's image-side modules: every child but the text tower's."""
    return {name: child for name, child in clip.named_children() if not name.startswith("text")}


def last_block_norm(model: nn.Module) -> str | None:
    """``<blocks>.<last>.<first norm>``: the usual Grad-CAM layer of a vision transformer (the
    last block's first normalisation, where patch tokens still reach the class token), in the
    longest ``ModuleList`` of blocks that hold a ``LayerNorm``; ``None`` for a CNN."""
    best: tuple[int, str] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        last = str(len(module) - 1)
        norm = next((n for n, m in module[-1].named_modules() if isinstance(m, nn.LayerNorm)), None)
        if norm is not None and (best is None or len(module) > best[0]):
            best = (len(module), f"{name}.{last}.{norm}" if name else f"{last}.{norm}")
    return None if best is None else best[1]


def _check_api(clip: nn.Module, ref: str) -> None:
    needed = ("get_image_features", "get_text_features", "logit_scale")
    missing = [name for name in needed if not hasattr(clip, name)]
    if missing:
        raise ModelLoadError(
            f"{ref!r} is not a CLIP-style model ({type(clip).__name__} has no "
            f"{', '.join(missing)}).",
            hint="give a CLIP model (e.g. clip:openai/clip-vit-base-patch32); load image "
            "classifiers with 'hf:<id>'.",
        )


def _has_vocabulary(tokenizer: Any) -> bool:
    """Whether words become tokens of their own: transformers builds an empty tokenizer (special
    tokens only) for a folder without tokenizer files."""
    ids = tokenizer("a photo of a dog", add_special_tokens=False)["input_ids"]
    unknown = getattr(tokenizer, "unk_token_id", None)
    return bool(ids) and any(i != unknown for i in ids)


def text_encoder(clip: nn.Module, tokenizer: Any) -> PromptEncoder:
    """Prompts -> ``get_text_features`` of their tokens (padded to the model's text length)."""
    config = getattr(getattr(clip, "config", None), "text_config", None)
    length = int(getattr(config, "max_position_embeddings", 0) or 77)

    def encode(texts: list[str]) -> torch.Tensor:
        tokens = tokenizer(
            texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
        )
        device = clip.logit_scale.device
        inputs = {k: tokens[k].to(device) for k in ("input_ids", "attention_mask") if k in tokens}
        return _pooled(clip.get_text_features(**inputs))

    return PromptEncoder(encode, clip)


def load(request: Request) -> Loaded:
    """Load ``clip:<hub id or folder>`` (see :class:`~explain.models.source.Request`)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

    ref = request.ref
    source, is_local = hub_source(ref)
    fetch = hub_fetcher(ref, is_local, request.trust_remote_code, prefix="clip")
    try:
        config = fetch(AutoConfig.from_pretrained, source)
    except (OSError, ValueError) as exc:
        raise _hf_error(ref, exc, "clip") from exc
    notes: list[str] = []
    clip = hub_model(AutoModel, request, source, config, fetch, notes, prefix="clip")
    _check_api(clip, ref)
    clip.eval()
    try:
        tokenizer = fetch(AutoTokenizer.from_pretrained, source)
        problem = None if _has_vocabulary(tokenizer) else "its vocabulary is empty"
    except (OSError, ValueError, ModelLoadError) as exc:
        tokenizer, problem = None, str(exc)
    if problem is not None:
        raise ModelLoadError(
            f"{ref!r} has no tokenizer, so prompts cannot be encoded ({problem}).",
            hint="save the tokenizer (or the whole CLIPProcessor) with save_pretrained into "
            "the model's folder.",
        )
    vision = getattr(config, "vision_config", None)
    size = int(getattr(vision, "image_size", 224) or 224)
    try:
        processor = fetch(AutoImageProcessor.from_pretrained, source)
        preprocessor: Preprocessor = HFPreprocess(
            processor, input_size=_processor_size(processor, (size, size))
        )
    except (OSError, ValueError, ModelLoadError):
        preprocessor = Preprocess(
            input_size=(size, size),
            resize=size,
            mean=CLIP_MEAN,
            std=CLIP_STD,
            interpolation="bicubic",
        )
        notes.append(
            "no image processor found: CLIP's own preprocessing (shorter side to "
            f"{size}, centre crop, bicubic, CLIP mean / std)."
        )
    model = HFPromptClassifier(
        clip, image_children(clip), text_encoder(clip, tokenizer), request.prompts
    )
    default = last_block_norm(model)
    return Loaded(
        model=model,
        labels=list(model.prompts),
        preprocessor=preprocessor,
        notes=notes,
        default_layers=(default,) if default else (),
    )
