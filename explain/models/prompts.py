"""Classifiers whose classes are text prompts (CLIP and its kin): the image tower as a model whose
logits are the image's similarities to the prompts.

A :class:`PromptClassifier` registers only the image tower's modules (so layer paths are those
of the tower, e.g. ``vision_model.encoder.layers.11.layer_norm1`` or ``visual.layer4``) and keeps
the prompts' text embeddings in a buffer. :meth:`PromptClassifier.with_prompts` gives a new
classifier that shares the very same modules (nothing is reloaded or copied) with other prompts;
the text embeddings of every prompt ever asked for are cached by a :class:`PromptEncoder`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import PromptError

#: ``texts -> (P, D)`` float32 text embeddings (not normalised), without gradients.
EncodeTexts = Callable[[list[str]], torch.Tensor]


def check_prompts(prompts: str | Sequence[str] | None) -> list[str]:
    """Prompts as a list of distinct, non-empty strings.

    A single string is read as typed in a box: one prompt per line (``;`` also separates).

    Raises:
        PromptError: no prompt, an empty one, or one repeated (prompts are matched without
            regard to case, like class names).
    """
    if prompts is None:
        raise PromptError(
            "A CLIP model needs text prompts: its classes are the prompts you give.",
            hint="e.g. load_model('clip:openai/clip-vit-base-patch32', prompts=['a dog', "
            "'a cat']), or --prompts 'a dog;a cat' on the command line.",
        )
    if isinstance(prompts, str):
        prompts = prompts.replace(";", "\n").splitlines()
    if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise PromptError(f"Prompts must be strings, got {prompts!r}.")
    cleaned = [" ".join(p.split()) for p in prompts]
    cleaned = [p for p in cleaned if p]
    if not cleaned:
        raise PromptError(
            "The prompt list is empty.", hint="give at least one prompt, e.g. ['a dog', 'a cat']."
        )
    seen: dict[str, str] = {}
    for prompt in cleaned:
        if prompt.lower() in seen:
            raise PromptError(
                f"The prompt {prompt!r} is given twice.", hint="give each prompt once."
            )
        seen[prompt.lower()] = prompt
    return cleaned


class PromptEncoder:
    """Text embeddings of prompts, computed once per prompt and kept (thread-safe).

    Args:
        encode: ``texts -> (P, D)`` text embeddings, without gradients.
        text_tower: a module holding what ``encode`` runs (the whole model will do), moved with
            the classifier (see :meth:`PromptClassifier._apply`).
    """

    def __init__(self, encode: EncodeTexts, text_tower: nn.Module):
        self._encode = encode
        self.text_tower = text_tower
        self._cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(P, D)`` float32 embeddings on the CPU, in the order of ``prompts``."""
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
            if missing:
                with torch.inference_mode():
                    found = self._encode(missing).detach().float().cpu()
                self._cache.update(zip(missing, found, strict=True))
            return torch.stack([self._cache[p] for p in prompts])

    @property
    def cached(self) -> int:
        """How many prompts' embeddings are kept."""
        return len(self._cache)


class PromptClassifier(nn.Module):
    """An image tower as a classifier over text prompts: ``model(x) -> (N, P)`` logits, the
    image's zero-shot scores for each prompt, exactly as the CLIP model computes them
    (``logit_scale.exp() * cos(image, text)``, plus ``logit_bias`` where the model has one).

    Subclasses say how the tower embeds images (:meth:`image_features`) and how the model turns
    embeddings into logits (:meth:`similarity`).

    Args:
        clip: the whole model (kept, not registered: its text layers are no CAM layers); it
            has ``logit_scale`` (and maybe ``logit_bias``) parameters.
        children: the image tower's modules, registered under their own names.
        encoder: computes and caches the prompts' text embeddings.
        prompts: the classes (see :func:`check_prompts`).
    """

    def __init__(
        self,
        clip: nn.Module,
        children: dict[str, nn.Module],
        encoder: PromptEncoder,
        prompts: str | Sequence[str],
    ):
        super().__init__()
        self.__dict__["clip"] = clip  # not a registered child: its image modules are
        self.__dict__["encoder"] = encoder
        for name, child in children.items():
            self.add_module(name, child)
        self.register_parameter("logit_scale", clip.logit_scale)
        bias = getattr(clip, "logit_bias", None)
        if isinstance(bias, nn.Parameter):
            self.register_parameter("logit_bias", bias)
        else:
            self.logit_bias = None
        self.prompts: tuple[str, ...] = tuple(check_prompts(prompts))
        scale = clip.logit_scale  # where the model is, in its precision
        features = encoder(list(self.prompts)).to(device=scale.device, dtype=scale.dtype)
        self.register_buffer("text_features", self.normalize(features))

    # -- what a subclass says ---------------------------------------------------------------------
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, D)`` image embeddings (not normalised)."""
        raise NotImplementedError

    @staticmethod
    def normalize(features: torch.Tensor) -> torch.Tensor:
        """Unit length along the last axis."""
        return features / features.norm(p=2, dim=-1, keepdim=True)

    def similarity(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)`` -> logits ``(N, P)``."""
        logits = self.logit_scale.exp() * image @ self.text_features.T
        return logits if self.logit_bias is None else logits + self.logit_bias

    # -- the classifier ---------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.similarity(self.normalize(self.image_features(pixel_values)))

    def with_prompts(self, prompts: str | Sequence[str]) -> PromptClassifier:
        """The same model (the very same modules, nothing reloaded) with other prompts."""
        clone = type(self)(self.clip, dict(self.named_children()), self.encoder, prompts)
        clone.train(self.training)
        return clone

    def train(self, mode: bool = True) -> PromptClassifier:
        super().train(mode)
        self.encoder.text_tower.train(mode)
        return self

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> PromptClassifier:
        # ``.to(device)`` / ``.half()`` move the text tower too: new prompts are encoded there.
        super()._apply(fn, recurse)
        self.encoder.text_tower._apply(fn, recurse)
        return self


__all__ = ["PromptClassifier", "PromptEncoder", "check_prompts"]
