"""Shapley-CAM: channel weights from the gradient and the Hessian-vector product of the score.

Cai et al. read CAM, Grad-CAM and HiResCAM as approximations of each feature map's Shapley value
in the score; keeping the second-order term of the score's Taylor expansion gives the weight
``w_k = mean_ij (dS/dA - 1/2 (d^2 S / dA^2) A)_k``. Gradients and Hessian-vector products come
from one forward pass and one ``create_graph`` backward for all requested layers
(:func:`~explain.cams.forward.grads_and_hvps`). A score that is linear in the layer (a logit
after ReLU layers, pooling and a linear head) has a zero Hessian there, and the map is Grad-CAM's;
the paper pairs the method with a softmax-aware score (ReST, ``2 z_c - logsumexp(z)``), which a
target function gives: ``targets=lambda z: 2 * z[:, c] - z.logsumexp(1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .base import CamMethod, CamRequest, RawMaps
from .core import weighted_maps
from .forward import run_pass
from .gradient import unreached_map


def shapley_weights(grads: torch.Tensor, hvps: torch.Tensor) -> torch.Tensor:
    """``w_kc = mean_ij (G - H A / 2)_kc`` for ``(n, K, C, h, w)`` inputs -> ``(n, K, C)``."""
    return (grads - 0.5 * hvps).mean(dim=(-2, -1))


@dataclass(frozen=True)
class ShapleyCam(CamMethod):
    """Grad-CAM with the second-order (Hessian-vector product) correction of Shapley-CAM."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        p = run_pass(request.handle, x, request.layers, targets, grads=True, second_order=True)
        maps = {}
        for info in request.layers:
            acts, grads = p.acts[info.name], p.grads[info.name]
            if grads is None:
                maps[info.name] = unreached_map(request, info.name, acts, p.targets.k)
                continue
            weights = shapley_weights(grads, p.hvps[info.name])
            maps[info.name] = weighted_maps(weights, acts, request.eigen_smooth)
        return RawMaps(p.logits, p.targets, maps)
