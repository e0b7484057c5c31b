"""Transformer-native maps from attention: attention rollout, gradient-weighted attention
relevancy (Chefer et al.) and LeGrad.

All three read the attention probabilities ``A_l`` ``(heads, T, T)`` of every block ``l``
(captured by :mod:`explain.cams.attention_pass`, one forward pass) and give one value per patch
token, at the patch grid. How ``layers`` applies: the map at a layer uses every attention block
from the first one up to and including the block that holds the layer (the default layer, in the
last block, uses them all). The map is the class token's row (the first token; class,
distillation and register tokens are then dropped as keys); a model without prefix tokens uses
the mean over all rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..models import ModelHandle
from .attention_pass import AttentionPass, attention_blocks, run_attention_pass
from .base import CamMethod, CamRequest, RawMaps


def _patch_row(relevance: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """``(..., T, T)`` token-to-token relevance -> ``(..., h, w)``: the class token's row (the
    mean over rows without prefix tokens), patch keys only."""
    row = relevance[..., 0, :] if prefix > 0 else relevance.mean(dim=-2)
    return row[..., prefix:].reshape(*row.shape[:-1], *grid)


def rollout(probs: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout: ``R = prod_l (mean_h A_l + I) / 2``, later blocks on the left.

    Args:
        probs: per block ``(n, heads, T, T)``.

    Returns:
        ``(n, T, T)``.
    """
    eye = torch.eye(probs[0].shape[-1], dtype=probs[0].dtype, device=probs[0].device)
    relevance = eye.expand(probs[0].shape[0], -1, -1)
    for a in probs:
        relevance = ((a.mean(dim=1) + eye) / 2) @ relevance
    return relevance


def relevancy(probs: list[torch.Tensor], grads: list[torch.Tensor | None]) -> torch.Tensor:
    """Chefer et al.'s rule: ``R = I``; for each block ``R += E_h[(dS/dA ⊙ A)^+] R``.

    Args:
        probs: per block ``(n, heads, T, T)``.
        grads: per block ``(n, K, heads, T, T)`` (None: the score does not depend on it).

    Returns:
        ``(n, K, T, T)``.
    """
    n, _, t, _ = probs[0].shape
    k = next(g.shape[1] for g in grads if g is not None) if any(g is not None for g in grads) else 1
    relevance = torch.eye(t, dtype=probs[0].dtype, device=probs[0].device).expand(n, k, t, t)
    for a, g in zip(probs, grads, strict=True):
        if g is not None:
            relevance = relevance + torch.relu(g * a[:, None]).mean(dim=2) @ relevance
    return relevance


def legrad(grads: list[torch.Tensor | None]) -> torch.Tensor:
    """LeGrad: ``mean_l mean_{h, queries} ReLU(d s_l / d A_l)`` over the blocks.

    Args:
        grads: per block ``(n, K, heads, T, T)`` gradients of the block's own score.

    Returns:
        ``(n, K, T)``: one value per key token.
    """
    per_block = [torch.relu(g).mean(dim=(2, 3)) for g in grads if g is not None]
    return torch.stack(per_block).mean(dim=0)


def _note_common(request: CamRequest, p: AttentionPass) -> None:
    if request.eigen_smooth:
        request.note("eigen_smooth does not apply to attention methods; it was ignored.")
    for name, depth in p.depth.items():
        if depth < len(p.blocks):
            request.note(f"{name}: the map uses the first {depth} of {len(p.blocks)} blocks.")


@dataclass(frozen=True)
class AttentionMethod(CamMethod):
    """A method that reads the attention of transformer blocks over patch tokens."""

    def check(self, handle: ModelHandle) -> None:
        attention_blocks(handle)


@dataclass(frozen=True)
class AttentionRollout(AttentionMethod):
    """Attention rollout (class-agnostic: one map, repeated for every target)."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_attention_pass(request.handle, x, request.layers, targets)
        _note_common(request, p)
        request.note("attention rollout is class-agnostic: every target gets the same map.")
        maps = {}
        for info in request.layers:
            row = _patch_row(rollout(p.probs[: p.depth[info.name]]), p.prefix, p.grid)
            maps[info.name] = row[:, None].expand(-1, p.targets.k, -1, -1)
        return RawMaps(p.logits, p.targets, maps)


@dataclass(frozen=True)
class AttentionRelevancy(AttentionMethod):
    """Gradient-weighted attention relevancy (Chefer et al. 2021, generic rule)."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_attention_pass(request.handle, x, request.layers, targets, grads="score")
        _note_common(request, p)
        maps = {}
        for info in request.layers:
            depth = p.depth[info.name]
            relevance = relevancy(p.probs[:depth], p.grads[:depth])
            maps[info.name] = _patch_row(relevance, p.prefix, p.grid)
        return RawMaps(p.logits, p.targets, maps)


@dataclass(frozen=True)
class LeGrad(AttentionMethod):
    """LeGrad (Bousselham et al. 2024): each block scored by the model's head."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_attention_pass(request.handle, x, request.layers, targets, grads="layer")
        _note_common(request, p)
        maps = {}
        for info in request.layers:
            keys = legrad(p.grads[: p.depth[info.name]])  # (n, K, T)
            maps[info.name] = keys[..., p.prefix :].reshape(*keys.shape[:2], *p.grid)
        return RawMaps(p.logits, p.targets, maps)
