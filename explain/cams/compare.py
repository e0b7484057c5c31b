"""Several methods on the same images: which methods apply to a model, and the maps of every one
that does (``methods="all"``), the others skipped with the reason.

A method does not apply when it needs something the model lacks: the attention methods need
transformer blocks that attend over all patch tokens (not a CNN, not Swin's windows), CAM a
global-average-pooling + linear head, FullGrad convolutions with biases. Such a method raises
:class:`~explain.errors.MethodNotApplicable`; any other error (an unknown layer, a bad target)
still stops the call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import MethodNotApplicable
from ..models import ModelHandle
from .base import METHOD_INFO, CamMethod, check_method
from .core import CamResult
from .engine import compute_cams
from .forward import as_input


def method_names(methods: str | Sequence[str | CamMethod] | None = "all") -> list[CamMethod]:
    """``"all"`` / ``None`` (every registered method), one name, or a list of names (``"all"``
    among them expands in place) -> methods, without repeats."""
    entries = [methods] if methods is None or isinstance(methods, str) else list(methods)
    found: list[CamMethod] = []
    for entry in entries:
        if entry is None or (isinstance(entry, str) and entry.strip().lower() == "all"):
            found.extend(METHOD_INFO.values())
        else:
            found.append(check_method(entry))
    return list({m.name: m for m in found}.values())


def applicable_methods(
    handle: ModelHandle, methods: str | Sequence[str | CamMethod] | None = "all"
) -> tuple[list[str], dict[str, str]]:
    """Which of ``methods`` apply to this model, found without computing a map.

    Returns:
        (names that apply, ``name -> why not`` for the others). A method listed as applying can
        still turn out not to while computing (CAM's check that the head reads the layer's
        global average); :func:`compute_methods` skips those too.
    """
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for method in method_names(methods):
        try:
            method.check(handle)
        except MethodNotApplicable as exc:
            skipped[method.name] = exc.message
        else:
            ok.append(method.name)
    return ok, skipped


@dataclass
class MethodResults:
    """The maps of several methods for the same images.

    Attributes:
        results: method name -> :class:`~explain.cams.core.CamResult`, in the order asked.
        skipped: method name -> why it does not apply to this model.
    """

    results: dict[str, CamResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, method: str) -> CamResult:
        return self.results[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def methods(self) -> list[str]:
        return list(self.results)

    @property
    def notes(self) -> list[str]:
        """One line per skipped method, then each result's notes (prefixed by its method)."""
        lines = [f"{name} skipped: {why}" for name, why in self.skipped.items()]
        for name, result in self.results.items():
            lines.extend(f"{name}: {note}" for note in result.notes)
        return lines


def compute_methods(
    handle: ModelHandle,
    x: torch.Tensor | Sequence[Any],
    layers: str | Sequence[str] | None = None,
    methods: str | Sequence[str | CamMethod] | None = "all",
    targets: Any = None,
    **options: Any,
) -> MethodResults:
    """:func:`~explain.cams.compute_cams` for each of ``methods`` (default: every registered
    one) on the same images; a method that does not apply to this model is skipped with the
    reason in :attr:`MethodResults.skipped`.

    Args:
        options: keyword arguments of ``compute_cams`` (``batch_size``, ``max_channels`` (for
            the perturbation methods only), ``progress``, ...).

    Raises:
        MethodNotApplicable: none of the methods applies (the reasons listed).
        ExplainError: any other problem (an unknown method or layer, a bad target).
    """
    x = as_input(handle, x)
    chosen = method_names(methods)
    max_channels = options.pop("max_channels", None)
    out = MethodResults()
    for method in chosen:
        extra = {"max_channels": max_channels} if method.kind == "perturbation" else {}
        try:
            out.results[method.name] = compute_cams(
                handle, x, layers, method, targets, **extra, **options
            )
        except MethodNotApplicable as exc:
            out.skipped[method.name] = exc.message
    if not out.results:
        reasons = "; ".join(f"{name}: {why.rstrip('.')}" for name, why in out.skipped.items())
        raise MethodNotApplicable(
            f"None of the methods asked for applies to {handle.name} ({reasons}).",
            hint="use a CAM method such as 'gradcam'.",
        )
    return out


__all__ = ["MethodResults", "applicable_methods", "compute_methods", "method_names"]
