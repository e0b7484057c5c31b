"""Gradient-free channel weights by perturbation: Score-CAM and Ablation-CAM.

Both run many forward passes, in batches, with a progress callback; both skip work that cannot
change the result, so the map equals the plain computation:

- Score-CAM: channels whose upsampled activation is constant give an all-zero mask, hence the
  same masked input; it is scored once and shared.
- Ablation-CAM: zeroing an all-zero channel changes nothing (weight exactly 0), so it is not run.
  Only the part of the network after the layer sees the batch of ablated copies: the part before
  it runs with batch 1 and a forward hook returns the copies. Architectures that reuse earlier
  tensors after the layer are detected (the result is checked against the plain computation on
  the first batch) and then fall back to re-running the whole network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..hooks import Hooks, first_tensor
from ..layers import LayerInfo
from ..models import ModelHandle
from ..progress import notify
from .base import CamMethod, CamRequest, RawMaps
from .core import upsample, weighted_maps
from .forward import run_pass

Scorer = Callable[[torch.Tensor], torch.Tensor]
Report = Callable[[int, int], None]


def _top_variance(acts: torch.Tensor, candidates: list[int], limit: int | None) -> list[int]:
    if limit is None or limit >= len(candidates):
        return candidates
    variance = acts.flatten(1).var(dim=1)
    order = sorted(candidates, key=lambda k: -float(variance[k]))
    return sorted(order[:limit])


def score_weights(
    handle: ModelHandle,
    x1: torch.Tensor,
    acts: torch.Tensor,
    scorer: Scorer,
    batch_size: int,
    max_channels: int | None,
    report: Report,
) -> torch.Tensor:
    """Score-CAM weights ``(K, C)``: softmax over channels of the target score of the input
    masked by each normalised, upsampled activation map.

    Args:
        x1: ``(1, 3, H, W)`` the image.
        acts: ``(C, h, w)`` its activations at the layer.
        scorer: logits ``(B, classes) -> (B, K)`` target scores.
    """
    c = acts.shape[0]
    # Corner-aligned, as in the widely used pytorch-grad-cam, so masks (and maps) agree with it.
    up = upsample(acts.float(), tuple(x1.shape[-2:]), align_corners=True)  # (C, H, W)
    low = up.flatten(1).min(dim=1).values
    high = up.flatten(1).max(dim=1).values
    masks = (up - low[:, None, None]) / (high - low + 1e-8)[:, None, None]
    constant = (high - low) == 0
    chosen = _top_variance(acts, list(range(c)), max_channels)
    varying = [k for k in chosen if not constant[k]]
    shared = [k for k in chosen if constant[k]]
    jobs = varying + ([shared[0]] if shared else [])  # one forward for all constant channels
    scores: dict[int, torch.Tensor] = {}
    device = handle.device
    x_dev = x1.to(device)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        batch = x_dev * masks[chunk].to(device)[:, None]
        with handle.lock, Hooks(handle.model).fast_pooling(), torch.inference_mode():
            out = scorer(first_tensor(handle.model(batch)).float()).cpu()
        for j, k in enumerate(chunk):
            scores[k] = out[j]
        report(min(start + batch_size, len(jobs)), len(jobs))
    for k in shared[1:]:
        scores[k] = scores[shared[0]]
    stacked = torch.stack([scores[k] for k in chosen])  # (C', K)
    weights = torch.zeros(stacked.shape[1], c)
    weights[:, chosen] = torch.softmax(stacked, dim=0).T
    return weights


def _zero_channels(copies: torch.Tensor, channels: list[int], info: LayerInfo) -> torch.Tensor:
    """Copy ``j`` gets channel ``channels[j]`` set to zero, in the layer's own layout."""
    rows = torch.arange(len(channels), device=copies.device)
    cols = torch.as_tensor(channels, device=copies.device)
    if info.layout == "nchw":
        copies[rows, cols] = 0
    elif info.layout == "nhwc":
        copies[rows, :, :, cols] = 0
    else:  # tokens: the patch tokens' feature, prefix tokens untouched
        patches = copies[:, info.prefix_tokens :]
        patches[rows, :, cols] = 0
    return copies


def _run_ablated(
    handle: ModelHandle,
    x1: torch.Tensor,
    info: LayerInfo,
    native: torch.Tensor,
    channels: list[int],
    whole: bool,
) -> torch.Tensor:
    """Logits of the model with each of ``channels`` zeroed (one copy per channel).

    ``whole=False``: the input stays batch 1 and the layer's hook returns the batch of copies,
    so only the layers after it process the batch. ``whole=True``: the plain computation.
    """
    copies = _zero_channels(native.expand(len(channels), *native.shape[1:]).clone(), channels, info)
    # Only the call whose output the CAM describes (the last one) is replaced.
    hooks = Hooks(handle.model).fast_pooling()
    hooks.replace(info.name, lambda _t: copies, call=max(info.calls, 1))
    with hooks:
        inp = x1.expand(len(channels), *x1.shape[1:]) if whole else x1
        return first_tensor(handle.model(inp)).float()


#: Memory for one batch of ablated copies on the shortcut path (only the layers after the
#: ablated one see the batch, so it can be much larger than ``batch_size``).
FAST_CHUNK_BYTES = 256 * 2**20


def _fast_path_agrees(
    handle: ModelHandle,
    x1: torch.Tensor,
    info: LayerInfo,
    native: torch.Tensor,
    chunk: list[int],
    fast: torch.Tensor,
) -> bool:
    """Check the shortcut against the plain computation on two of its channels (one pass)."""
    if fast.shape[0] != len(chunk):
        return False
    picks = sorted({0, len(chunk) - 1})
    plain = _run_ablated(handle, x1, info, native, [chunk[j] for j in picks], whole=True)
    return all(
        torch.allclose(fast[j], plain[n], rtol=1e-3, atol=1e-4 * (1 + float(plain[n].abs().max())))
        for n, j in enumerate(picks)
    )


def ablation_weights(
    handle: ModelHandle,
    x1: torch.Tensor,
    info: LayerInfo,
    native: torch.Tensor,
    acts: torch.Tensor,
    scorer: Scorer,
    batch_size: int,
    max_channels: int | None,
    report: Report,
    logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, str]:
    """Ablation-CAM weights ``(K, C)``: relative drop of the target score when a channel is
    zeroed, ``(S - S_k) / S``.

    Args:
        x1: ``(1, 3, H, W)`` the image.
        native: ``(1, ...)`` the layer's output in its own layout.
        acts: ``(C, h, w)`` the same output as a map.
        batch_size: ablated copies per pass when the whole network must re-run.
        logits: ``(1, classes)`` the model's output for ``x1``, when already known.

    Returns:
        (weights, a note saying which computation ran).
    """
    c = acts.shape[0]
    device = handle.device
    x_dev, native = x1.to(device), native.to(device)
    active = [k for k in range(c) if bool(acts[k].abs().max() > 0)]
    chosen = _top_variance(acts, active, max_channels)
    per_copy = native[0].numel() * native.element_size()
    fast_chunk = max(batch_size, FAST_CHUNK_BYTES // max(per_copy, 1))
    with handle.lock, torch.inference_mode():
        if logits is None:
            logits = first_tensor(handle.model(x_dev))
        original = scorer(logits.to(device).float()).cpu()[0]  # (K,)
        whole = False
        ablated: dict[int, torch.Tensor] = {}
        start = 0
        while start < len(chosen):
            chunk = chosen[start : start + (batch_size if whole else fast_chunk)]
            if not whole and start == 0:
                try:
                    out = _run_ablated(handle, x_dev, info, native, chunk, whole=False)
                    ok = _fast_path_agrees(handle, x_dev, info, native, chunk, out)
                except RuntimeError:  # e.g. a concatenation with an earlier batch-1 tensor
                    ok = False
                if not ok:
                    whole = True
                    continue
            else:
                out = _run_ablated(handle, x_dev, info, native, chunk, whole=whole)
            scores = scorer(out).cpu()
            for j, k in enumerate(chunk):
                ablated[k] = scores[j]
            start += len(chunk)
            report(start, len(chosen))
    original = original.clone()  # out of inference mode
    weights = torch.zeros(len(original), c)
    safe = torch.where(original.abs() > 1e-12, original, torch.ones_like(original))
    for k, score in ablated.items():
        weights[:, k] = (original - score.clone()) / safe
    how = (
        f"Ablation-CAM re-ran the whole network for the ablated copies at {info.name} "
        "(the architecture reuses earlier tensors after it)."
        if whole
        else f"Ablation-CAM re-ran only the layers after {info.name}."
    )
    return weights, how


def _per_image(
    request: CamRequest,
    x: torch.Tensor,
    targets: Any,
    weights_of: Callable[..., torch.Tensor],
    title: str,
) -> RawMaps:
    """The shared loop of the perturbation methods: one forward pass for the activations and
    the targets, then channel weights image by image and layer by layer."""
    p = run_pass(request.handle, x, request.layers, targets, grads=False)
    n, steps = len(x), len(x) * len(request.layers)
    maps = {}
    for li, info in enumerate(request.layers):
        acts = p.acts[info.name]
        per_image = []
        for i in range(n):
            step = li * n + i
            message = f"{title} at {info.name}, image {i + 1}/{n}"

            def report(done: int, todo: int, _step: int = step, _message: str = message) -> None:
                notify(
                    request.progress,
                    1000 * _step + 1000 * done // max(todo, 1),
                    1000 * steps,
                    _message,
                )

            weights = weights_of(request, x[i : i + 1], info, p, i, report)  # (K, C)
            per_image.append(weighted_maps(weights[None], acts[i : i + 1], request.eigen_smooth)[0])
        maps[info.name] = torch.stack(per_image)
        request.check_constant(info.name, maps[info.name], acts)
    return RawMaps(p.logits, p.targets, maps)


@dataclass(frozen=True)
class ScoreCam(CamMethod):
    """Score-CAM: channel weights from the scores of the input masked by each channel."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        def weights_of(req, x1, info, p, i, report):
            return score_weights(
                req.handle,
                x1,
                p.acts[info.name][i],
                p.targets.scorer(i),
                req.perturbation_batch,
                req.max_channels,
                report,
            )

        return _per_image(request, x, targets, weights_of, self.title)


@dataclass(frozen=True)
class AblationCam(CamMethod):
    """Ablation-CAM: channel weights from the score drop when each channel is zeroed."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        def weights_of(req, x1, info, p, i, report):
            weights, how = ablation_weights(
                req.handle,
                x1,
                info,
                p.native[info.name][i : i + 1],
                p.acts[info.name][i],
                p.targets.scorer(i),
                req.perturbation_batch,
                req.max_channels,
                report,
                logits=p.logits[i : i + 1],
            )
            req.note(how)
            return weights

        return _per_image(request, x, targets, weights_of, self.title)
