"""The pass every CAM method shares: one forward pass that records all requested layers and,
for gradient methods, one backward pass for all layers and all targets.

Gradients are taken with ``torch.autograd.grad(scores, activations)``: no weight gradients, no
``.backward()``. Autograd records only from the first requested layer on (the part of the
network before it runs without a graph). Several targets per image share the forward pass
through batched gradients. Hooks live only inside the pass, under the model's lock.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ExplainError, LayerError
from ..hooks import Hooks, first_tensor
from ..layers import LayerInfo, to_nchw
from ..models import ModelHandle
from ..targets import ResolvedTargets, resolve_targets
from .attention import AttentionCapture

#: The key of the input's gradient in :attr:`LayerPass.grads` (``input_grad=True``).
INPUT = "<input>"
#: ``retarget(resolved, logits) -> resolved``: a method's own score on the resolved targets.
Retarget = Callable[[ResolvedTargets, torch.Tensor], ResolvedTargets]


@dataclass
class LayerPass:
    """What one pass over a batch of ``n`` images gives.

    Attributes:
        logits: ``(n, classes)`` float32, detached.
        targets: the targets resolved on these logits (``K`` per image).
        acts: layer -> ``(n, C, h, w)`` float32 activations as maps, detached.
        grads: layer -> ``(n, K, C, h, w)`` float32 gradients of the K target scores, or None
            when the scores do not depend on the layer (or no gradients were asked for);
            :data:`INPUT` -> ``(n, K, 3, H, W)`` with ``input_grad``.
        native: layer -> its output in its own layout (tokens, NHWC, ...), detached.
        hvps: layer -> ``(n, K, C, h, w)`` Hessian-vector products ``(d^2 S / dA^2) A`` of
            each target score (``second_order`` only; zero where the score is linear in A).
    """

    logits: torch.Tensor
    targets: ResolvedTargets
    acts: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None] = field(default_factory=dict)
    native: dict[str, torch.Tensor] = field(default_factory=dict)
    hvps: dict[str, torch.Tensor] = field(default_factory=dict)


def as_input(handle: ModelHandle, x: Any) -> torch.Tensor:
    """Images or a tensor -> a contiguous ``(N, 3, H, W)`` float tensor."""
    if not isinstance(x, torch.Tensor):
        x = handle.preprocess(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ExplainError(f"Expected images or a (N, 3, H, W) tensor, got shape {tuple(x.shape)}.")
    return x.float().contiguous()


def batched_grads(scores: torch.Tensor, wrt: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """``d scores[:, k] / d wrt`` for every ``k``, each as ``(K, *wrt.shape)``.

    One backward when K == 1; for several targets one vectorised backward
    (``is_grads_batched``), or one backward per target when an operation has no batching rule.
    A tensor the scores do not depend on gets None.
    """
    k = scores.shape[1]
    if not scores.requires_grad:
        return [None] * len(wrt)
    if k == 1:
        grads = torch.autograd.grad(scores[:, 0].sum(), wrt, allow_unused=True)
        return [None if g is None else g[None] for g in grads]
    eye = torch.eye(k, device=scores.device, dtype=scores.dtype)
    grad_outputs = eye[:, None, :].expand(k, scores.shape[0], k)
    try:
        return list(
            torch.autograd.grad(
                scores,
                wrt,
                grad_outputs=grad_outputs,
                is_grads_batched=True,
                allow_unused=True,
                retain_graph=True,
            )
        )
    except RuntimeError:  # an op without a batching rule: one backward per target instead
        per_target = [
            torch.autograd.grad(scores[:, j].sum(), wrt, allow_unused=True, retain_graph=True)
            for j in range(k)
        ]
        return [
            None if per_target[0][i] is None else torch.stack([p[i] for p in per_target])
            for i in range(len(wrt))
        ]


def grads_and_hvps(
    scores: torch.Tensor, wrt: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor | None], list[torch.Tensor]]:
    """Gradients ``d scores[:, k] / d A`` and Hessian-vector products ``(d^2 scores[:, k] /
    dA^2) A`` for every tensor ``A`` in ``wrt``, each as ``(K, *A.shape)``.

    One backward with ``create_graph`` per target serves every tensor; each product is then one
    more backward through that graph (the Hessian of one tensor needs its own vector, so the
    products are taken tensor by tensor). A score linear in ``A`` gives a zero product.
    """
    k = scores.shape[1]
    if not scores.requires_grad:
        return [None] * len(wrt), [a.new_zeros((k, *a.shape)) for a in wrt]
    grads: list[list[torch.Tensor | None]] = [[] for _ in wrt]
    hvps: list[list[torch.Tensor]] = [[] for _ in wrt]
    for j in range(k):
        first = torch.autograd.grad(
            scores[:, j].sum(), wrt, allow_unused=True, retain_graph=True, create_graph=True
        )
        for i, (a, g) in enumerate(zip(wrt, first, strict=True)):
            grads[i].append(None if g is None else g.detach())
            hv = None
            if g is not None and g.requires_grad:
                hv = torch.autograd.grad(
                    g, a, grad_outputs=a.detach(), allow_unused=True, retain_graph=True
                )[0]
            hvps[i].append(torch.zeros_like(a) if hv is None else hv.detach())
    return (
        [None if g[0] is None else torch.stack(g) for g in grads],  # type: ignore[misc]
        [torch.stack(h) for h in hvps],
    )


def run_pass(
    handle: ModelHandle,
    x: torch.Tensor,
    layers: Sequence[LayerInfo],
    targets: Any,
    *,
    grads: bool,
    input_grad: bool = False,
    hooks: Hooks | None = None,
    second_order: bool = False,
    retarget: Retarget | None = None,
) -> LayerPass:
    """One forward pass recording every layer in ``layers``; with ``grads``, one backward pass
    for all of them and all targets.

    Args:
        x: ``(n, 3, H, W)`` model input.
        targets: any accepted targets form (resolved on this pass's logits).
        grads: take the gradients of the target scores with respect to the layers.
        input_grad: also with respect to the input (the whole forward is then recorded).
        hooks: a :class:`~explain.hooks.Hooks` with more plans of the caller's (the pass adds
            its recording to it); read what they captured from it afterwards.
        second_order: also the Hessian-vector products ``(d^2 S / dA^2) A`` of each layer
            (in :attr:`LayerPass.hvps`), from the same forward pass.
        retarget: ``retarget(resolved, logits) -> resolved``: a method's own score built on
            the targets resolved on this pass's (detached) logits.
    """
    names = [info.name for info in layers]
    model = handle.model
    # Recording without copies saves a copy of every recorded output; it is checked afterwards
    # (an in-place change bumps a tensor's version, or fails on the graph's leaf) and redone
    # with copies for a model that changes a recorded output in place.
    copy = hooks is not None or not grads or model in _COPIES
    try:
        logits, resolved, native, raw_grads, raw_hvps = _forward_backward(
            handle, x, names, targets, grads, input_grad, hooks, second_order, retarget, copy
        )
    except _ChangedInPlace:
        _COPIES.add(model)
        logits, resolved, native, raw_grads, raw_hvps = _forward_backward(
            handle, x, names, targets, grads, input_grad, hooks, second_order, retarget, True
        )
    acts = {info.name: to_nchw(native[info.name].detach(), info).float() for info in layers}
    by_name = {info.name: info for info in layers}
    out_grads: dict[str, torch.Tensor | None] = {}
    for info in layers:
        g = raw_grads.get(info.name)
        out_grads[info.name] = None if g is None else _per_target_maps(g, info)
    out_hvps = {name: _per_target_maps(h, by_name[name]) for name, h in raw_hvps.items()}
    if input_grad:
        g = raw_grads.get(INPUT)
        out_grads[INPUT] = None if g is None else g.transpose(0, 1).float()
    return LayerPass(
        logits.detach().float(),
        resolved,
        acts,
        out_grads,
        {n: t.detach() for n, t in native.items()},
        out_hvps,
    )


class _ChangedInPlace(Exception):
    """The network changed a recorded output in place: record again with copies."""


#: Models that change a recorded output in place (recorded with copies from then on).
_COPIES: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _forward_backward(
    handle: ModelHandle,
    x: torch.Tensor,
    names: list[str],
    targets: Any,
    grads: bool,
    input_grad: bool,
    hooks: Hooks | None,
    second_order: bool,
    retarget: Retarget | None,
    copy: bool,
) -> tuple[
    torch.Tensor,
    ResolvedTargets,
    dict[str, torch.Tensor],
    dict[str, torch.Tensor | None],
    dict[str, torch.Tensor],
]:
    """The forward and backward of :func:`run_pass`, recording with or without copies."""
    model = handle.model
    hooks = (hooks or Hooks(model)).fast_pooling()
    hooks.record(names, copy=copy, begin_graph=grads and not input_grad)
    if grads and input_grad:
        mode: Any = torch.enable_grad()
    elif grads:
        mode = torch.no_grad()  # the graph begins at the first recorded layer
    else:
        mode = torch.inference_mode()
    # Fused attention kernels have no second derivative: second order runs attention explicitly.
    explicit: Any = AttentionCapture() if second_order else contextlib.nullcontext()
    with handle.lock, hooks, mode:
        inp = x.to(handle.device)
        if input_grad:
            inp = inp.detach().requires_grad_(True)
        try:
            with explicit:
                logits = first_tensor(model(inp))
        except RuntimeError as error:  # an in-place operation on the uncopied graph leaf
            if not copy and "in-place" in str(error):
                raise _ChangedInPlace from error
            raise
        if not copy and hooks.changed_in_place():
            raise _ChangedInPlace
        if logits is None or logits.ndim != 2:
            raise ExplainError(f"{handle.name} did not return (N, classes) logits.")
        resolved = resolve_targets(targets, logits.detach(), handle.labels, handle.class_index)
        if retarget is not None:
            resolved = retarget(resolved, logits.detach())
        missing = [n for n in names if n not in hooks.outputs]
        if missing:
            raise LayerError(f"Layer(s) {', '.join(missing)} did not run in the forward pass.")
        native = {n: hooks.outputs[n] for n in names}
        raw_grads: dict[str, torch.Tensor | None] = {}
        raw_hvps: dict[str, torch.Tensor] = {}
        if grads:
            with torch.enable_grad():
                scores = resolved.score_fn(logits).float()
                wrt = [native[n] for n in names] + ([inp] if input_grad else [])
                if second_order:
                    found, products = grads_and_hvps(scores, wrt)
                    raw_hvps = dict(zip(names, products, strict=False))
                else:
                    found = batched_grads(scores, wrt)
            raw_grads = dict(zip(names, found, strict=False))
            if input_grad:
                raw_grads[INPUT] = found[-1]
    return logits, resolved, native, raw_grads, raw_hvps


def _per_target_maps(t: torch.Tensor, info: LayerInfo) -> torch.Tensor:
    """``(K, n, ...)`` in the layer's own layout -> ``(n, K, C, h, w)`` float32."""
    k, b = t.shape[:2]
    t = to_nchw(t.reshape(k * b, *t.shape[2:]), info).float()
    return t.reshape(k, b, *t.shape[1:]).transpose(0, 1)
