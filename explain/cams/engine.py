"""``compute_cams``: every requested layer from one forward (and one backward) pass.

Gradient methods hook all chosen layers at once and take ``torch.autograd.grad(score,
activations)``: no weight gradients, no ``.backward()``. Several targets per image share the
forward pass through batched gradients. Hooks live only inside a call, under the model's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ExplainError, LayerError, TargetError
from ..hooks import LayerRecorder
from ..layers import LayerInfo, first_tensor, to_nchw
from ..models import ModelHandle
from ..targets import ResolvedTargets, repeat_targets, resolve_targets, slice_targets
from .core import CamResult, first_component, normalize_maps, upsample
from .methods import METHOD_INFO, METHODS, CamMethod
from .perturbation import ablation_weights, score_weights

Progress = Callable[[int, int, str], None]


class _Pass:
    """What one pass over a batch gives: logits, activations (NCHW) and gradients."""

    def __init__(
        self,
        logits: torch.Tensor,
        acts: dict[str, torch.Tensor],
        grads: dict[str, torch.Tensor | None],
        resolved: ResolvedTargets,
        native: dict[str, torch.Tensor],
    ):
        self.logits = logits
        self.acts = acts  # name -> (n, C, h, w)
        self.grads = grads  # name -> (n, K, C, h, w) or None
        self.resolved = resolved
        self.native = native  # name -> the layer's own output layout, detached


def check_method(method: str) -> CamMethod:
    """The :class:`CamMethod` for a name, spelt loosely ("Grad-CAM++", "score_cam", ...), or a
    clear error listing the methods."""
    by_key = {name.replace("-", ""): name for name in METHODS}
    key = method.lower().replace("++", "pp").replace("_", "").replace("-", "")
    if key not in by_key:
        raise ExplainError(
            f"Unknown method {method!r}.", hint=f"choose one of {', '.join(METHODS)}."
        )
    return METHOD_INFO[by_key[key]]


def _as_input(handle: ModelHandle, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = handle.preprocess(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ExplainError(f"Expected images or a (N, 3, H, W) tensor, got shape {tuple(x.shape)}.")
    return x.float().contiguous()  # a caller's channels-last tensor breaks x.view(...) models


def _layer_infos(handle: ModelHandle, layers: str | Sequence[str] | None) -> list[LayerInfo]:
    if layers is None:
        layers = [handle.default_layer]
    elif isinstance(layers, str):
        layers = [layers]
    if len(layers) == 0:
        raise LayerError("No layer was given.", hint=f"e.g. layers=[{handle.default_layer!r}]")
    names = list(dict.fromkeys(layers))
    return [handle.map_layer(name) for name in names]


def _forward(
    handle: ModelHandle,
    x: torch.Tensor,
    infos: Sequence[LayerInfo],
    targets: Any,
    with_grads: bool,
    extra_inputs: bool = False,
) -> _Pass:
    """One forward pass recording every layer; with ``with_grads``, one backward pass for all
    layers and all targets (batched gradients)."""

    names = [info.name for info in infos]
    model = handle.model
    with handle.lock, LayerRecorder(model, names) as recorder:
        grad_mode = torch.enable_grad() if with_grads else torch.inference_mode()
        with grad_mode:
            inp = x.to(handle.device)
            if with_grads:
                inp = inp.detach().requires_grad_(True)  # a graph even when weights are frozen
            logits = first_tensor(model(inp))
            if logits is None or logits.ndim != 2:
                raise ExplainError(f"{handle.name} did not return (N, classes) logits.")
            resolved = resolve_targets(targets, logits.detach(), handle.labels, handle.class_index)
            missing = [n for n in names if n not in recorder.outputs]
            if missing:
                raise LayerError(f"Layer(s) {', '.join(missing)} did not run in the forward pass.")
            native = {n: recorder.outputs[n] for n in names}
            grads: dict[str, torch.Tensor | None] = dict.fromkeys(names)
            if with_grads:
                scores = resolved.score_fn(logits).float()
                wrt = [native[n] for n in names] + ([inp] if extra_inputs else [])
                raw_grads = _batched_grads(scores, wrt)
                for n, g in zip(names, raw_grads, strict=False):
                    grads[n] = g
                if extra_inputs:
                    grads["<input>"] = raw_grads[-1]
    acts = {
        n: to_nchw(native[n].detach(), info).float() for n, info in zip(names, infos, strict=True)
    }
    for n, info in zip(names, infos, strict=True):
        g = grads[n]
        if g is not None:  # (K, n, ...) -> (n, K, C, h, w)
            k, b = g.shape[:2]
            g = to_nchw(g.reshape(k * b, *g.shape[2:]), info).float()
            grads[n] = g.reshape(k, b, *g.shape[1:]).transpose(0, 1)
    return _Pass(
        logits.detach().float(), acts, grads, resolved, {n: t.detach() for n, t in native.items()}
    )


def _batched_grads(scores: torch.Tensor, wrt: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """d scores[:, k] / d wrt for every k, as ``(K, *wrt.shape)``; one backward when K == 1,
    one vectorised backward (``is_grads_batched``) for several."""
    k = scores.shape[1]
    if k == 1:
        grads = torch.autograd.grad(scores[:, 0].sum(), wrt, allow_unused=True)
        return [None if g is None else g[None] for g in grads]
    eye = torch.eye(k, device=scores.device, dtype=scores.dtype)
    grad_outputs = eye[:, None, :].expand(k, scores.shape[0], k)
    try:
        grads = torch.autograd.grad(
            scores,
            wrt,
            grad_outputs=grad_outputs,
            is_grads_batched=True,
            allow_unused=True,
            retain_graph=True,
        )
        return list(grads)
    except RuntimeError:  # an op without a batching rule: one backward per target instead
        per_target = [
            torch.autograd.grad(scores[:, j].sum(), wrt, allow_unused=True, retain_graph=True)
            for j in range(k)
        ]
        return [
            None if per_target[0][i] is None else torch.stack([p[i] for p in per_target])
            for i in range(len(wrt))
        ]


def _aggregate(contrib: torch.Tensor, eigen: bool) -> torch.Tensor:
    """(B, C, h, w) -> ReLU(sum over C) or ReLU(first principal component), (B, h, w)."""
    return torch.relu(first_component(contrib) if eigen else contrib.sum(dim=1))


def _raw_from_contribution(
    p: _Pass, method: CamMethod, eigen_smooth: bool, notes: list[str]
) -> dict[str, torch.Tensor]:
    out = {}
    k = p.resolved.k
    for name, acts in p.acts.items():
        n, c, h, w = acts.shape
        grads = p.grads.get(name)
        if method.needs_grad and grads is None:
            notes.append(f"the score does not depend on layer {name}: its map is zero.")
            out[name] = torch.zeros(n, k, h, w)
            continue
        a = acts[:, None].expand(n, k, c, h, w).reshape(n * k, c, h, w)
        g = None if grads is None else grads.reshape(n * k, c, h, w)
        contrib = method.contribution(a, g)
        out[name] = _aggregate(contrib, method.eigen or eigen_smooth).reshape(n, k, h, w)
    return out


def _head(handle: ModelHandle) -> tuple[str, torch.nn.Linear]:
    linear = [
        i
        for i in handle.layers
        if i.calls and isinstance(dict(handle.model.named_modules())[i.name], torch.nn.Linear)
    ]
    if not linear:
        raise ExplainError(
            f"CAM needs a linear classifier head; {handle.name} has none.",
            hint="use method='gradcam', which generalises CAM to any head.",
        )
    name = max(linear, key=lambda i: i.order).name
    return name, dict(handle.model.named_modules())[name]


def _cam_raw(
    handle: ModelHandle, x: torch.Tensor, infos: Sequence[LayerInfo], targets: Any
) -> tuple[_Pass, dict[str, torch.Tensor]]:
    """Zhou et al.: the head's weights on the feature maps; checked to be GAP + linear."""
    head_name, head = _head(handle)
    captured: dict[str, torch.Tensor] = {}

    def keep_input(_m: Any, inputs: Any, _out: Any) -> None:
        captured["x"] = first_tensor(inputs).detach()

    hook = head.register_forward_hook(keep_input)
    try:
        p = _forward(handle, x, infos, targets, with_grads=False)
    finally:
        hook.remove()
    if not (p.resolved.indices >= 0).all() or p.resolved.row_independent:
        raise TargetError(
            "CAM explains class indices only; use method='gradcam' for custom scores."
        )
    weight = head.weight.detach().float().cpu()
    out = {}
    for name, acts in p.acts.items():
        pooled = acts.mean(dim=(2, 3))
        head_in = captured["x"].float().cpu().reshape(len(acts), -1)
        if head_in.shape != pooled.shape or not torch.allclose(
            head_in, pooled, rtol=1e-3, atol=1e-4 * max(1.0, float(pooled.abs().max()))
        ):
            raise ExplainError(
                f"CAM needs the classifier {head_name!r} to read the global average of layer "
                f"{name!r} directly, and it does not.",
                hint="pick the last feature layer before global pooling (e.g. "
                f"{handle.default_layer!r}) or use method='gradcam', which generalises CAM.",
            )
        idx = torch.as_tensor(p.resolved.indices)
        w = weight[idx]  # (n, K, C)
        out[name] = torch.einsum("nkc,nchw->nkhw", w, acts)  # no ReLU, as in Zhou et al.
    return p, out


def _perturbation_raw(
    handle: ModelHandle,
    x: torch.Tensor,
    p: _Pass,
    method: CamMethod,
    infos: Sequence[LayerInfo],
    eigen_smooth: bool,
    batch_size: int,
    max_channels: int | None,
    progress: Progress | None,
    notes: list[str],
) -> dict[str, torch.Tensor]:
    out = {}
    n = len(x)
    total = n * len(infos)
    step = 0
    for info in infos:
        acts = p.acts[info.name]
        maps = []
        for i in range(n):
            scorer = p.resolved.scorer(i)

            def report(
                done: int, todo: int, _i: int = i, _name: str = info.name, _step: int = step
            ) -> None:
                if progress is not None:
                    progress(
                        _step * 1000 + int(1000 * done / max(todo, 1)),
                        total * 1000,
                        f"{method.title} at {_name}, image {_i + 1}/{n}",
                    )

            if method.name == "scorecam":
                weights = score_weights(
                    handle, x[i : i + 1], acts[i], scorer, batch_size, max_channels, report
                )
            else:
                weights, how = ablation_weights(
                    handle,
                    x[i : i + 1],
                    info,
                    p.native[info.name][i : i + 1],
                    acts[i],
                    scorer,
                    batch_size,
                    max_channels,
                    report,
                    logits=p.logits[i : i + 1],
                )
                if how not in notes:
                    notes.append(how)
            contrib = weights[:, :, None, None] * acts[i][None]  # (K, C, h, w)
            maps.append(_aggregate(contrib, eigen_smooth))
            step += 1
        out[info.name] = torch.stack(maps)
    return out


def _raw_maps(
    handle: ModelHandle,
    x: torch.Tensor,
    infos: Sequence[LayerInfo],
    method: CamMethod,
    targets: Any,
    eigen_smooth: bool,
    batch_size: int,
    max_channels: int | None,
    progress: Progress | None,
    notes: list[str],
) -> tuple[_Pass, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Raw maps ``(n, K, h, w)`` per layer for one chunk of images (and pixel maps)."""
    from .guided import fullgrad_raw, guided_backprop_tensor

    pixels: dict[str, torch.Tensor] = {}
    if method.name == "cam":
        p, raw = _cam_raw(handle, x, infos, targets)
    elif method.name == "fullgrad":
        p, full = fullgrad_raw(handle, x, infos, targets)
        raw = dict.fromkeys((info.name for info in infos), full)
    elif method.kind == "perturbation":
        p = _forward(handle, x, infos, targets, with_grads=False)
        raw = _perturbation_raw(
            handle, x, p, method, infos, eigen_smooth, batch_size, max_channels, progress, notes
        )
    elif method.name == "guided-gradcam":
        p = _forward(handle, x, infos, targets, with_grads=True)
        raw = _raw_from_contribution(p, METHOD_INFO["gradcam"], eigen_smooth, notes)
        gb = guided_backprop_tensor(handle, x, p.resolved)  # (n, K, 3, H, W)
        for name, r in raw.items():
            # Scaled to a maximum of 1, not min-max: the product keeps Grad-CAM's zeros.
            up = upsample(r, tuple(x.shape[-2:]))
            peak = up.flatten(-2).max(dim=-1).values[..., None, None]
            pixels[name] = (
                gb * (up / torch.where(peak > 0, peak, torch.ones_like(peak)))[:, :, None]
            )
    else:
        p = _forward(handle, x, infos, targets, with_grads=method.needs_grad)
        raw = _raw_from_contribution(p, method, eigen_smooth, notes)
    return p, raw, pixels


# Why a map can come out constant (normalised to all zero), most specific first.
_ZERO_ACTS = "the layer's activations are all zero for these images (a ReLU that never fires?)"
_FLAT_ACTS = "the layer's activations are the same at every position"
_ZERO_GRAD = (
    "the gradient of the target score at this layer is zero: the score is saturated or does "
    "not depend on the layer"
)
_NEGATIVE = (
    "the weighted sum of the channels is <= 0 at every position, so the ReLU leaves nothing: "
    "the activations count against the class (often a layer before its ReLU) or every channel "
    "weight is zero"
)


def _constant_causes(
    p: _Pass, raw: dict[str, torch.Tensor], method: CamMethod
) -> dict[tuple[str, str], int]:
    """``(layer, likely cause) -> count`` of the constant raw maps ``(n, K, h, w)`` of a chunk."""
    counts: dict[tuple[str, str], int] = {}
    for name, r in raw.items():
        flat = torch.nan_to_num(r.float()).flatten(2)
        constant = (flat.max(dim=-1).values - flat.min(dim=-1).values) <= 0  # (n, K)
        grads = p.grads.get(name)
        if not constant.any() or name not in p.acts or (method.needs_grad and grads is None):
            continue  # a layer without gradient already has its note
        for i, k in constant.nonzero().tolist():
            acts = p.acts[name][i]  # (C, h, w)
            if not acts.any():
                cause = _ZERO_ACTS
            elif bool((acts == acts.flatten(1)[:, :1, None]).all()):
                cause = _FLAT_ACTS
            elif method.needs_grad and grads is not None and not grads[i, k].any():
                cause = _ZERO_GRAD
            else:
                cause = _NEGATIVE
            counts[(name, cause)] = counts.get((name, cause), 0) + 1
    return counts


def _augmentations(x: torch.Tensor) -> list[tuple[torch.Tensor, bool]]:
    """Test-time augmentations: identity, horizontal flip, and both at 1.1x intensity."""
    flipped = torch.flip(x, dims=[-1])
    return [(x, False), (flipped, True), (x * 1.1, False), (flipped * 1.1, True)]


def compute_cams(
    handle: ModelHandle,
    x: torch.Tensor | Sequence[Any],
    layers: str | Sequence[str] | None = None,
    method: str = "gradcam",
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
        layers: module paths (default: ``handle.default_layer``); all from one pass.
        method: one of :data:`METHODS`.
        targets: what to explain (see :mod:`explain.targets`): ``None`` = top-1 class.
        eigen_smooth: project contributions onto their first principal component.
        aug_smooth: average over flipped and brightened copies (maps flipped back).
        batch_size: images per forward pass.
        perturbation_batch: perturbed copies per forward pass (Score-CAM, Ablation-CAM).
        max_channels: Score-CAM / Ablation-CAM only, approximate: perturb only the
            ``max_channels`` channels of highest activation variance (others get weight 0).
        progress: ``progress(done, total, message)`` callback.

    Returns:
        A :class:`CamResult`: ``maps[layer]`` (N, H, W) in [0, 1], ``raw[layer]`` (N, h, w),
        ``targets`` (N,), ``probs`` (N, classes); with several targets per image the maps are
        (N, K, H, W) and targets (N, K).
    """
    info = check_method(method)
    x = _as_input(handle, x)
    infos = _layer_infos(handle, layers)
    n, size = len(x), (int(x.shape[-2]), int(x.shape[-1]))
    notes: list[str] = []
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if max_channels is not None:
        if info.kind != "perturbation":
            raise ExplainError("max_channels applies to Score-CAM and Ablation-CAM only.")
        notes.append(
            f"approximate: only the {max_channels} channels of highest variance were perturbed."
        )

    if aug_smooth:
        if info.kind == "pixel":
            raise ExplainError("aug_smooth is not available for pixel-level methods.")
        base = handle.logits(x)
        resolved = resolve_targets(
            slice_targets(targets, 0, n, n) if targets is not None else None,
            base,
            handle.labels,
            handle.class_index,
        )
        augmented = _augmentations(x)
        fixed = targets if resolved.row_independent else repeat_targets(resolved, len(augmented))
        big = torch.cat([a for a, _ in augmented])
        inner = compute_cams(
            handle,
            big,
            [i.name for i in infos],
            info.name,
            fixed,
            eigen_smooth=eigen_smooth,
            batch_size=batch_size,
            perturbation_batch=perturbation_batch,
            max_channels=max_channels,
            progress=progress,
        )
        raw_out: dict[str, np.ndarray] = {}
        for name, r in inner.raw.items():
            parts = np.split(r, len(augmented))
            parts = [
                np.flip(part, axis=-1) if flip else part
                for part, (_, flip) in zip(parts, augmented, strict=True)
            ]
            raw_out[name] = np.mean(parts, axis=0).astype(np.float32)
        maps_out = {
            name: normalize_maps(upsample(torch.from_numpy(r), size)).numpy()
            for name, r in raw_out.items()
        }
        probs = torch.softmax(base, dim=1).numpy()
        targets_out = resolved.indices if resolved.multi else resolved.indices[:, 0]
        timings["total"] = time.perf_counter() - start
        return CamResult(
            maps_out,
            raw_out,
            targets_out,
            probs,
            info.name,
            resolved.names,
            timings=timings,
            notes=[*notes, "averaged over 4 test-time augmentations (flip x brightness)."],
        )

    raws: dict[str, list[torch.Tensor]] = {i.name: [] for i in infos}
    pixels: dict[str, list[torch.Tensor]] = {}
    logits, indices, names, multi = [], [], [], False
    constant: dict[tuple[str, str], int] = {}
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        p, raw, pix = _raw_maps(
            handle,
            x[lo:hi],
            infos,
            info,
            slice_targets(targets, lo, hi, n),
            eigen_smooth,
            perturbation_batch,
            max_channels,
            progress,
            notes,
        )
        for name, r in raw.items():
            raws[name].append(r.float().cpu())
        if info.kind != "pixel" and info.name != "fullgrad":
            for key, count in _constant_causes(p, raw, info).items():
                constant[key] = constant.get(key, 0) + count
        for name, px in pix.items():
            pixels.setdefault(name, []).append(px.float().cpu())
        logits.append(p.logits.cpu())
        indices.append(p.resolved.indices)
        names.extend(p.resolved.names)
        multi = p.resolved.multi
        if progress is not None and info.kind != "perturbation":
            progress(hi, n, f"{info.title}: {hi}/{n} images")
    timings["maps"] = time.perf_counter() - start
    target_idx = np.concatenate(indices)
    for (name, cause), count in constant.items():
        notes.append(
            f"{info.title} gave a constant map (shown as all zero) at {name} for {count} of "
            f"{target_idx.size} maps: {cause}."
        )
    maps_out, raw_out, pixels_out = {}, {}, {}
    for name, parts in raws.items():
        r = torch.cat(parts)  # (N, K, h, w)
        up = normalize_maps(upsample(r, size)) if info.name != "fullgrad" else normalize_maps(r)
        raw_out[name] = (r if multi else r[:, 0]).numpy().astype(np.float32)
        maps_out[name] = (up if multi else up[:, 0]).numpy().astype(np.float32)
        if name in pixels:
            px = torch.cat(pixels[name]).permute(0, 1, 3, 4, 2)  # (N, K, H, W, 3)
            pixels_out[name] = (px if multi else px[:, 0]).numpy().astype(np.float32)
            up = normalize_maps(px.abs().sum(dim=-1))  # the map of a pixel method: magnitude
            maps_out[name] = (up if multi else up[:, 0]).numpy().astype(np.float32)
    probs = torch.softmax(torch.cat(logits), dim=1).numpy()
    timings["total"] = time.perf_counter() - start
    return CamResult(
        maps_out,
        raw_out,
        target_idx if multi else target_idx[:, 0],
        probs,
        info.name,
        names,
        pixels=pixels_out,
        timings=timings,
        notes=notes,
    )
