"""What a CAM method is, and the registry of methods.

A method is a :class:`CamMethod`: a description (title, kind, formula, reference, a plain
sentence) and a strategy, :meth:`CamMethod.raw_maps`, that turns a batch of images into raw
maps at the requested layers. The engine (:func:`explain.cams.compute_cams`) knows no method by
name: it resolves the method in the registry, hands it a :class:`CamRequest`, and upsamples and
normalises whatever comes back. A new method is one module with one :class:`CamMethod` subclass
(or instance) and one :func:`register_method` call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ExplainError
from ..layers import LayerInfo
from ..models import ModelHandle
from ..progress import Progress
from ..targets import ResolvedTargets
from .core import constant_causes

#: Kinds of method, for pages and reports that group them.
KINDS = ("gradient", "activation", "perturbation", "pixel", "attention")


@dataclass
class CamRequest:
    """Everything a method may use besides the images and the targets.

    Attributes:
        handle: the model.
        layers: the requested layers (each with a spatial or token-grid output).
        eigen_smooth: project contributions onto their first principal component.
        perturbation_batch: perturbed copies per forward pass.
        max_channels: perturb only this many channels (approximate Score-/Ablation-CAM).
        progress: ``progress(done, total, message)``.
        notes: methods append what a user should know about how the maps were made.
    """

    handle: ModelHandle
    layers: list[LayerInfo]
    eigen_smooth: bool = False
    perturbation_batch: int = 64
    max_channels: int | None = None
    progress: Progress | None = None
    notes: list[str] = field(default_factory=list)
    constant: dict[tuple[str, str], int] = field(default_factory=dict)
    pending: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]] = field(
        default_factory=list, repr=False
    )

    def note(self, text: str) -> None:
        """Add ``text`` to the notes once."""
        if text not in self.notes:
            self.notes.append(text)

    def check_constant(
        self, layer: str, raw: torch.Tensor, acts: torch.Tensor, grads: torch.Tensor | None = None
    ) -> None:
        """Have the constant maps among ``raw`` ``(n, K, h, w)`` counted by likely cause, from
        the layer's activations ``(n, C, h, w)`` and gradients ``(n, K, C, h, w)``.

        The engine settles every layer of a batch at once (:meth:`settle_constants`) and turns
        the counts into one note per layer and cause."""
        self.pending.append((layer, raw, acts, grads))

    def settle_constants(self) -> None:
        """Count the constant maps of every pending :meth:`check_constant`: one min/max pass
        per map size finds them; only layers that have one look for the cause."""
        pending, self.pending[:] = list(self.pending), []
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (_, raw, _, _) in enumerate(pending):
            by_shape.setdefault(tuple(raw.shape), []).append(i)
        for group in by_shape.values():
            flat = torch.stack([pending[i][1] for i in group]).float().flatten(-2)
            varying = (flat.amax(dim=-1) - flat.amin(dim=-1)) > 0  # False for NaN spans too
            if bool(varying.all()):
                continue
            for i, ok in zip(group, varying, strict=True):
                if not bool(ok.all()):
                    layer, raw, acts, grads = pending[i]
                    for cause, count in constant_causes(raw, acts, grads).items():
                        self.constant[(layer, cause)] = self.constant.get((layer, cause), 0) + count

    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Inside the block, constant maps are not counted (maps of augmented copies, say)."""
        before, waiting = dict(self.constant), len(self.pending)
        try:
            yield
        finally:
            self.constant.clear()
            self.constant.update(before)
            del self.pending[waiting:]


@dataclass
class RawMaps:
    """What a method returns for a batch of ``n`` images with ``K`` targets each.

    Attributes:
        logits: ``(n, classes)`` float32 of the model on the images.
        targets: the resolved targets.
        maps: layer -> ``(n, K, h, w)`` float32 raw maps (any resolution; the engine upsamples
            them to the input size and normalises).
        pixels: layer -> ``(n, K, 3, H, W)`` pixel-level attributions (pixel methods only; the
            engine then shows their magnitude as the map).
    """

    logits: torch.Tensor
    targets: ResolvedTargets
    maps: dict[str, torch.Tensor]
    pixels: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class CamMethod:
    """One method of the family: its description and its strategy.

    Attributes:
        name: the key accepted by ``compute_cams``.
        title: display name.
        kind: one of :data:`KINDS`.
        needs_grad: whether a backward pass is needed.
        summary: one plain sentence for non-specialists.
        formula: the formula, as text.
        reference: the paper.
        eigen: always project onto the first principal component.
    """

    name: str
    title: str
    kind: str
    needs_grad: bool
    summary: str
    formula: str
    reference: str
    eigen: bool = False

    def check(self, handle: ModelHandle) -> None:
        """Raise :class:`~explain.errors.MethodNotApplicable` when the method cannot apply to
        this model at all, found without computing a map (attention methods on a CNN, ...);
        some cases only show while computing (CAM's check of the head's input)."""

    def raw_maps(self, request: CamRequest, x: torch.Tensor, targets: Any) -> RawMaps:
        """Raw maps for the images ``x`` ``(n, 3, H, W)`` at ``request.layers``.

        Args:
            targets: any accepted form (see :mod:`explain.targets`), for these images.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement raw_maps")


class _Names(Sequence[str]):
    """The registered method names, always current (a read-only sequence)."""

    def __init__(self, registry: dict[str, CamMethod]):
        self._registry = registry

    def __getitem__(self, index: Any) -> Any:
        return tuple(self._registry)[index]

    def __len__(self) -> int:
        return len(self._registry)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._registry))

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __repr__(self) -> str:
        return repr(tuple(self._registry))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))


#: name -> method, in registration order.
METHOD_INFO: dict[str, CamMethod] = {}
#: Names accepted by ``compute_cams(method=...)`` (always up to date with the registry).
METHODS: Sequence[str] = _Names(METHOD_INFO)


def register_method(method: CamMethod, *, replace: bool = False) -> CamMethod:
    """Add ``method`` to the registry (``compute_cams`` accepts it by name from then on)."""
    if method.kind not in KINDS:
        raise ExplainError(f"Unknown method kind {method.kind!r}; use one of {', '.join(KINDS)}.")
    if method.name in METHOD_INFO and not replace:
        raise ExplainError(f"A method named {method.name!r} is already registered.")
    METHOD_INFO[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method from the registry (for tests and plug-ins)."""
    METHOD_INFO.pop(name, None)


def _key(name: str) -> str:
    return name.lower().replace("++", "pp").replace("_", "").replace("-", "").replace(" ", "")


def check_method(method: str | CamMethod) -> CamMethod:
    """The :class:`CamMethod` for a name, spelt loosely ("Grad-CAM++", "score_cam", ...), or a
    clear error listing the methods. A :class:`CamMethod` instance is returned as it is."""
    if isinstance(method, CamMethod):
        return method
    by_key = {_key(name): name for name in METHOD_INFO}
    by_key.update({_key(m.title): m.name for m in METHOD_INFO.values()})
    key = _key(str(method))
    if key not in by_key:
        raise ExplainError(
            f"Unknown method {method!r}.", hint=f"choose one of {', '.join(METHOD_INFO)}."
        )
    return METHOD_INFO[by_key[key]]
