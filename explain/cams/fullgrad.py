"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): a complete, layer-independent account of the
score from the input-gradient and the bias-gradient of every convolution and batch norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import MethodNotApplicable
from ..layers import LayerInfo
from ..models import ModelHandle
from .base import CamMethod, CamRequest, RawMaps
from .core import normalize_maps, upsample
from .forward import INPUT, run_pass


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    """The bias a layer adds; for BatchNorm, its effective bias in eval mode."""
    if isinstance(module, nn.BatchNorm2d):
        if module.bias is None or module.running_mean is None:
            return None
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return (module.bias - module.running_mean * scale).detach()
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach()


def bias_layers(handle: ModelHandle) -> list[LayerInfo]:
    """The convolutions and batch norms (NCHW maps) that add a bias, in model order."""
    modules = dict(handle.model.named_modules())
    found = [
        i
        for i in handle.layers
        if i.calls
        and i.kind == "spatial"
        and i.layout == "nchw"
        and isinstance(modules[i.name], nn.Conv2d | nn.BatchNorm2d)
        and effective_bias(modules[i.name]) is not None
    ]
    if not found:
        raise MethodNotApplicable(
            f"FullGrad needs convolution or batch-norm layers with biases; {handle.name} has none.",
            hint="use method='gradcam'.",
        )
    return found


@dataclass(frozen=True)
class FullGrad(CamMethod):
    """``L = psi(|x * dS/dx|) + sum_l sum_c psi(|b_lc * dS/db_lc|)`` at input resolution, with
    ``psi`` min-max normalisation (per colour channel for the input term). The requested
    layers do not change it: every bias layer is used, and each gets the same map."""

    def check(self, handle: ModelHandle) -> None:
        bias_layers(handle)

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        handle = request.handle
        modules = dict(handle.model.named_modules())
        biased = bias_layers(handle)
        p = run_pass(handle, x, biased, targets, grads=True, input_grad=True)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        g_in = p.grads[INPUT]  # (n, K, 3, H, W)
        total = normalize_maps((g_in * x[:, None].to(g_in)).abs().float().cpu()).sum(2)
        for info in biased:
            g = p.grads[info.name]
            if g is None:
                continue
            bias = effective_bias(modules[info.name]).float().cpu()
            term = normalize_maps((g.cpu() * bias[None, None, :, None, None]).abs()).sum(2)
            total = total + upsample(term, size)
        return RawMaps(p.logits, p.targets, dict.fromkeys((i.name for i in request.layers), total))
