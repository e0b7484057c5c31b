"""Attention probabilities of a vision transformer, captured during one call.

The model is never edited. A thread-local ``TorchFunctionMode``, active during the call only,
computes every fused attention explicitly and keeps its probabilities ``softmax(QK^T / sqrt(d))``:

- ``F.scaled_dot_product_attention`` (timm's fused ``Attention``, Hugging Face's ``sdpa``
  implementation) is replaced by the same formula as PyTorch's reference (math) kernel;
- ``F.multi_head_attention_forward`` (``nn.MultiheadAttention``, e.g. torchvision's ViT, which
  asks for no weights and so would run fused) is computed from the module's own projections
  through the same explicit attention;
- an explicit ``softmax`` over the keys (timm with ``fused_attn=False``, Hugging Face's
  ``eager`` implementation) is kept as it is.

The probabilities are the very tensors the output is computed from, so gradients with respect
to them are those of the model. Hugging Face's ``output_attentions`` is not used: with the
default ``sdpa`` implementation it returns no weights, and the mode covers both implementations.
The pass of the attention methods (:mod:`explain.cams.attention_pass`) tells the mode which block
is running. The explicit path also gives fused attention the second derivatives that PyTorch's
fused kernels lack (Shapley-CAM on transformers).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_SOFTMAXES = {F.softmax, torch.softmax, torch.Tensor.softmax}
_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


class UnsupportedAttention(Exception):
    """An attention layout the explicit path does not compute (the module then runs as usual)."""


# -- explicit attention --------------------------------------------------------------------------
def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    dropout_p: float,
    scale: float | None,
    keep: Callable[[torch.Tensor], None],
) -> torch.Tensor:
    """``softmax(q k^T * scale + bias) v`` as PyTorch's reference kernel computes it (``q`` and
    ``k`` each scaled by ``sqrt(scale)``; fully masked rows give zeros); ``keep`` receives the
    probabilities ``(..., L, S)`` before dropout."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    root = math.sqrt(scale)
    scores = (q * root) @ (k * root).transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    if bias is not None:
        probs = probs.masked_fill(scores.isneginf().all(dim=-1, keepdim=True), 0.0)
    keep(probs)
    if dropout_p > 0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return probs @ v


def _bias(mask: torch.Tensor | None, allowed: bool, dtype: torch.dtype) -> torch.Tensor | None:
    """An additive float mask from a boolean one (``allowed``: True marks keys that take part,
    as in SDPA; otherwise True marks keys left out, as in ``nn.MultiheadAttention``)."""
    if mask is None or mask.is_floating_point():
        return mask
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~mask if allowed else mask, float("-inf"))


def explicit_sdpa(
    keep: Callable[[torch.Tensor], None],
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with its probabilities handed to ``keep``."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(repeat, dim=-3)
        value = value.repeat_interleave(repeat, dim=-3)
    bias = _bias(attn_mask, allowed=True, dtype=query.dtype)
    if is_causal:
        length, source = query.shape[-2], key.shape[-2]
        causal = torch.ones(length, source, dtype=torch.bool, device=query.device).tril()
        causal_bias = _bias(causal, allowed=True, dtype=query.dtype)
        bias = causal_bias if bias is None else bias + causal_bias
    return attend(query, key, value, bias, dropout_p, scale, keep)


def explicit_mha(keep: Callable[[torch.Tensor], None], *args: Any, **kwargs: Any) -> Any:
    """``F.multi_head_attention_forward`` through :func:`attend` (inputs ``(L, N, E)`` or
    ``(L, E)``).

    Raises:
        UnsupportedAttention: key/value biases, a zero attention token or static keys.
    """
    a = _MHA_SIGNATURE.bind(*args, **kwargs)
    a.apply_defaults()
    p = a.arguments
    if p["bias_k"] is not None or p["bias_v"] is not None or p["add_zero_attn"]:
        raise UnsupportedAttention(
            "an nn.MultiheadAttention with key/value biases or a zero attention token"
        )
    if p["static_k"] is not None or p["static_v"] is not None:
        raise UnsupportedAttention("an nn.MultiheadAttention with static keys")
    query, key, value = p["query"], p["key"], p["value"]
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    length, batch, embed = query.shape
    heads = p["num_heads"]
    head_dim = embed // heads
    bias_in = p["in_proj_bias"]
    if not p["use_separate_proj_weight"]:
        if query is key and key is value:  # self-attention: one projection, as PyTorch does
            q, k, v = F.linear(query, p["in_proj_weight"], bias_in).chunk(3, dim=-1)
        else:
            w_q, w_k, w_v = p["in_proj_weight"].chunk(3)
            b_q, b_k, b_v = (None,) * 3 if bias_in is None else bias_in.chunk(3)
            q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
    else:
        b_q, b_k, b_v = (None,) * 3 if bias_in is None else bias_in.chunk(3)
        q = F.linear(query, p["q_proj_weight"], b_q)
        k = F.linear(key, p["k_proj_weight"], b_k)
        v = F.linear(value, p["v_proj_weight"], b_v)

    def heads_first(t: torch.Tensor) -> torch.Tensor:  # (S, N, E) -> (N, heads, S, head_dim)
        return (
            t.reshape(t.shape[0], batch * heads, head_dim)
            .transpose(0, 1)
            .reshape(batch, heads, t.shape[0], head_dim)
        )

    q, k, v = heads_first(q), heads_first(k), heads_first(v)
    source = k.shape[-2]
    bias = _bias(p["attn_mask"], allowed=False, dtype=q.dtype)
    if bias is not None:
        bias = (
            bias.reshape(1, 1, length, source)
            if bias.dim() == 2
            else bias.reshape(batch, heads, length, source)
        )
    if p["is_causal"] and p["attn_mask"] is None:
        causal = torch.ones(length, source, dtype=torch.bool, device=q.device).tril()
        bias = _bias(causal, allowed=True, dtype=q.dtype)
    padding = _bias(p["key_padding_mask"], allowed=False, dtype=q.dtype)
    if padding is not None:
        padding = padding.reshape(batch, 1, 1, source)
        bias = padding if bias is None else bias + padding
    found: list[torch.Tensor] = []

    def keep_too(probs: torch.Tensor) -> None:
        found.append(probs)
        keep(probs)

    dropout = p["dropout_p"] if p["training"] else 0.0
    out = attend(q, k, v, bias, dropout, None, keep_too)  # (N, heads, L, head_dim)
    out = out.permute(2, 0, 1, 3).reshape(length * batch, embed)
    out = F.linear(out, p["out_proj_weight"], p["out_proj_bias"]).reshape(length, batch, embed)
    weights = None
    if p["need_weights"]:
        weights = found[0].mean(dim=1) if p["average_attn_weights"] else found[0]
        weights = weights.squeeze(0) if unbatched else weights
    return (out.squeeze(1) if unbatched else out), weights


class AttentionCapture(TorchFunctionMode):
    """Within this mode every attention is explicit and its probabilities are kept, by block.

    With no block set nothing is kept: the mode then only makes attention explicit.

    Attributes:
        block: the block running now (set by the block hooks), or None.
        probs: block -> the probabilities computed while it ran, in call order.
        skipped: attention layouts that ran as usual, not explicitly (nothing kept).
    """

    def __init__(self) -> None:
        super().__init__()
        self.block: str | None = None
        self.probs: dict[str, list[torch.Tensor]] = {}
        self.skipped: list[str] = []

    def keep(self, probs: torch.Tensor) -> None:
        if self.block is None:
            return
        if torch.is_grad_enabled() and not probs.requires_grad and probs.is_floating_point():
            probs.requires_grad_(True)  # attention that depends on no input (still a node)
        self.probs.setdefault(self.block, []).append(probs)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return explicit_sdpa(self.keep, *args, **kwargs)
        if func is F.multi_head_attention_forward:
            try:
                return explicit_mha(self.keep, *args, **kwargs)
            except UnsupportedAttention as exc:
                self.skipped.append(str(exc))
                return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if func in _SOFTMAXES and isinstance(out, torch.Tensor) and out.dim() in (3, 4):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dim in (-1, out.dim() - 1) and out.shape[-1] == out.shape[-2]:
                self.keep(out)  # an explicit softmax over the keys of a self-attention
        return out


__all__ = [
    "AttentionCapture",
    "UnsupportedAttention",
    "attend",
    "explicit_mha",
    "explicit_sdpa",
]
