"""Methods built from a layer's activations ``A`` ``(n, C, h, w)`` and the gradients
``G = dS/dA`` ``(n, K, C, h, w)`` of the K target scores, all from the shared pass.

A method says either how channel weights are made (the map is ``ReLU(sum_c w_c A_c)``) or how
per-channel contributions are made (the map is ``ReLU(sum_c contribution_c)``); with eigen
smoothing (always for the Eigen variants) the first principal component replaces the sum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .base import CamMethod, CamRequest, RawMaps
from .core import summed_maps, weighted_maps
from .forward import run_pass

#: ``(A (n, C, h, w), G (n, K, C, h, w)) -> channel weights (n, K, C)``.
ChannelWeights = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``(A (n, C, h, w), G (n, K, C, h, w) or None) -> contributions (n, K | 1, C, h, w)``.
Contributions = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

_EPS = 1e-7


def _spatial_sum(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=(-2, -1))


# -- channel weights ------------------------------------------------------------------------------
def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: ``w_kc = mean_ij G_kc(i, j)``."""
    return grads.mean(dim=(-2, -1))


def gradcampp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++: ``alpha = G^2 / (2 G^2 + sum_ij A * G^3)`` (0 where G = 0),
    ``w_kc = sum_ij alpha ReLU(G)``."""
    g2 = grads.pow(2)
    total = _spatial_sum(acts)[:, None, :, None, None]
    alpha = g2 / (2 * g2 + total * g2 * grads + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return _spatial_sum(torch.relu(grads) * alpha)


def xgradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM: ``w_kc = sum_ij A_c G_kc / sum_ij A_c``."""
    return _spatial_sum(grads * acts[:, None]) / (_spatial_sum(acts)[:, None] + _EPS)


# -- per-position contributions -------------------------------------------------------------------
def gradient_times_activation(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """HiResCAM: ``G * A`` position by position."""
    return grads * acts[:, None]


def positive_products(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """Grad-CAM element-wise: ``ReLU(G * A)``."""
    return torch.relu(grads * acts[:, None])


def positive_gradient_times_activation(
    acts: torch.Tensor, grads: torch.Tensor | None
) -> torch.Tensor:
    """LayerCAM: ``ReLU(G) * A``."""
    return torch.relu(grads) * acts[:, None]


def activations_only(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """Eigen-CAM: the activations themselves (class-agnostic)."""
    return acts[:, None]


def unreached_map(request: CamRequest, name: str, acts: torch.Tensor, k: int) -> torch.Tensor:
    """The zero map ``(n, K, h, w)`` of a layer the score does not depend on, with a note."""
    request.note(f"the score does not depend on layer {name}: its map is zero.")
    return torch.zeros(len(acts), k, *acts.shape[-2:])


@dataclass(frozen=True)
class WeightedActivations(CamMethod):
    """A method of the common base: exactly one of ``weights`` or ``contributions``."""

    weights: ChannelWeights | None = None
    contributions: Contributions | None = None

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=self.needs_grad)
        eigen = self.eigen or request.eigen_smooth
        k = p.targets.k
        maps = {}
        for info in request.layers:
            acts, grads = p.acts[info.name], p.grads.get(info.name)
            if self.needs_grad and grads is None:
                maps[info.name] = unreached_map(request, info.name, acts, k)
            elif self.weights is not None:
                maps[info.name] = weighted_maps(self.weights(acts, grads), acts, eigen)
            else:
                out = summed_maps(self.contributions(acts, grads), eigen)
                maps[info.name] = out.expand(-1, k, -1, -1) if out.shape[1] != k else out
            if grads is not None or not self.needs_grad:
                request.check_constant(info.name, maps[info.name], acts, grads)
        return RawMaps(p.logits, p.targets, maps)
