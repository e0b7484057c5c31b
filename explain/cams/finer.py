"""Finer-CAM: Grad-CAM of a class's score compared with the classes the model finds closest.

Zhang et al. explain a class against its most similar classes so that features shared with them
cancel and what tells the class apart remains. The score for class ``c`` is
``S = sum_j p_j (z_c - alpha z_j) / sum_j p_j`` over the ``m`` classes ``j`` whose logits are
nearest to ``z_c`` (on this image), weighted by their softmax probabilities ``p_j``; the weights
stay in the graph, as in the authors' reference implementation. Grad-CAM weights then give the
map. ``Contrast(a, b)`` makes ``b`` the only comparison class, where the score is exactly
``z_a - z_b``: the contrast is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import TargetError
from ..targets import Contrast, ResolvedTargets
from .base import CamMethod, CamRequest, RawMaps
from .core import weighted_maps
from .forward import run_pass
from .gradient import gradcam_weights, unreached_map


def nearest_classes(logits: torch.Tensor, classes: torch.Tensor, m: int) -> torch.Tensor:
    """For each target ``(n, K)`` the ``m`` other classes of nearest logit ``(n, K, m)``,
    nearest first."""
    z = logits.detach()
    distance = (z[:, None, :] - z.gather(1, classes)[..., None]).abs()
    distance.scatter_(2, classes[..., None], float("inf"))
    return distance.topk(m, dim=2, largest=False).indices


def finer_score(
    logits: torch.Tensor, classes: torch.Tensor, references: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """``sum_j p_j (z_c - alpha z_j) / (sum_j p_j + 1e-9)`` -> ``(n, K)``.

    Args:
        logits: ``(n, C)``.
        classes: ``(n, K)`` the explained classes ``c``.
        references: ``(n, K, m)`` the comparison classes ``j``.
    """
    n, k, m = references.shape
    probs = torch.softmax(logits, dim=1)
    flat = references.reshape(n, k * m)
    z_ref = logits.gather(1, flat).reshape(n, k, m)
    p_ref = probs.gather(1, flat).reshape(n, k, m)
    z_c = logits.gather(1, classes)[..., None]
    return (p_ref * (z_c - alpha * z_ref)).sum(dim=-1) / (p_ref.sum(dim=-1) + 1e-9)


def finer_targets(
    resolved: ResolvedTargets,
    logits: torch.Tensor,
    labels: Sequence[str],
    comparisons: int = 3,
    alpha: float = 1.0,
) -> ResolvedTargets:
    """The resolved classes, each compared with its ``comparisons`` nearest classes."""
    m = min(comparisons, int(logits.shape[1]) - 1)
    if m < 1:
        raise TargetError("Finer-CAM needs a model with at least two classes.")
    classes = torch.as_tensor(resolved.indices, device=logits.device)
    references = nearest_classes(logits, classes, m)

    def score(z: torch.Tensor) -> torch.Tensor:
        return finer_score(z, classes.to(z.device), references.to(z.device), alpha)

    names = [
        [
            f"{name} vs. {', '.join(labels[int(j)] for j in refs)}"
            for name, refs in zip(row, per_image, strict=True)
        ]
        for row, per_image in zip(resolved.names, references.cpu(), strict=True)
    ]
    return ResolvedTargets(resolved.indices, resolved.multi, score, names)


@dataclass(frozen=True)
class FinerCam(CamMethod):
    """Grad-CAM of the Finer-CAM comparison score."""

    comparisons: int = 3
    alpha: float = 1.0

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        handle = request.handle
        retarget = None
        if not isinstance(targets, Contrast):
            if callable(targets):
                raise TargetError(
                    "Finer-CAM compares classes: give a class, classes or Contrast(a, b), not a "
                    "score function.",
                )

            def retarget(resolved: ResolvedTargets, logits: torch.Tensor) -> ResolvedTargets:
                return finer_targets(resolved, logits, handle.labels, self.comparisons, self.alpha)

        p = run_pass(handle, x, request.layers, targets, grads=True, retarget=retarget)
        maps = {}
        for info in request.layers:
            acts, grads = p.acts[info.name], p.grads[info.name]
            if grads is None:
                maps[info.name] = unreached_map(request, info.name, acts, p.targets.k)
                continue
            maps[info.name] = weighted_maps(
                gradcam_weights(acts, grads), acts, request.eigen_smooth
            )
        return RawMaps(p.logits, p.targets, maps)
