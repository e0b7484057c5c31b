"""Layers of a model: what each module outputs, how to turn it into a spatial map, and which
layer Grad-CAM should use by default.

Everything is found from one dry forward pass with a hook on every module (and, for
transformers, one backward pass to see where patch tokens still receive gradient).
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import LayerError
from .hooks import Hooks, first_tensor

if TYPE_CHECKING:  # the handle is built on this module: a type only, no import at run time
    from .models import ModelHandle

#: Module types that only pool or re-arrange: never a default CAM layer.
_POOL_OR_LAYOUT = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.LPPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
)
_MAX_PREFIX_TOKENS = 8  # class + distillation + up to 6 register tokens


@dataclass(frozen=True)
class LayerInfo:
    """One module of a model and what it outputs (batch dimension left out).

    Attributes:
        name: module path as in ``model.named_modules()``, e.g. ``"layer4.2"``.
        kind: ``"spatial"`` (a map, NCHW or channels-last NHWC), ``"tokens"`` (a token
            sequence that maps onto the input grid), ``"vector"``, ``"other"`` or ``"unused"``
            (not called by ``forward``).
        shape: output shape without the batch dimension, e.g. ``(512, 7, 7)`` or ``(197, 768)``.
        type: the module's class name.
        layout: ``"nchw"``, ``"nhwc"`` or ``"nlc"`` for map-like outputs, else ``None``.
        grid: ``(h, w)`` of the map for spatial and token layers.
        channels: channels (or token width) of a map.
        prefix_tokens: tokens before the patch grid (class, distillation, register tokens).
        order: position of the call's completion in the forward pass (depth order).
        calls: how many times the module ran in one forward pass.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    type: str = ""
    layout: str | None = None
    grid: tuple[int, int] | None = None
    channels: int | None = None
    prefix_tokens: int = 0
    order: int = -1
    calls: int = 0
    plain: bool = True  # the module returns a tensor (not a tuple or a ModelOutput)

    @property
    def has_map(self) -> bool:
        """True when a class-activation map can be computed here (a grid larger than 1x1)."""
        return (
            self.kind in ("spatial", "tokens")
            and self.grid is not None
            and (self.grid[0] * self.grid[1] > 1)
        )

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1

    def describe(self) -> str:
        """Short text such as ``"layer4 (Sequential) 512x7x7"``."""
        if self.has_map and self.grid is not None:
            what = f"{self.channels}x{self.grid[0]}x{self.grid[1]}"
            if self.kind == "tokens":
                what += f" tokens (+{self.prefix_tokens})" if self.prefix_tokens else " tokens"
        else:
            what = "x".join(str(s) for s in self.shape) or "-"
            what += f" {self.kind}"
        return f"{self.name} ({self.type}) {what}"


def _token_grid(length: int, input_hw: tuple[int, int]) -> tuple[int, tuple[int, int]] | None:
    """Split ``length`` tokens into (prefix tokens, patch grid) matching the input's aspect."""
    in_h, in_w = input_hw
    for prefix in range(0, _MAX_PREFIX_TOKENS + 1):
        n = length - prefix
        if n < 1:
            break
        gh = math.isqrt(round(n * in_h / in_w))
        for cand in (gh - 1, gh, gh + 1):
            if cand >= 1 and n % cand == 0:
                gw = n // cand
                if abs(cand / gw - in_h / in_w) < 1e-6 and in_h % cand == 0 and in_w % gw == 0:
                    return prefix, (cand, gw)
    return None


def _same_stride(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """(h, w) looks like a downsampled copy of the input (same stride along both axes)."""
    in_h, in_w = input_hw
    return h >= 1 and w >= 1 and abs(in_h / h - in_w / w) <= 0.1 * max(in_h / h, in_w / w)


def _channels_last(module: nn.Module, shape: tuple[int, ...], input_hw: tuple[int, int]) -> bool:
    """Whether a 4-D output ``(a, b, c)`` (no batch) is laid out as H, W, C."""
    a, b, c = shape
    nchw = _same_stride(b, c, input_hw)
    nhwc = _same_stride(a, b, input_hw)
    if nhwc and not nchw:
        return True
    if nhwc and nchw:
        normalised = getattr(module, "normalized_shape", None)
        if isinstance(module, nn.LayerNorm) and normalised and normalised[-1] == c != a:
            return True
        return "swin" in type(module).__name__.lower() or type(module).__name__ == "PatchMerging"
    return False


def classify_output(
    name: str,
    module: nn.Module,
    output: torch.Tensor | None,
    input_hw: tuple[int, int],
    calls: int,
    order: int,
) -> LayerInfo:
    """Describe one module's (last) output."""
    kind_name = type(module).__name__
    if output is None:
        kind = "unused" if calls == 0 else "other"
        return LayerInfo(name, kind, (), kind_name, order=order, calls=calls)
    shape = tuple(int(s) for s in output.shape[1:])
    common = {"type": kind_name, "order": order, "calls": calls}
    if output.is_floating_point() and len(shape) == 3:
        if _channels_last(module, shape, input_hw):
            h, w, c = shape
            return LayerInfo(
                name, "spatial", shape, layout="nhwc", grid=(h, w), channels=c, **common
            )
        c, h, w = shape
        return LayerInfo(name, "spatial", shape, layout="nchw", grid=(h, w), channels=c, **common)
    if output.is_floating_point() and len(shape) == 2:
        split = _token_grid(shape[0], input_hw)
        if split is not None:
            prefix, grid = split
            return LayerInfo(
                name,
                "tokens",
                shape,
                layout="nlc",
                grid=grid,
                channels=shape[1],
                prefix_tokens=prefix,
                **common,
            )
        return LayerInfo(name, "other", shape, **common)
    if len(shape) == 1:
        return LayerInfo(name, "vector", shape, **common)
    return LayerInfo(name, "other", shape, **common)


def to_nchw(activation: torch.Tensor, info: LayerInfo) -> torch.Tensor:
    """Bring a layer's output to ``(N, C, h, w)``: channels-last maps are permuted, token
    sequences lose their prefix tokens and are reshaped to the patch grid."""
    if info.kind not in ("spatial", "tokens") or info.grid is None:
        raise ValueError(f"layer {info.name!r} has no spatial output ({info.kind}).")
    if info.layout == "nchw":
        return activation
    if info.layout == "nhwc":
        return activation.permute(0, 3, 1, 2)
    h, w = info.grid
    patches = activation[:, info.prefix_tokens :, :]
    return patches.reshape(activation.shape[0], h, w, activation.shape[-1]).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class Probe:
    """What one dry run found: every layer, the default CAM layer, the logits' width."""

    layers: tuple[LayerInfo, ...]
    default_layer: str | None
    num_outputs: int

    @functools.cached_property
    def by_name(self) -> dict[str, LayerInfo]:
        """``name -> LayerInfo`` (built once)."""
        return {info.name: info for info in self.layers}


def _is_norm(module: nn.Module) -> bool:
    """A normalisation layer (not a linear or conv layer fused with one, as LeViT's
    ``LinearNorm``)."""
    if isinstance(module, nn.LayerNorm | nn.GroupNorm):
        return True
    return "norm" in type(module).__name__.lower() and not any(
        isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) for m in module.modules()
    )


def _default_cnn_layer(
    model_modules: dict[str, nn.Module],
    layers: Sequence[LayerInfo],
    outputs: dict[str, Any],
) -> str | None:
    """Last map-like output before pooling; among modules that return that very tensor, the
    shallowest one that returns a plain tensor (``layer4`` rather than ``layer4.1.relu``)."""
    by_tensor: dict[int, list[LayerInfo]] = {}
    for info in layers:
        tensor = first_tensor(outputs.get(info.name))
        if tensor is not None:
            by_tensor.setdefault(id(tensor), []).append(info)
    for info in sorted(layers, key=lambda i: i.order, reverse=True):
        if info.kind != "spatial" or info.grid is None or info.grid[0] * info.grid[1] <= 1:
            continue
        group = by_tensor[id(first_tensor(outputs[info.name]))]
        # An Identity (timm's ``drop``, ``se``) passes its input on: it does not make the tensor
        # a pooled one, and its name is not the layer's.
        own = [g for g in group if not isinstance(model_modules[g.name], nn.Identity)]
        if not own or any(_is_pool_or_layout(model_modules[g.name]) for g in own):
            continue
        plain = [g for g in own if isinstance(outputs[g.name], torch.Tensor)] or own
        return min(plain, key=lambda g: (g.depth, -g.order)).name
    return None


def _is_pool_or_layout(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, _POOL_OR_LAYOUT) or name in ("Permute", "Flatten") or "Pool" in name


def _reaching_head(
    model: nn.Module, x: torch.Tensor, layers: Sequence[LayerInfo], candidates: Sequence[LayerInfo]
) -> str | None:
    """The first of ``candidates`` whose map (patch tokens, for token layers) receives gradient
    from the classifier, or ``None``.

    The test differentiates a random projection of the head's input (not the logits, which a
    zero-initialised head would make constant) with respect to every candidate at once.
    """
    modules = dict(model.named_modules())
    heads = [i for i in layers if i.calls and isinstance(modules[i.name], nn.Linear)]
    head = max(heads, key=lambda i: i.order).name if heads else None
    hooks = Hooks(model).record([i.name for i in candidates], copy=False)
    if head is not None:
        hooks.record_inputs([head], detach=False)
    with hooks, torch.enable_grad():
        inp = x.detach().clone().requires_grad_(True)
        logits = first_tensor(model(inp))
    features = hooks.inputs.get(head, logits) if head is not None else logits
    weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(0))
    recorded = [i for i in candidates if i.name in hooks.outputs]
    grads = torch.autograd.grad(
        (features.float() * weights.to(features.device)).sum(),
        [hooks.outputs[i.name] for i in recorded],
        allow_unused=True,
    )
    for info, grad in zip(recorded, grads, strict=True):
        if grad is None:
            continue
        patches = grad[:, info.prefix_tokens :]
        if float(patches.abs().sum()) > 1e-6 * float(grad.abs().sum()):
            return info.name
    return None


def _default_token_layer(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[LayerInfo],
) -> str | None:
    """The last normalisation whose patch tokens still reach the classifier.

    In ViT-like models the head reads the class token only, so patch tokens after the last
    attention carry no gradient; the last block's first norm is where they still do.
    """
    modules = dict(model.named_modules())
    tokens = [i for i in layers if i.kind == "tokens" and i.has_map]  # not a lone class token
    candidates = [i for i in tokens if _is_norm(modules[i.name])] or tokens
    candidates = sorted(candidates, key=lambda i: i.order, reverse=True)
    if not candidates:
        return None
    return _reaching_head(model, x, layers, candidates) or candidates[0].name


def probe_model(model: nn.Module, x: torch.Tensor, prefer: Sequence[str] = ()) -> Probe:
    """One dry forward pass: describe every module's output and pick the default CAM layer.

    Args:
        model: the classifier, in eval mode (not modified; hooks are removed on exit).
        x: an example input ``(1, 3, H, W)`` on the model's device.
        prefer: layer names to use as default when present (family-specific choices).

    Returns:
        A :class:`Probe`.
    """
    input_hw = (int(x.shape[-2]), int(x.shape[-1]))
    named = [(n, m) for n, m in model.named_modules() if n]
    outputs: dict[str, Any] = {}
    order: dict[str, int] = {}
    counter = iter(range(10**9))

    def remember(name: str, out: Any) -> None:
        outputs[name] = out  # kept alive so tensor identity means "the same output"
        order[name] = next(counter)

    hooks = Hooks(model).watch([n for n, _ in named], remember, raw=True)
    with hooks, torch.inference_mode():
        logits = first_tensor(model(x))
    calls = hooks.calls
    layers = tuple(
        replace(info, plain=isinstance(outputs.get(info.name), torch.Tensor))
        for info in (
            classify_output(
                n, m, first_tensor(outputs.get(n)), input_hw, calls.get(n, 0), order.get(n, -1)
            )
            for n, m in named
        )
    )
    modules = dict(named)
    default = next((p for p in prefer if p in modules), None)
    if default is None:
        maps = [i for i in layers if i.has_map and not _is_pool_or_layout(modules[i.name])]
        last = max(maps, key=lambda i: i.order, default=None)
        if last is not None and last.kind == "tokens":
            default = _default_token_layer(model, x, layers)
        else:
            default = _default_cnn_layer(modules, layers, outputs)
            info = next((i for i in layers if i.name == default), None)
            # A map inside a tuple (PiT: (patch map, class tokens)) may not reach the head.
            if info is not None and not info.plain and not _reaching_head(model, x, layers, [info]):
                default = _default_token_layer(model, x, layers) or default
    num_outputs = int(logits.shape[-1]) if logits is not None and logits.ndim == 2 else 0
    return Probe(layers=layers, default_layer=default, num_outputs=num_outputs)


def _blocks(layers: Sequence[LayerInfo], modules: dict[str, nn.Module]) -> list[LayerInfo]:
    """The outermost building blocks with map outputs: non-leaf modules of their own class
    (BasicBlock, MBConv, EncoderBlock, ...) held in a Sequential / ModuleList, in depth order."""
    by_name = {i.name: i for i in layers}
    found: list[LayerInfo] = []
    for name, module in modules.items():
        if not name or not isinstance(module, nn.Sequential | nn.ModuleList):
            continue
        for key, child in module.named_children():
            info = by_name.get(f"{name}.{key}")
            if (
                info is not None
                and info.has_map
                and info.calls
                and not isinstance(child, nn.Sequential | nn.ModuleList)
                and any(True for _ in child.children())
            ):
                found.append(info)
    names = {i.name for i in found}
    outer = [i for i in found if not any(i.name.startswith(n + ".") for n in names)]
    return sorted(outer, key=lambda i: i.order)


def stage_layers(
    layers: Sequence[LayerInfo], model: nn.Module, default: str | None, count: int = 4
) -> list[str]:
    """The last block of every stage (resolution) of a CNN, or ``count`` evenly spaced blocks
    of a transformer, in depth order, ending with ``default``: a good first layer comparison.
    """
    modules = dict(model.named_modules())
    by_name = {i.name: i for i in layers}
    maps = [i for i in layers if i.has_map and not _is_pool_or_layout(modules[i.name])]
    if not maps:
        return []
    blocks = _blocks(layers, modules)
    last = max(maps, key=lambda i: i.order)
    if (last.kind == "tokens" or len({i.grid for i in maps}) == 1) and len(blocks) >= 2:
        picks = sorted({round(k * (len(blocks) - 1) / max(1, count - 1)) for k in range(count)})
        names = [blocks[k].name for k in picks]
        if default is not None and default.startswith(names[-1] + "."):
            names[-1] = default
        return names
    if not blocks:  # plain stacks (VGG, AlexNet): the last activation at each resolution
        blocks = [i for i in maps if not any(True for _ in modules[i.name].children())]
    last_per_grid: dict[tuple[int, int], LayerInfo] = {}
    for info in blocks:
        last_per_grid[info.grid] = info  # blocks are in depth order: the last one wins
    names = []
    for info in sorted(last_per_grid.values(), key=lambda i: i.order):
        parent = by_name.get(info.name.rpartition(".")[0])
        if (
            parent is not None
            and parent.plain
            and parent.grid == info.grid
            and (parent.order == info.order + 1)
        ):
            info = parent  # "layer1" rather than "layer1.2": the same tensor, a clearer name
        names.append(info.name)
    if default is not None and default not in names:
        if names and by_name[names[-1]].grid == by_name[default].grid:
            names[-1] = default
        else:
            names.append(default)
    return names


def block_layers(layers: Sequence[LayerInfo], model: nn.Module, limit: int = 64) -> list[str]:
    """Every block's output (ResNet basic / bottleneck blocks, transformer layers, ...), in depth
    order; at most ``limit``."""
    modules = dict(model.named_modules())
    found = _blocks(layers, modules)
    if not found:
        found = [
            i
            for i in layers
            if i.has_map
            and i.calls
            and not _is_pool_or_layout(modules[i.name])
            and not any(True for _ in modules[i.name].children())
        ]
    return [i.name for i in found][:limit]


# -- choosing layers ------------------------------------------------------------------------------
#: Output kinds whose activations can be collected (maps, token grids and vectors).
_COLLECTABLE = ("spatial", "tokens", "vector")


def resolve_layers(
    handle: ModelHandle,
    layers: str | Sequence[str] | None = None,
    *,
    maps_only: bool = True,
    depth_order: bool = False,
) -> list[LayerInfo]:
    """The layers a call asks for, as :class:`LayerInfo`, without repeats.

    Each entry is a module path (``"layer4.2"``), ``"default"`` (the usual CAM layer,
    :attr:`~explain.models.ModelHandle.default_layer`), ``"all"`` or a shell-style pattern such
    as ``"layer4.*"``; ``"all"`` and patterns expand to the layers with a map (with
    ``maps_only=False``: every layer with a map, token or vector output), in model order. A
    module path always means that module, even one named like a keyword or a pattern.

    Args:
        handle: the model.
        layers: one entry, a list of them, or ``None`` for the default layer.
        maps_only: every layer must have a spatial or token-grid output (CAMs); ``False`` takes
            any module (pooled embeddings).
        depth_order: sort by position in the forward pass instead of keeping the given order.

    Raises:
        LayerError: no layer given, an unknown module (with close names), a layer without a map
            (``maps_only``), or a pattern that matches nothing.
    """
    if layers is None:
        return [handle.map_layer(handle.default_layer)]
    entries = [layers] if isinstance(layers, str) else layers
    every: dict[str, LayerInfo] = {}  # filled only when a keyword or a pattern needs it
    chosen: list[LayerInfo] = []
    for entry in entries:
        special = entry in ("default", "all") or _is_pattern(entry)
        if special and not every:
            every = {info.name: info for info in handle.layers}
        if not special or entry in every:  # a module path, whatever it looks like
            chosen.append(handle.map_layer(entry) if maps_only else handle.layer(entry))
        elif entry == "default":
            chosen.append(handle.map_layer(handle.default_layer))
        else:
            chosen.extend(_expand(handle, entry, _candidates(every.values(), maps_only), maps_only))
    if not chosen:
        raise LayerError(
            "No layer was given.",
            hint="give a module path (handle.layers), 'default', 'all' or a pattern ('layer4.*').",
        )
    unique = list({info.name: info for info in chosen}.values())
    return sorted(unique, key=lambda info: info.order) if depth_order else unique


def _candidates(layers: Iterable[LayerInfo], maps_only: bool) -> list[LayerInfo]:
    """The layers ``"all"`` and patterns choose from."""
    return [i for i in layers if i.has_map or (not maps_only and i.kind in _COLLECTABLE)]


def _expand(
    handle: ModelHandle, entry: str, candidates: Sequence[LayerInfo], maps_only: bool
) -> list[LayerInfo]:
    """``"all"`` or a shell-style pattern -> the matching candidates, in model order."""
    if entry == "all":
        return list(candidates)
    matched = [info for info in candidates if fnmatch.fnmatchcase(info.name, entry)]
    if not matched:
        raise LayerError(
            f"No layer of {handle.name} {'with a map ' if maps_only else ''}matches {entry!r}.",
            hint="layers with a map: "
            + ", ".join(info.name for info in handle.map_layers[-6:])
            + " ('all' takes every one).",
        )
    return matched


def _is_pattern(entry: str) -> bool:
    return any(ch in entry for ch in "*?[")
