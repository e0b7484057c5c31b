"""KPCA-CAM: the first kernel principal component of a layer's features.

Eigen-CAM projects each position's channel vector onto the first principal component; KPCA-CAM
(Karmani et al.) does the same in the feature space of a kernel, which can follow non-linear
structure. With the sigmoid kernel ``k(a, b) = tanh(gamma a.b + coef0)`` (``gamma = 1 / C``,
``coef0 = 1``, on centred channel vectors) the map is the top eigenvector of the centred kernel
matrix of the ``h*w`` positions, times the square root of its eigenvalue (the positions'
coordinates on that component), sign fixed so that the larger magnitude is positive, then ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .base import CamMethod, CamRequest, RawMaps
from .forward import run_pass


def kernel_first_component(
    acts: torch.Tensor, gamma: float | None = None, coef0: float = 1.0
) -> torch.Tensor:
    """``(n, C, h, w)`` -> ``(n, h, w)``: coordinates on the first sigmoid-kernel principal
    component (float64 inside)."""
    n, c, h, w = acts.shape
    x = torch.nan_to_num(acts.double()).reshape(n, c, h * w).transpose(1, 2)
    x = x - x.mean(dim=1, keepdim=True)
    if h * w == 1:
        return acts.new_zeros(n, h, w)
    gram = torch.tanh((1.0 / c if gamma is None else gamma) * x @ x.transpose(1, 2) + coef0)
    centred = (
        gram
        - gram.mean(dim=1, keepdim=True)
        - gram.mean(dim=2, keepdim=True)
        + gram.mean(dim=(1, 2), keepdim=True)
    )
    values, vectors = torch.linalg.eigh(centred)
    top = vectors[..., -1] * values[..., -1:].clamp(min=0).sqrt()
    flip = top.min(dim=1).values.abs() > top.max(dim=1).values.abs()
    top = torch.where(flip[:, None], -top, top)
    return top.float().reshape(n, h, w)


@dataclass(frozen=True)
class KernelPcaCam(CamMethod):
    """The first sigmoid-kernel principal component of the activations (class-agnostic)."""

    gamma: float | None = None
    coef0: float = 1.0

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=False)
        maps = {}
        for info in request.layers:
            projection = kernel_first_component(p.acts[info.name], self.gamma, self.coef0)
            maps[info.name] = torch.relu(projection)[:, None].expand(-1, p.targets.k, -1, -1)
        return RawMaps(p.logits, p.targets, maps)
