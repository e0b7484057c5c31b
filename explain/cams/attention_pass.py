"""The pass the attention methods share: one forward pass that keeps every transformer block's
attention probabilities (through :class:`~explain.cams.attention.AttentionCapture`) and, when
asked, one backward pass for their gradients.

Forward pre-hooks on the blocks (through :class:`~explain.hooks.Hooks`, alive only inside the
call, under the model's lock) tell the capture which block is running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..errors import AttentionError, ExplainError, LayerError
from ..hooks import Hooks, first_tensor
from ..layers import LayerInfo
from ..models import ModelHandle
from ..targets import ResolvedTargets, resolve_targets
from .attention import AttentionCapture
from .forward import batched_grads


@dataclass
class AttentionPass:
    """What one pass over ``n`` images gives the attention methods.

    Attributes:
        logits: ``(n, classes)`` float32.
        targets: the targets resolved on these logits (``K`` per image).
        blocks: the attention blocks, in depth order.
        probs: per block ``(n, heads, T, T)`` float32 attention probabilities.
        grads: per block ``(n, K, heads, T, T)`` gradients of the scores with respect to the
            probabilities (empty when none were asked for; None where a score does not depend
            on the block).
        prefix: tokens before the patch grid (class, distillation, register tokens).
        grid: ``(h, w)`` of the patch tokens.
        depth: requested layer -> how many blocks (from the first) it covers.
    """

    logits: torch.Tensor
    targets: ResolvedTargets
    blocks: list[str]
    probs: list[torch.Tensor]
    grads: list[torch.Tensor | None] = field(default_factory=list)
    prefix: int = 0
    grid: tuple[int, int] = (1, 1)
    depth: dict[str, int] = field(default_factory=dict)


def candidate_blocks(handle: ModelHandle) -> list[LayerInfo]:
    """The model's blocks (transformer layers) whose output is a token grid, in depth order."""
    infos = [handle.layer(name) for name in handle.block_layers(limit=10_000)]
    return [info for info in infos if info.kind == "tokens" and info.grid is not None]


def windowed_attention(model: nn.Module) -> str | None:
    """The class name of the first module that attends within local windows (Swin's
    ``WindowAttention`` / ``ShiftedWindowAttention``, blocks with a ``window_size``), if any."""
    for module in model.modules():
        name = type(module).__name__
        if "window" in name.lower() or (
            hasattr(module, "window_size") and "attention" in name.lower()
        ):
            return name
    return None


def attention_blocks(handle: ModelHandle) -> list[LayerInfo]:
    """:func:`candidate_blocks`, or an error that says why there are none.

    Raises:
        AttentionError: windowed attention (Swin), or no transformer blocks with patch tokens.
    """
    blocks = candidate_blocks(handle)
    if blocks:
        return blocks
    windowed = windowed_attention(handle.model)
    if windowed is not None:
        raise AttentionError(
            f"{handle.name} attends within local windows ({windowed}, as Swin does), not across "
            "all patch tokens, so attention rollout, Chefer relevancy and LeGrad, which follow "
            "attention between every pair of patches through the network, do not apply.",
            hint=f"use a CAM method such as method='gradcam' (at {handle.default_layer!r}).",
        )
    raise AttentionError(
        f"{handle.name} has no transformer blocks with patch tokens, so attention methods "
        "do not apply.",
        hint="use a CAM method such as method='gradcam'.",
    )


def _depth(layer: LayerInfo, blocks: Sequence[LayerInfo]) -> int:
    """How many of ``blocks`` run up to and including the block that holds ``layer``."""
    for i, block in enumerate(blocks):
        if layer.name == block.name or layer.name.startswith(block.name + "."):
            return i + 1
    return sum(1 for block in blocks if block.order <= layer.order)


def _detach_first(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The call's first tensor argument as a new leaf that requires grad; autograd on."""
    torch.set_grad_enabled(True)
    for i, item in enumerate(args):
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return (*args[:i], item.detach().requires_grad_(True), *args[i + 1 :]), kwargs
    for key, item in kwargs.items():
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return args, {**kwargs, key: item.detach().requires_grad_(True)}
    return args, kwargs


def _as_heads(probs: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, heads, T, T)`` from ``(n, heads, T, T)`` or ``(n * heads, T, T)``."""
    if probs.dim() == 3:
        return probs.reshape(n, probs.shape[0] // n, *probs.shape[-2:])
    return probs


def _block_probs(
    capture: AttentionCapture, blocks: Sequence[LayerInfo], n: int
) -> tuple[list[str], list[torch.Tensor]]:
    """The blocks that computed one self-attention over their ``T`` tokens, and its
    probabilities ``(n, heads, T, T)``."""
    found, probs = [], []
    for block in blocks:
        t = block.shape[0]
        kept = [
            _as_heads(p, n)
            for p in capture.probs.get(block.name, [])
            if p.shape[-2:] == (t, t) and p.numel() % (n * t * t) == 0
        ]
        if len(kept) > 1:
            raise AttentionError(
                f"Block {block.name} computed {len(kept)} self-attentions; the attention "
                "methods need one per block."
            )
        if kept:
            found.append(block.name)
            probs.append(kept[0])
    return found, probs


def _layer_depths(layers: Sequence[LayerInfo], blocks: Sequence[LayerInfo]) -> dict[str, int]:
    """Requested layer -> how many attention blocks its map uses (a clear error for a layer
    before the first one)."""
    depth = {}
    for layer in layers:
        depth[layer.name] = _depth(layer, blocks)
        if depth[layer.name] == 0:
            raise LayerError(
                f"Layer {layer.name} comes before the first attention block ({blocks[0].name}).",
                hint=f"choose {blocks[0].name} or a later layer, e.g. {blocks[-1].name}.",
            )
    return depth


def run_attention_pass(
    handle: ModelHandle,
    x: torch.Tensor,
    layers: Sequence[LayerInfo],
    targets: Any,
    *,
    grads: Literal["score", "layer"] | None = None,
) -> AttentionPass:
    """One forward pass that keeps every block's attention probabilities.

    Args:
        x: ``(n, 3, H, W)`` model input.
        layers: the requested layers; each covers the blocks up to and including its own.
        targets: any accepted targets form (resolved on this pass's logits).
        grads: ``None`` (probabilities only), ``"score"``: gradients of the target scores
            (one backward for all blocks and targets), or ``"layer"``: for each block ``l``
            the gradient of its own layer score ``s_l = head(mean over tokens of block l's
            output)`` with respect to its own probabilities (LeGrad). For ``"layer"`` each
            block's input is made a new leaf (so ``s_l`` depends on block ``l``'s attention
            only through block ``l``) and the last block's output is followed by one copy of
            every block's mean token per block, batched, so the model's own head (final norm,
            pooling and classifier) scores all blocks in the same pass.

    Raises:
        AttentionError: the model has no global self-attention over its patch tokens.
        LayerError: a layer that comes before the first attention block.
    """
    blocks = attention_blocks(handle)
    names = [b.name for b in blocks]
    n = int(x.shape[0])
    capture = AttentionCapture()
    outputs: dict[str, torch.Tensor] = {}
    hooks = Hooks(handle.model)

    def enter(name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        capture.block = name
        if grads == "layer" or (grads == "score" and name == names[0]):
            return _detach_first(args, kwargs)
        return None

    def leave(name: str, output: torch.Tensor) -> None:
        capture.block = None
        outputs[name] = output

    hooks.before(names, enter).watch(names, leave)
    if grads == "layer":

        def score_every_block(last: torch.Tensor) -> torch.Tensor:
            if any(
                outputs.get(name) is None or outputs[name].shape != last.shape for name in names
            ):
                raise AttentionError(
                    f"The blocks of {handle.name} do not all give tokens of one shape, so "
                    "LeGrad cannot score them with the model's head.",
                    hint="use method='chefer' or method='rollout' for this model.",
                )
            means = [outputs[name].mean(dim=1, keepdim=True).expand_as(last) for name in names]
            return torch.cat([last, *means])

        hooks.replace(names[-1], score_every_block)
    mode: Any = torch.inference_mode() if grads is None else torch.no_grad()
    with handle.lock, hooks, mode:
        with capture:
            out = first_tensor(handle.model(x.to(handle.device)))
        if out is None or out.ndim != 2:
            raise ExplainError(f"{handle.name} did not return (N, classes) logits.")
        logits = out[:n]
        resolved = resolve_targets(targets, logits.detach(), handle.labels, handle.class_index)
        found, probs = _block_probs(capture, blocks, n)
        if not found:
            why = f" ({capture.skipped[0]} is not supported)" if capture.skipped else ""
            raise AttentionError(
                f"No self-attention over the patch tokens was found in the blocks of "
                f"{handle.name}{why}; windowed or convolutional blocks do not qualify.",
                hint="use a CAM method such as method='gradcam'.",
            )
        info = {b.name: b for b in blocks}
        depth = _layer_depths(layers, [info[name] for name in found])
        used = max(depth.values())  # blocks after the deepest requested layer need no gradient
        raw: list[torch.Tensor | None] = []
        if grads == "score":
            with torch.enable_grad():
                raw = batched_grads(resolved.score_fn(logits).float(), probs[:used])
        elif grads == "layer":
            if out.shape[0] != n * (1 + len(names)):
                raise AttentionError(
                    f"LeGrad could not score each block through the head of {handle.name}.",
                    hint="use method='chefer' or method='rollout' for this model.",
                )
            with torch.enable_grad():
                per_block = out[n:].reshape(len(names), n, -1)
                scores = sum(
                    resolved.score_fn(per_block[names.index(name)]).float() for name in found[:used]
                )
                raw = batched_grads(scores, probs[:used])
    first = info[found[0]]
    return AttentionPass(
        logits.detach().float(),
        resolved,
        found,
        [p.detach().float() for p in probs],
        [None if g is None else g.detach().float().transpose(0, 1) for g in raw],
        prefix=first.prefix_tokens,
        grid=first.grid or (1, 1),
        depth=depth,
    )


__all__ = [
    "AttentionPass",
    "attention_blocks",
    "candidate_blocks",
    "run_attention_pass",
    "windowed_attention",
]
