"""``compute_cams``: any registered method, at every requested layer, for a batch of images.

The engine knows no method by name. It checks the input and the layers, runs the method's
strategy (:meth:`~explain.cams.base.CamMethod.raw_maps`) chunk by chunk, and turns the raw maps
into the result: upsampled to the input size and min-max normalised.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ExplainError
from ..layers import resolve_layers
from ..models import ModelHandle
from ..preprocessing import input_pictures
from ..progress import Progress, notify, within
from ..targets import slice_targets
from .base import METHOD_INFO, CamMethod, CamRequest, check_method
from .core import CamResult, normalize_maps, upsample_normalized
from .forward import as_input
from .smoothing import AugSmooth


def compute_cams(
    handle: ModelHandle,
    x: torch.Tensor | Sequence[Any],
    layers: str | Sequence[str] | None = None,
    method: str | CamMethod = "gradcam",
    targets: Any = None,
    *,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
    batch_size: int = 16,
    perturbation_batch: int = 64,
    max_channels: int | None = None,
    progress: Progress | None = None,
) -> CamResult:
    """Class-activation maps of ``method`` at every layer in ``layers``, for every image.

    Args:
        handle: from :func:`explain.load_model`.
        x: ``(N, 3, H, W)`` preprocessed tensor, or images (PIL, paths, arrays).
        layers: module paths (default: ``handle.default_layer``), ``"all"`` or patterns such as
            ``"layer4.*"`` (:func:`explain.layers.resolve_layers`); all from one pass.
        method: a name in :data:`METHODS` (spelt loosely) or a :class:`CamMethod`.
        targets: what to explain (see :mod:`explain.targets`): ``None`` = top-1 class.
        eigen_smooth: project contributions onto their first principal component.
        aug_smooth: average over flipped and brightened copies (maps flipped back).
        batch_size: images per forward pass.
        perturbation_batch: perturbed copies per forward pass (Score-CAM, Ablation-CAM).
        max_channels: perturbation methods only, approximate: perturb only the
            ``max_channels`` channels of highest activation variance (others get weight 0).
        progress: ``progress(done, total, message)`` callback.

    Returns:
        A :class:`CamResult`: ``maps[layer]`` (N, H, W) in [0, 1], ``raw[layer]`` (N, h, w),
        ``targets`` (N,), ``probs`` (N, classes); with several targets per image the maps are
        (N, K, H, W) and targets (N, K).

    Raises:
        MethodNotApplicable: the method does not apply to this model (see
            :func:`~explain.cams.compare.compute_methods` for several methods at once).
    """
    cam = check_method(method)
    cam.check(handle)  # a method that cannot apply to this model fails before any work
    x = as_input(handle, x)
    request = CamRequest(
        handle,
        resolve_layers(handle, layers),
        eigen_smooth=eigen_smooth,
        perturbation_batch=perturbation_batch,
        max_channels=max_channels,
    )
    if max_channels is not None:
        if cam.kind != "perturbation":
            which = [m.title for m in METHOD_INFO.values() if m.kind == "perturbation"]
            raise ExplainError(f"max_channels applies to {' and '.join(which)} only.")
        request.note(
            f"approximate: only the {max_channels} channels of highest variance were perturbed."
        )
    strategy = AugSmooth(cam) if aug_smooth else cam
    n, size = len(x), (int(x.shape[-2]), int(x.shape[-1]))
    start = time.perf_counter()
    raws: dict[str, list[torch.Tensor]] = {info.name: [] for info in request.layers}
    pixels: dict[str, list[torch.Tensor]] = {}
    logits, indices, names, multi = [], [], [], False
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        chunk = dataclasses.replace(request, progress=within(progress, lo / n, hi / n, 1000 * n))
        out = strategy.raw_maps(chunk, x[lo:hi], slice_targets(targets, lo, hi, n))
        chunk.settle_constants()
        for name in raws:
            raws[name].append(out.maps[name].float().cpu())
        for name, px in out.pixels.items():
            pixels.setdefault(name, []).append(px.float().cpu())
        logits.append(out.logits.float().cpu())
        indices.append(out.targets.indices)
        names.extend(out.targets.names)
        multi = out.targets.multi
        notify(progress, 1000 * hi, 1000 * n, f"{cam.title}: {hi}/{n} images")
    timings = {"maps": time.perf_counter() - start}

    def keep(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray((t if multi else t[:, 0]).numpy(), dtype=np.float32)

    maps_out, raw_out, pixels_out = {}, {}, {}
    by_size: dict[tuple[int, ...], list[str]] = {}
    for name, parts in raws.items():
        raw = torch.cat(parts) if len(parts) > 1 else parts[0]  # (N, K, h, w)
        raw_out[name] = keep(raw)
        if name in pixels:
            px = torch.cat(pixels[name]).permute(0, 1, 3, 4, 2)  # (N, K, H, W, 3)
            pixels_out[name] = keep(px)
            maps_out[name] = keep(normalize_maps(px.abs().sum(dim=-1)))  # magnitude
        else:
            by_size.setdefault(tuple(raw.shape), []).append(name)
    for shape, group in by_size.items():  # one upsampling per map size, not per layer
        stacked = torch.stack([torch.from_numpy(raw_out[name]) for name in group])
        # Bilinear weights sum to one: finite maps stay finite when upsampled.
        finite = bool(torch.isfinite(stacked).all())
        if not finite:
            stacked = torch.nan_to_num(stacked, nan=0.0, posinf=0.0, neginf=0.0)
        scaled = upsample_normalized(stacked.reshape(-1, *shape[-2:]), size)
        for name, maps in zip(group, scaled.reshape(len(group), -1, *size), strict=True):
            maps_out[name] = np.ascontiguousarray(
                maps.reshape(raw_out[name].shape[:-2] + size).numpy()
            )
    target_idx = np.concatenate(indices)
    for (name, cause), count in request.constant.items():
        request.note(
            f"{cam.title} gave a constant map (shown as all zero) at {name} for {count} of "
            f"{target_idx.size} maps: {cause}."
        )
    probs = torch.softmax(torch.cat(logits), dim=1).numpy()
    timings["total"] = time.perf_counter() - start
    result = CamResult(
        maps_out,
        raw_out,
        target_idx if multi else target_idx[:, 0],
        probs,
        cam.name,
        names,
        pixels=pixels_out,
        timings=timings,
        notes=request.notes,
    )
    pictures, preprocessor = x.detach().clone(), handle.preprocessor
    result.defer_images(lambda: input_pictures(pictures, preprocessor))
    return result
