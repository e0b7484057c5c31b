"""CAM (Zhou et al., CVPR 2016): the classifier's own weights applied to the last feature maps.

Only defined for models whose head is one linear layer reading the global average of the layer;
that is checked on every call (the head's input must equal the layer's spatial mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import LayerError, MethodNotApplicable, TargetError
from ..hooks import Hooks
from ..models import ModelHandle
from .base import CamMethod, CamRequest, RawMaps
from .forward import run_pass


def linear_head(handle: ModelHandle) -> tuple[str, nn.Linear]:
    """The last linear layer that runs in the forward pass: the classifier head."""
    modules = dict(handle.model.named_modules())
    linear = [i for i in handle.layers if i.calls and isinstance(modules[i.name], nn.Linear)]
    if not linear:
        raise MethodNotApplicable(
            f"CAM needs a linear classifier head; {handle.name} has none.",
            hint="use method='gradcam', which generalises CAM to any head.",
        )
    name = max(linear, key=lambda i: i.order).name
    return name, modules[name]


def _reads_pooled(head_in: torch.Tensor, acts: torch.Tensor) -> bool:
    """Whether the head's input ``(n, ...)`` is the spatial mean of ``acts`` ``(n, C, h, w)``."""
    pooled = acts.mean(dim=(2, 3))
    flat = head_in.reshape(len(acts), -1)
    tolerance = 1e-4 * max(1.0, float(pooled.abs().max()))
    return flat.shape == pooled.shape and torch.allclose(flat, pooled, rtol=1e-3, atol=tolerance)


@dataclass(frozen=True)
class ClassActivationMap(CamMethod):
    """``L_c = sum_k W_ck A_k`` (no ReLU, as in the paper)."""

    def check(self, handle: ModelHandle) -> None:
        linear_head(handle)

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        handle = request.handle
        head_name, head = linear_head(handle)
        hooks = Hooks(handle.model).record_inputs([head_name])
        # The default layer too: where a requested layer does not fit, it tells a wrong layer
        # (a user's choice) from a model without a pooling + linear head (CAM does not apply).
        default = handle.map_layer(handle.default_layer)
        recorded = [*request.layers, *([] if default in request.layers else [default])]
        p = run_pass(handle, x, recorded, targets, grads=False, hooks=hooks)
        if not (p.targets.indices >= 0).all() or p.targets.row_independent:
            raise TargetError(
                "CAM explains class indices only; use method='gradcam' for custom scores."
            )
        weight = head.weight.detach().float().cpu()
        head_in = hooks.inputs[head_name].float().cpu()
        maps = {}
        for info in request.layers:
            name, acts = info.name, p.acts[info.name]
            if not _reads_pooled(head_in, acts):
                fits = _reads_pooled(head_in, p.acts[default.name])
                error = LayerError if fits else MethodNotApplicable
                raise error(
                    f"CAM needs the classifier {head_name!r} to read the global average of "
                    f"layer {name!r} directly, and it does not"
                    + ("." if fits else f" (nor that of {default.name!r})."),
                    hint=f"pick the layer the classifier pools, {default.name!r}, or use "
                    "method='gradcam', which generalises CAM."
                    if fits
                    else "use method='gradcam', which generalises CAM to any head.",
                )
            w = weight[torch.as_tensor(p.targets.indices)]  # (n, K, C)
            if p.targets.other is not None:  # a contrast: the map of logit a - logit b
                w = w - weight[p.targets.other]
            maps[name] = torch.einsum("nkc,nchw->nkhw", w, acts)
            request.check_constant(name, maps[name], acts)
        return RawMaps(p.logits, p.targets, maps)
