"""Pixel-level gradients: guided backpropagation and Guided Grad-CAM.

Guided backpropagation changes how ReLU passes gradients back (only positive gradients, only
where the input was positive). The model is never modified: a thread-local
``TorchFunctionMode`` swaps every ``relu`` call (module, functional or in-place), and every
ReLU6 (``nn.ReLU6``, ``F.relu6``, ``hardtanh`` from 0: MobileNet, EfficientNet-Lite), for a
guided one during this call only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..hooks import first_tensor
from ..models import ModelHandle
from ..targets import ResolvedTargets, resolve_targets
from .base import CamMethod, CamRequest, RawMaps
from .core import upsample, weighted_maps
from .forward import as_input, batched_grads, run_pass
from .gradient import gradcam_weights


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


def guided_gradients(
    handle: ModelHandle, x: torch.Tensor, resolved: ResolvedTargets
) -> torch.Tensor:
    """Guided gradients ``(n, K, 3, H, W)`` of the resolved target scores w.r.t. the input."""
    with handle.lock, torch.enable_grad(), _GuidedMode():
        inp = x.to(handle.device).detach().requires_grad_(True)
        logits = first_tensor(handle.model(inp))
        grads = batched_grads(resolved.score_fn(logits).float(), [inp])[0]
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
    x = as_input(handle, x)
    resolved = resolve_targets(targets, handle.logits(x), handle.labels, handle.class_index)
    grads = guided_gradients(handle, x, resolved).permute(0, 1, 3, 4, 2).numpy()
    return grads if resolved.multi else grads[:, 0]


@dataclass(frozen=True)
class GuidedGradCam(CamMethod):
    """Guided backpropagation times the upsampled Grad-CAM map (scaled to a maximum of 1, not
    min-max: the product keeps Grad-CAM's zeros)."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=True)
        guided = guided_gradients(request.handle, x, p.targets)  # (n, K, 3, H, W)
        maps, pixels = {}, {}
        for info in request.layers:
            acts, grads = p.acts[info.name], p.grads[info.name]
            if grads is None:
                request.note(f"the score does not depend on layer {info.name}: its map is zero.")
                grads = torch.zeros(len(acts), p.targets.k, *acts.shape[1:])
            raw = weighted_maps(gradcam_weights(acts, grads), acts, request.eigen_smooth)
            up = upsample(raw, tuple(x.shape[-2:]))
            peak = up.flatten(-2).max(dim=-1).values[..., None, None]
            pixels[info.name] = (
                guided * (up / torch.where(peak > 0, peak, torch.ones_like(peak)))[:, :, None]
            )
            maps[info.name] = raw
        return RawMaps(p.logits, p.targets, maps, pixels)
