"""CAM (Zhou et al., CVPR 2016): the classifier's own weights applied to the last feature maps.

Only defined for models whose head is one linear layer reading the global average of the layer;
that is checked on every call (the head's input must equal the layer's spatial mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import MethodNotApplicable, TargetError
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


@dataclass(frozen=True)
class ClassActivationMap(CamMethod):
    """``L_c = sum_k W_ck A_k`` (no ReLU, as in the paper)."""

    def check(self, handle: ModelHandle) -> None:
        linear_head(handle)

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        handle = request.handle
        head_name, head = linear_head(handle)
        hooks = Hooks(handle.model).record_inputs([head_name])
        p = run_pass(handle, x, request.layers, targets, grads=False, hooks=hooks)
        if not (p.targets.indices >= 0).all() or p.targets.row_independent:
            raise TargetError(
                "CAM explains class indices only; use method='gradcam' for custom scores."
            )
        weight = head.weight.detach().float().cpu()
        head_in = hooks.inputs[head_name].float().cpu()
        maps = {}
        for name, acts in p.acts.items():
            pooled = acts.mean(dim=(2, 3))
            flat = head_in.reshape(len(acts), -1)
            tolerance = 1e-4 * max(1.0, float(pooled.abs().max()))
            if flat.shape != pooled.shape or not torch.allclose(
                flat, pooled, rtol=1e-3, atol=tolerance
            ):
                raise MethodNotApplicable(
                    f"CAM needs the classifier {head_name!r} to read the global average of "
                    f"layer {name!r} directly, and it does not.",
                    hint="pick the last feature layer before global pooling (e.g. "
                    f"{handle.default_layer!r}) or use method='gradcam', which generalises CAM.",
                )
            w = weight[torch.as_tensor(p.targets.indices)]  # (n, K, C)
            if p.targets.other is not None:  # a contrast: the map of logit a - logit b
                w = w - weight[p.targets.other]
            maps[name] = torch.einsum("nkc,nchw->nkhw", w, acts)
            request.check_constant(name, maps[name], acts)
        return RawMaps(p.logits, p.targets, maps)
