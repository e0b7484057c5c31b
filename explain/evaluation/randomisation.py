"""Randomisation sanity check (Adebayo et al. 2018): does the map change when the model forgets
what it learnt?

Cascading model-parameter randomisation re-initialises the model stage by stage, from the
output head down to the input, each stage on top of the previous ones, and recomputes the maps.
An explanation that depends on the model must drift away from the original map; one that stays
the same (an edge detector, say) explains the image, not the model.

The shared model is never touched: the randomisation happens in a deep copy wrapped in its own
:class:`~explain.models.ModelHandle`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.stats import rankdata
from torch import nn

from ..cams import compute_cams, upsample
from ..cams.core import CamResult
from ..errors import ExplainError
from ..layers import resolve_layers
from ..models import ModelHandle
from ..progress import Progress, notify

#: Layers whose re-initialisation is their initial state (scale 1, shift 0, fresh statistics).
_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


@dataclass(frozen=True)
class Stage:
    """One step of the cascade: the modules re-initialised at this step.

    Attributes:
        name: the common path prefix of the modules (e.g. ``"layer4.2"`` or ``"fc"``).
        modules: paths of the modules with parameters of their own.
    """

    name: str
    modules: tuple[str, ...]


def cascade_stages(
    handle: ModelHandle, depth: int = 2, stages: Sequence[str] | None = None
) -> list[Stage]:
    """The stages of cascading randomisation, from the output head to the input.

    Modules that hold parameters of their own and run in the forward pass are grouped by the
    first ``depth`` parts of their path (``layer4.2.conv1`` -> ``layer4.2`` at depth 2) and
    ordered by when the group's last module finishes in the forward pass, latest first.

    Args:
        handle: the model.
        depth: path depth of a group.
        stages: explicit module paths (prefixes) instead, in the order to randomise them.

    Returns:
        The stages, head first.
    """
    modules = dict(handle.model.named_modules())
    with_params = [
        info
        for info in handle.layers
        if info.calls > 0 and any(p.numel() for p in modules[info.name].parameters(recurse=False))
    ]
    if stages is not None:
        out = []
        for prefix in stages:
            names = tuple(
                i.name for i in with_params if i.name == prefix or i.name.startswith(prefix + ".")
            )
            if not names:
                raise ExplainError(
                    f"No module with parameters under {prefix!r} in {handle.name}.",
                    hint="give module paths from handle.layers (e.g. 'fc', 'layer4').",
                )
            out.append(Stage(prefix, names))
        return out
    groups: dict[str, list[str]] = {}
    last: dict[str, int] = {}
    for info in with_params:
        key = ".".join(info.name.split(".")[: max(1, depth)]) if info.name else "<root>"
        groups.setdefault(key, []).append(info.name)
        last[key] = max(last.get(key, -1), info.order)
    if not groups:
        raise ExplainError(f"{handle.name} has no parameters to randomise.")
    order = sorted(groups, key=lambda key: -last[key])
    return [Stage(key, tuple(groups[key])) for key in order]


def randomise_module(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise the module's own parameters in place (use on a copy only).

    Normalisation layers go back to their initial state (scale 1, shift 0, running mean 0 and
    variance 1). Every other parameter is drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    the scale of PyTorch's default initialisation, with ``fan_in`` the inputs per output of the
    module's weight; draws come from ``generator`` only (no global random state).
    """
    if isinstance(module, _NORMS):
        module.reset_parameters()
        return
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    with torch.no_grad():
        for p in params.values():
            ref = weight if weight is not None and weight.ndim >= 2 else p
            fan_in = max(1, ref[0].numel() if ref.ndim >= 2 else ref.numel())
            bound = 1.0 / math.sqrt(fan_in)
            fresh = torch.empty(p.shape, dtype=torch.float32).uniform_(
                -bound, bound, generator=generator
            )
            p.copy_(fresh.to(device=p.device, dtype=p.dtype))


def randomised_copy(handle: ModelHandle) -> ModelHandle:
    """A deep copy of ``handle``'s model in a handle of its own (own lock), to randomise."""
    with handle.lock:  # no other call's transient hooks end up in the copy
        model = copy.deepcopy(handle.model)
    return ModelHandle(
        model,
        name=f"{handle.name} (randomised)",
        labels=handle.labels,
        preprocessor=handle.preprocessor,
        spec=f"{handle.spec}#randomised",
        source=handle.source,
        device=handle.device,
        default_layers=(handle.default_layer,),
        notes=["parameters re-initialised for the randomisation sanity check."],
    )


# -- similarity of maps -------------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per pair of maps (average ranks for ties).

    A constant map has no ranking: its correlation with anything is defined as 0.

    Args:
        a, b: ``(N, ...)``, flattened per row.

    Returns:
        ``(N,)`` float64 in [-1, 1].
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    num = (ra * rb).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Mean structural similarity per pair of maps (Wang et al. 2004).

    ``SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    with local means, variances and covariance under a Gaussian window (``sigma`` 1.5, 11 x 11,
    reflected at the borders), ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``;
    averaged over the pixels at least 5 from the border (as scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``).

    Args:
        a, b: ``(N, H, W)``.

    Returns:
        ``(N,)`` float64 in [-1, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ExplainError(
            f"SSIM needs two (N, H, W) arrays of one shape, got {a.shape}, {b.shape}."
        )
    truncate = 3.5

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(
            z, sigma=(0, sigma, sigma), truncate=truncate, mode="reflect"
        )

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    pad = int(truncate * sigma + 0.5)
    if min(a.shape[1:]) > 2 * pad:
        s = s[:, pad:-pad, pad:-pad]
    return s.mean(axis=(1, 2))


# -- the cascade --------------------------------------------------------------------------------
@dataclass
class SanityResult:
    """Similarity between original and randomised maps after each cascade stage.

    Attributes:
        stages: the stages, head first; stage ``k`` has every stage up to ``k`` randomised.
        spearman, spearman_abs, ssim: ``(method, layer) -> (N, S)`` per image and stage.
        notes: anything worth knowing about the run.
    """

    stages: list[Stage]
    spearman: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    spearman_abs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    ssim: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def final(self, which: str = "spearman") -> dict[tuple[str, str], np.ndarray]:
        """``(method, layer) -> (N,)`` similarity once every stage is randomised."""
        return {key: v[:, -1] for key, v in getattr(self, which).items()}

    def frame(self) -> pd.DataFrame:
        """Tidy table: image, method, layer, stage (1-based), stage_name, metric, value."""
        rows = []
        for metric in ("spearman", "spearman_abs", "ssim"):
            for (method, layer), values in getattr(self, metric).items():
                n, s = values.shape
                rows.append(
                    pd.DataFrame(
                        {
                            "image": np.repeat(np.arange(n), s),
                            "method": method,
                            "layer": layer,
                            "stage": np.tile(np.arange(1, s + 1), n),
                            "stage_name": np.tile(self.stage_names, n),
                            "metric": f"sanity_{metric}",
                            "value": values.ravel(),
                        }
                    )
                )
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _compare(
    original: CamResult, randomised: CamResult, layer: str, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = original.maps[layer], randomised.maps[layer]
    if layer in original.pixels:  # pixel methods: the map is already a magnitude
        signed_a, signed_b = a, b
    else:
        # Min-max scaling keeps ranks, so the plain Spearman can use the [0, 1] maps; the
        # absolute variant needs the signed raw maps (signs matter for CAM without ReLU).
        signed_a = upsample(torch.from_numpy(original.raw[layer]), size).numpy()
        signed_b = upsample(torch.from_numpy(randomised.raw[layer]), size).numpy()
    return spearman(a, b), spearman(np.abs(signed_a), np.abs(signed_b)), ssim(a, b)


def cascading_randomisation(
    handle: ModelHandle,
    x: torch.Tensor,
    methods: Sequence[str] = ("gradcam",),
    layers: Sequence[str] | None = None,
    targets: Sequence[int] | None = None,
    *,
    depth: int = 2,
    stages: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 16,
    original: dict[str, CamResult] | None = None,
    progress: Progress | None = None,
) -> SanityResult:
    """Cascading model-parameter randomisation (Adebayo et al. 2018).

    Randomises a deep copy of the model stage by stage (see :func:`cascade_stages`), head
    first and cumulatively, recomputes the maps of every method at every layer for the same
    target classes, and compares them with the original maps: Spearman rank correlation, the
    same on absolute values, and SSIM.

    Args:
        handle: the model (left untouched).
        x: ``(N, 3, H, W)`` model input.
        methods: CAM methods.
        layers: layers (default ``handle.default_layer``).
        targets: ``(N,)`` classes (default the top-1 class of the trained model).
        depth, stages: see :func:`cascade_stages`.
        seed: seed of the re-initialisation (a ``torch.Generator``).
        batch_size: images per CAM pass.
        original: ``method -> CamResult`` of the trained model, if already computed.
        progress: ``progress(done, total, message)`` after each stage.

    Returns:
        :class:`SanityResult`.
    """
    x = x.float()
    layers = [info.name for info in resolve_layers(handle, layers)]
    tgt = (
        handle.logits(x).argmax(dim=1).numpy()
        if targets is None
        else np.asarray(targets, dtype=np.int64)
    )
    size = (int(x.shape[-2]), int(x.shape[-1]))
    plan = cascade_stages(handle, depth, stages)
    original = dict(original or {})
    for method in methods:
        if method not in original:
            original[method] = compute_cams(
                handle, x, layers, method, tgt.tolist(), batch_size=batch_size
            )
    result = SanityResult(plan)
    copy_handle = randomised_copy(handle)
    modules = dict(copy_handle.model.named_modules())
    generator = torch.Generator().manual_seed(int(seed))
    collected: dict[str, dict[tuple[str, str], list[np.ndarray]]] = {
        "spearman": {},
        "spearman_abs": {},
        "ssim": {},
    }
    for k, stage in enumerate(plan):
        for name in stage.modules:
            randomise_module(modules[name], generator)
        for method in methods:
            res = compute_cams(copy_handle, x, layers, method, tgt.tolist(), batch_size=batch_size)
            for layer in layers:
                values = _compare(original[method], res, layer, size)
                for metric, v in zip(collected, values, strict=True):
                    collected[metric].setdefault((method, layer), []).append(v)
        notify(progress, k + 1, len(plan), f"randomised {stage.name} ({k + 1}/{len(plan)})")
    for metric, per_key in collected.items():
        setattr(result, metric, {key: np.stack(v, axis=1) for key, v in per_key.items()})
    return result
