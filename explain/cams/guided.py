"""Pixel-level gradients: guided backpropagation, and FullGrad.

Guided backpropagation changes how ReLU passes gradients back (only positive gradients, only
where the input was positive). The model is never modified: a thread-local
``TorchFunctionMode`` swaps every ``relu`` call (module, functional or in-place), and every
ReLU6 (``nn.ReLU6``, ``F.relu6``, ``hardtanh`` from 0: MobileNet, EfficientNet-Lite), for a
guided one during this call only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ExplainError
from ..layers import LayerInfo, first_tensor
from ..models import ModelHandle
from ..targets import ResolvedTargets, resolve_targets
from .core import normalize_maps, upsample


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0).to(grad.dtype)


class _GuidedReLU6(torch.autograd.Function):
    """``clamp(x, 0, top)``; backward: positive gradients where the unit was active."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, top: float) -> torch.Tensor:
        out = x.clamp(min=0, max=top)
        ctx.save_for_backward(out)
        ctx.top = top
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        active = (out > 0) & (out < ctx.top)
        return grad.clamp(min=0) * active.to(grad.dtype), None


_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_RELU6 = {F.relu6, torch._C._nn.relu6, torch._C._nn.relu6_}
_HARDTANH = {F.hardtanh, F.hardtanh_, torch._C._nn.hardtanh, torch._C._nn.hardtanh_}


def _clamp_range(func: Any, args: tuple, kwargs: dict) -> tuple[float, float] | None:
    """(low, high) of a ReLU6 / hardtanh call, or None for any other function."""
    if func in _RELU6:
        return 0.0, 6.0
    if func in _HARDTANH:
        low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
        high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
        return float(low), float(high)
    return None


class _GuidedMode(TorchFunctionMode):
    """Within this mode every ReLU (and ReLU6) is the guided one (out of place)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if func in _RELUS:
            return _GuidedReLU.apply(args[0])
        clamp = _clamp_range(func, args, kwargs)
        if clamp is not None and clamp[0] == 0.0:  # a hardtanh from 0 is a ReLU6-like unit
            return _GuidedReLU6.apply(args[0], clamp[1])
        return func(*args, **kwargs)


def guided_backprop_tensor(
    handle: ModelHandle, x: torch.Tensor, resolved: ResolvedTargets
) -> torch.Tensor:
    """Guided gradients ``(n, K, 3, H, W)`` of the resolved target scores w.r.t. the input."""
    from .engine import _batched_grads

    with handle.lock, torch.enable_grad(), _GuidedMode():
        inp = x.to(handle.device).detach().requires_grad_(True)
        logits = first_tensor(handle.model(inp))
        grads = _batched_grads(resolved.score_fn(logits).float(), [inp])[0]
    return grads.transpose(0, 1).detach().float().cpu()


def guided_backprop(handle: ModelHandle, x: Any, targets: Any = None) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015) of the target score.

    Args:
        handle: the model.
        x: ``(N, 3, H, W)`` tensor or images.
        targets: see :mod:`explain.targets` (default: top-1 class).

    Returns:
        ``(N, H, W, 3)`` float32 gradients (``(N, K, H, W, 3)`` for several targets per
        image); show them with :func:`explain.render.gradient_image`.
    """
    from .engine import _as_input

    x = _as_input(handle, x)
    resolved = resolve_targets(targets, handle.logits(x), handle.labels, handle.class_index)
    grads = guided_backprop_tensor(handle, x, resolved).permute(0, 1, 3, 4, 2).numpy()
    return grads if resolved.multi else grads[:, 0]


def _bias_of(module: nn.Module) -> torch.Tensor | None:
    """The bias a layer adds; for BatchNorm, its effective bias in eval mode."""
    if isinstance(module, nn.BatchNorm2d):
        if module.bias is None or module.running_mean is None:
            return None
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return (module.bias - module.running_mean * scale).detach()
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach()


def fullgrad_raw(
    handle: ModelHandle, x: torch.Tensor, infos: Sequence[LayerInfo], targets: Any
) -> tuple[Any, torch.Tensor]:
    """FullGrad (Srinivas & Fleuret 2019) at input resolution, ``(n, K, H, W)``.

    Sum of the normalised ``|x * dS/dx|`` (per colour channel) and, for every convolution and
    batch-norm layer with a bias, the normalised ``|b * dS/db|`` maps summed over channels.
    ``layers`` do not change it (the method uses all bias layers).
    """
    from .engine import _forward

    modules = dict(handle.model.named_modules())
    bias_layers = [
        i
        for i in handle.layers
        if i.calls
        and i.kind == "spatial"
        and i.layout == "nchw"
        and isinstance(modules[i.name], nn.Conv2d | nn.BatchNorm2d)
        and _bias_of(modules[i.name]) is not None
    ]
    if not bias_layers:
        raise ExplainError(
            f"FullGrad needs convolution or batch-norm layers with biases; {handle.name} has none.",
            hint="use method='gradcam'.",
        )
    p = _forward(handle, x, bias_layers, targets, with_grads=True, extra_inputs=True)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    g_in = p.grads["<input>"]  # (K, n, 3, H, W)
    total = normalize_maps((g_in.transpose(0, 1) * x[:, None].to(g_in)).abs().float().cpu()).sum(2)
    for info in bias_layers:
        g = p.grads[info.name]
        if g is None:
            continue
        bias = _bias_of(modules[info.name]).float().cpu()
        term = normalize_maps((g.cpu() * bias[None, None, :, None, None]).abs()).sum(2)
        total = total + upsample(term, size)
    return p, total
