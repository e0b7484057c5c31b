"""Test-time augmentation smoothing (``aug_smooth``) as a wrapper around any method: the maps of
flipped and brightened copies, flipped back and averaged."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ExplainError
from ..targets import repeat_targets, resolve_targets
from .base import CamMethod, CamRequest, RawMaps


def augmentations(x: torch.Tensor) -> list[tuple[torch.Tensor, bool]]:
    """Identity, horizontal flip, and both at 1.1x intensity: ``(copy, flipped)``."""
    flipped = torch.flip(x, dims=[-1])
    return [(x, False), (flipped, True), (x * 1.1, False), (flipped * 1.1, True)]


class AugSmooth:
    """``inner``'s raw maps averaged over :func:`augmentations` (maps flipped back).

    The targets are resolved once on the original images, so every copy explains the same
    class; the logits returned are those of the originals.
    """

    def __init__(self, inner: CamMethod):
        if inner.kind == "pixel":
            raise ExplainError("aug_smooth is not available for pixel-level methods.")
        self.inner = inner

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        handle = request.handle
        logits = handle.logits(x)
        resolved = resolve_targets(targets, logits, handle.labels, handle.class_index)
        copies = augmentations(x)
        fixed = targets if resolved.row_independent else repeat_targets(resolved, len(copies))
        with request.uncounted():  # counted over the copies, not the images: not comparable
            inner = self.inner.raw_maps(request, torch.cat([c for c, _ in copies]), fixed)
        maps = {}
        for name, raw in inner.maps.items():
            parts = torch.chunk(raw, len(copies))
            parts = [
                torch.flip(part, dims=[-1]) if flip else part
                for part, (_, flip) in zip(parts, copies, strict=True)
            ]
            maps[name] = torch.stack(parts).mean(dim=0)
        request.note("averaged over 4 test-time augmentations (flip x brightness).")
        return RawMaps(logits, resolved, maps)
