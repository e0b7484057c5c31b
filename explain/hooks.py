"""The one way this project hooks a model: forward hooks (and pre-hooks) on named modules that
exist only inside a ``with`` block (installed on entry, removed on exit, even on errors).

Every caller that needs to see or change what a layer computes goes through :class:`Hooks`:
the CAM engine (record activations), Ablation-CAM (replace a layer's output), CAM (the head's
input), the layer probe and the embeddings collector (callbacks on outputs), the attention
methods (which block runs, each block's input made a new leaf).

A recording never changes what the model computes: it keeps each hooked layer's output and hands
the rest of the network a copy, so later in-place operations (``ReLU(inplace=True)``) cannot
change the recorded tensor, and gradients taken with respect to it are those of the layer's own
output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

#: ``fn(name, tensor)`` called on a module's output (or input); its return value is ignored.
Watcher = Callable[[str, torch.Tensor], None]
#: ``fn(tensor) -> replacement or None`` applied to a module's output.
Replacer = Callable[[torch.Tensor], torch.Tensor | None]
#: ``fn(name, args, kwargs) -> (args, kwargs) or None`` called before a module runs.
Before = Callable[[str, tuple, dict], tuple[tuple, dict] | None]


def first_tensor(output: Any) -> torch.Tensor | None:
    """The main tensor of a module's output: itself, the first tensor of a tuple/list, or the
    first tensor value of a mapping (Hugging Face ``ModelOutput`` included)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, list | tuple):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(output, Mapping):
        for item in output.values():
            if isinstance(item, torch.Tensor):
                return item
    return None


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


class Hooks:
    """Forward hooks (and pre-hooks, :meth:`before`) on the named modules of ``model``, alive
    only inside ``with``.

    Plan what to do first (each method returns ``self``), then run the model inside the block::

        with Hooks(model).record(["layer3", "layer4"]) as hooks:
            logits = model(x)
        hooks.outputs["layer4"]

    Plans on the same module run in the order they were made; a replacement is what later
    plans (and the rest of the network) see.

    Attributes:
        outputs: ``name -> tensor``: the last output of each recorded module.
        inputs: ``name -> tensor``: the last (first tensor) input of each module whose input
            is recorded.
        calls: ``name -> number of calls`` of every hooked module during the block.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._modules: dict[str, nn.Module] | None = None
        self._plans: list[tuple[str, Callable[..., Any]]] = []
        self._pre_plans: list[tuple[str, Callable[..., Any]]] = []
        self._counted: set[str] = set()
        self._handles: list[Any] = []
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self._versions: dict[str, tuple[torch.Tensor, int]] = {}

    # -- planning -----------------------------------------------------------------------------
    def module(self, name: str) -> nn.Module:
        """The module at ``name`` (``KeyError`` if there is none)."""
        return self._named()[name]

    def _named(self) -> dict[str, nn.Module]:
        if self._modules is None:  # one walk over the model per ``Hooks``
            self._modules = dict(self.model.named_modules())
        return self._modules

    def record(
        self, names: Iterable[str], *, copy: bool = True, begin_graph: bool = False
    ) -> Hooks:
        """Keep the outputs of ``names`` in :attr:`outputs`.

        Args:
            copy: hand the rest of the network a copy (see the module docstring). Without
                one, :meth:`changed_in_place` says afterwards which recorded outputs the rest
                of the network changed in place (their values and gradients are then not the
                layer's own: record them again with a copy).
            begin_graph: if autograd is off when a recorded layer runs, turn it on from there
                and make that output a leaf that requires grad. Run the model under
                ``torch.no_grad()`` (which restores the mode on exit): nothing before the first
                recorded layer is recorded for backward, and the gradients with respect to the
                recorded outputs are unchanged (nothing before a layer depends on it).
        """

        def keep(name: str, tensor: torch.Tensor) -> torch.Tensor | None:
            handed = None
            if begin_graph and not torch.is_grad_enabled() and tensor.is_floating_point():
                torch.set_grad_enabled(True)
                tensor = handed = tensor.detach().requires_grad_(True)
            self.outputs[name] = tensor
            if copy:
                return tensor.clone()
            if not tensor.is_inference():
                self._versions[name] = (tensor, tensor._version)
            return handed

        for name in names:
            self._plan_output(name, keep)
        return self

    def record_inputs(self, names: Iterable[str], *, detach: bool = True) -> Hooks:
        """Keep the (first tensor) input of each of ``names`` in :attr:`inputs`, detached
        unless ``detach=False`` (to differentiate with respect to it after the pass)."""
        for name in names:
            self._plans.append((name, self._input_hook(name, detach)))
        return self

    def replace(self, name: str, fn: Replacer, *, call: int | None = None) -> Hooks:
        """Replace the output of ``name`` by ``fn(output)`` (``None`` keeps it); only on its
        ``call``-th call (1-based) when ``call`` is given."""

        def swap(_name: str, tensor: torch.Tensor) -> torch.Tensor | None:
            if call is not None and self.calls.get(name, 0) != call:
                return None
            return fn(tensor)

        self._plan_output(name, swap)
        return self

    def watch(self, names: Iterable[str], fn: Watcher, *, raw: bool = False) -> Hooks:
        """Call ``fn(name, output)`` after each of ``names`` runs; the output is not changed.
        ``raw=True`` passes the module's output as it is (a tuple, a ``ModelOutput``, ...)
        instead of its first tensor, and also for outputs that hold no tensor."""

        def call(name: str, output: Any) -> None:
            fn(name, output)

        for name in names:
            self._plan_output(name, call, raw=raw)
        return self

    def before(self, names: Iterable[str], fn: Before) -> Hooks:
        """Call ``fn(name, args, kwargs)`` before each of ``names`` runs; a returned
        ``(args, kwargs)`` replaces the call's inputs (``None`` keeps them)."""

        def plan(name: str) -> Callable[..., Any]:
            def hook(_module: nn.Module, args: tuple, kwargs: dict) -> Any:
                return fn(name, args, kwargs)

            return hook

        for name in names:
            self._pre_plans.append((name, plan(name)))
        return self

    def fast_pooling(self) -> Hooks:
        """Run every ``nn.MaxPool2d`` whose input needs no gradient on a channels-last copy of
        that input (CPU float maps with 16 channels or more), and hand the rest of the network
        the output back in NCHW.

        PyTorch's channels-last max-pooling kernel on the CPU is several times faster than its
        NCHW one (a ResNet stem: ~0.6 ms instead of ~2.5 ms); the maximum of a window is the
        same whichever layout it is read in, so the outputs are the same to the bit. A pooling
        on the gradient's path is left as it is (ties could then send the gradient elsewhere).
        """
        converted: set[str] = set()

        def to_channels_last(name: str, args: tuple, kwargs: dict) -> Any:
            x = args[0] if args else None
            if (
                isinstance(x, torch.Tensor)
                and x.device.type == "cpu"
                and x.dtype in (torch.float32, torch.float64, torch.bfloat16)
                and x.dim() == 4
                and x.shape[1] >= 16
                and x.is_contiguous()
                and not (x.requires_grad and torch.is_grad_enabled())
            ):
                converted.add(name)
                return (x.contiguous(memory_format=torch.channels_last), *args[1:]), kwargs
            return None

        def back_to_nchw(name: str) -> Replacer:
            def back(tensor: torch.Tensor) -> torch.Tensor | None:
                if name not in converted:
                    return None
                converted.discard(name)
                return tensor.contiguous()

            return back

        for name, module in self._named().items():
            if type(module) is nn.MaxPool2d and not module.return_indices:
                self.before([name], to_channels_last)
                self.replace(name, back_to_nchw(name))
        return self

    def _plan_output(
        self, name: str, fn: Callable[[str, Any], torch.Tensor | None], raw: bool = False
    ) -> None:
        counted = name not in self._counted  # the first plan on a module counts its calls
        self._counted.add(name)

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if counted:
                self.calls[name] = self.calls.get(name, 0) + 1
            if raw:
                fn(name, output)
                return None
            tensor = first_tensor(output)
            if tensor is None:
                return None
            new = fn(name, tensor)
            return None if new is None else replace_first_tensor(output, new)

        self._plans.append((name, hook))

    def _input_hook(self, name: str, detach: bool) -> Callable[..., None]:
        def hook(_module: nn.Module, inputs: Any, _output: Any) -> None:
            tensor = first_tensor(inputs)
            if tensor is not None:
                self.inputs[name] = tensor.detach() if detach else tensor

        return hook

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Hooks:
        try:
            for name, hook in self._pre_plans:
                module = self.module(name)
                self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
            for name, hook in self._plans:
                self._handles.append(self.module(name).register_forward_hook(hook))
        except BaseException:
            self.remove()
            raise
        return self

    def changed_in_place(self) -> list[str]:
        """The outputs recorded without a copy that an in-place operation has changed since."""
        return [name for name, (t, version) in self._versions.items() if t._version != version]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, *exc: object) -> None:
        self.remove()
