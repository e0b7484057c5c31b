"""Forward hooks with a visible lifecycle: installed on entry, removed on exit (even on errors).

A recorder never changes what the model computes. It keeps each hooked layer's output and hands
the rest of the network a copy, so later in-place operations (``ReLU(inplace=True)``) cannot
change the recorded tensor, and gradients taken with respect to it are those of the layer's own
output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .layers import first_tensor


def replace_first_tensor(output: Any, new: torch.Tensor) -> Any:
    """``output`` with the tensor that :func:`first_tensor` finds replaced by ``new``."""
    if isinstance(output, torch.Tensor):
        return new
    if isinstance(output, tuple) and not hasattr(output, "_fields"):
        for i, item in enumerate(output):
            if isinstance(item, torch.Tensor):
                return (*output[:i], new, *output[i + 1 :])
    if isinstance(output, list):
        for i, item in enumerate(output):
            if isinstance(item, torch.Tensor):
                return [*output[:i], new, *output[i + 1 :]]
    if isinstance(output, Mapping):
        for key, item in output.items():
            if isinstance(item, torch.Tensor):
                output[key] = new  # ModelOutput / dict: replaced in the call's own object
                return output
    raise TypeError(f"cannot replace a tensor in an output of type {type(output).__name__}")


def modules_by_name(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    return {name: modules[name] for name in names}


class LayerRecorder:
    """Record the outputs of named layers during a forward pass.

    Args:
        model: the model (hooks are added to its modules and removed on exit).
        names: module paths to record.
        copy: hand downstream layers a copy of each recorded output (see module docstring).
        transform: optional ``name, output_tensor -> replacement`` applied to what the rest
            of the network sees (used by perturbation methods); ``None`` keeps it as is.

    Attributes:
        outputs: ``name -> tensor`` of the last call of each layer.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        copy: bool = True,
        transform: Callable[[str, torch.Tensor], torch.Tensor | None] | None = None,
    ):
        self.modules = modules_by_name(model, names)
        self.copy = copy
        self.transform = transform
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            tensor = first_tensor(output)
            if tensor is None:
                return None
            self.outputs[name] = tensor
            replacement = self.transform(name, tensor) if self.transform else None
            if replacement is None and self.copy:
                replacement = tensor.clone()
            return None if replacement is None else replace_first_tensor(output, replacement)

        return hook

    def __enter__(self) -> LayerRecorder:
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, *exc: Any) -> None:
        self.remove()
